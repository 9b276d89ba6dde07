"""The pipeline image as Beam's portable workers start it. No Docker engine runs here, so the Dockerfile is
read, not built: these tests check what Beam's container contract needs from it."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEAM_BOOT = "/opt/apache/beam/boot"


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def final_stage(text: str) -> str:
    return text[text.rindex("\nFROM "):]


def test_entrypoint_is_beams_sdk_harness_boot():
    # Dataflow/Flink start --sdk_container_image with its entrypoint plus the boot arguments (Beam's
    # "custom containers" guide); the last ENTRYPOINT of the final stage is the one the image has.
    entrypoints = re.findall(r"^ENTRYPOINT\s+(.+)$", final_stage(dockerfile()), flags=re.MULTILINE)
    assert entrypoints and entrypoints[-1].strip() == f'["{BEAM_BOOT}"]'


def test_boot_comes_from_the_beam_sdk_image_of_the_pinned_beam_version():
    text = dockerfile()
    pinned = re.search(r"^apache-beam==(\S+)$", (REPO / "constraints.txt").read_text(), flags=re.MULTILINE).group(1)
    assert re.search(rf"^ARG BEAM_VERSION={re.escape(pinned)}$", text, flags=re.MULTILINE), \
        f"the boot must be Beam {pinned}'s, the SDK version constraints.txt installs"
    assert re.search(r"^FROM apache/beam_python3\.10_sdk:\$\{BEAM_VERSION\} AS (\S+)$", text, flags=re.MULTILINE)
    assert re.search(r"^COPY --from=\S+ /opt/apache/beam /opt/apache/beam$", final_stage(text), flags=re.MULTILINE)


def test_every_package_setup_py_installs_is_copied_into_the_image():
    # setup.py finds packages among what is copied: a package left out of the COPY lines is silently missing from
    # the image (the Pusher imports serving/).
    include = re.search(r"find_packages\(include=\[([^\]]*)\]", (REPO / "setup.py").read_text()).group(1)
    packages = set(re.findall(r'"(\w+)"', include))  # "pipeline", not "pipeline.*"
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile(), flags=re.MULTILINE))
    assert packages and packages <= copied, packages - copied


def test_every_top_level_module_setup_py_installs_is_copied_into_the_image():
    # imagepipe.py holds the import paths of our custom artifact types: without it every KFP gate task fails.
    modules = re.search(r"py_modules=\[([^\]]*)\]", (REPO / "setup.py").read_text()).group(1)
    copied = set(re.findall(r"^COPY (\S+\.py) \./$", dockerfile(), flags=re.MULTILINE))
    assert {f"{name}.py" for name in re.findall(r'"(\w+)"', modules)} <= copied
