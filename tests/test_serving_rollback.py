"""Rollback, pin, unpin and promote through the command line, against a copy of the shipped k8s manifests: the
config each writes is the file the deployment's TF Serving polls, and it is read back with TF Serving's own
proto (tensorflow_serving.config.model_server_config_pb2). On a local folder standing for the PVC and on a
bucket of the GCS emulator. No TF Serving binary installs here: what TF Serving then does is cited from its
sources in serving/rollback.py, not run."""
import shutil
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.pusher.component import push_blessed_model
from pipeline.cli import main
from serving.serving_dir import MODEL_CONFIG_FILE
from tests.serving_fixtures import all_files, entries, serving_root, write_model  # noqa: F401

K8S_DIR = Path(__file__).resolve().parent.parent / "k8s"


@pytest.fixture
def shipped_deployment(tmp_path):
    """(--model_config_file, mount path of the models volume) of the serving Deployment, from a copy of k8s/."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    (deployment,) = [d for d in yaml.safe_load_all((copy / "serving" / "deployment.yaml").read_text())
                     if d and d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    flags = dict(arg[2:].split("=", 1) for arg in container["args"])
    claims = {volume["name"] for volume in spec["volumes"] if "persistentVolumeClaim" in volume}
    (mount_path,) = [mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] in claims]
    return flags["model_config_file"], mount_path


@pytest.fixture
def pushed(serving_root, tmp_path):
    """Three versions pushed by the Pusher's own function (which also writes the first config)."""
    for version in (1, 2, 3):
        model = write_model(tmp_path / f"model-{version}", f"weights {version}".encode())
        assert push_blessed_model(model, serving_root, report=None, tolerance=0.02).version == version
    return serving_root


def written_config(serving_dir: str):
    """The config file TF Serving would read, parsed with its own proto; the file is read without our code."""
    text = all_files(serving_dir)[MODEL_CONFIG_FILE].decode("utf-8")
    (model,) = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config
    policy = model.model_version_policy
    versions = list(policy.specific.versions) if policy.HasField("specific") else f"latest {policy.latest.num_versions}"
    return model, versions, dict(model.version_labels)


def imagepipe(*args) -> int:
    return main([*args])


def test_the_canary_flow_writes_the_file_the_deployment_polls(pushed, shipped_deployment, capsys):
    config_flag, mount_path = shipped_deployment
    local = "://" not in pushed
    # The deployment reads <models volume>/models.config: on the PVC that is this serving directory's file.
    assert config_flag == f"{mount_path}/{MODEL_CONFIG_FILE}"
    base_path = mount_path if local else pushed  # Where TF Serving sees the versions.
    common = ["--serving-dir", pushed, "--base-path", base_path]

    model, versions, labels = written_config(pushed)  # The Pusher's first push wrote the default.
    assert (model.name, versions, labels) == ("imagepipe", "latest 2", {})

    assert imagepipe("promote", "--label", "canary", "--version", "3", *common) == 2  # No stable version yet.
    assert "promote --label stable" in capsys.readouterr().err
    assert imagepipe("promote", "--label", "stable", "--version", "2", *common) == 0
    model, versions, labels = written_config(pushed)
    assert (model.base_path, versions, labels) == (base_path, [2], {"stable": 2})

    # A new blessed version is served as the canary beside stable.
    assert imagepipe("promote", "--label", "canary", "--version", "3", "--serving-dir", pushed) == 0
    model, versions, labels = written_config(pushed)
    assert (model.base_path, versions, labels) == (base_path, [2, 3], {"stable": 2, "canary": 3})

    # Promoted with one command: 3 is the only version served, labelled stable.
    assert imagepipe("promote", "--label", "stable", "--version", "3", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ([3], {"stable": 3})

    # Moving `stable` to a version TF Serving has not loaded would make it refuse the whole config.
    assert imagepipe("promote", "--label", "stable", "--version", "1", "--serving-dir", pushed) == 2
    assert "not served now" in capsys.readouterr().err
    assert written_config(pushed)[1:] == ([3], {"stable": 3})


def test_a_canary_is_rolled_back_with_one_command(pushed):
    imagepipe("promote", "--label", "stable", "--version", "2", "--serving-dir", pushed)
    imagepipe("promote", "--label", "canary", "--version", "3", "--serving-dir", pushed)
    assert imagepipe("rollback", "--version", "2", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ([2], {"stable": 2})


def test_rollback_pin_and_unpin(pushed, capsys):
    assert imagepipe("pin", "--version", "3", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ([3], {"stable": 3})
    # Version 1 was not served: the stable label cannot move to it at once, so labels go (promote it later).
    assert imagepipe("rollback", "--version", "1", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ([1], {})
    assert imagepipe("rollback", "--version", "9", "--serving-dir", pushed) == 2
    assert "pushed versions: [1, 2, 3]" in capsys.readouterr().err
    assert imagepipe("unpin", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ("latest 2", {})
    assert imagepipe("rollback", "--unpin", "--serving-dir", pushed) == 0
    assert written_config(pushed)[1:] == ("latest 2", {})
    # Only the config changed: no temporary file is left where TF Serving polls.
    assert entries(pushed) == [".version-1.claim", ".version-2.claim", ".version-3.claim", "1", "2", "3",
                               MODEL_CONFIG_FILE]


def test_an_incomplete_version_is_refused(serving_root, tmp_path, capsys):
    push_blessed_model(write_model(tmp_path / "model"), serving_root, report=None, tolerance=0.02)
    half = write_model(tmp_path / "half")
    Path(half, "saved_model.pb").unlink()
    from serving.storage import storage_for

    storage_for(serving_root).put_file(str(Path(half, "fingerprint.pb")), f"{serving_root}/2/fingerprint.pb")
    assert imagepipe("promote", "--label", "stable", "--version", "2", "--serving-dir", serving_root) == 2
    assert "No complete version 2" in capsys.readouterr().err
