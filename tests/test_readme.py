"""What the README states about the command line agrees with the code (one fact, and the doc follows it)."""
import re
from pathlib import Path

from pipeline import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def main_options_paragraph() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("Main options (")
    return text[start:text.index("\n\n", start)]


def documented_defaults(paragraph: str) -> dict:
    """`--a` (X) and `--a` / `--b` (X / Y): each option with the number the README gives as its default."""
    defaults = {}
    for options, values in re.findall(r"((?:`--[a-z0-9-]+`(?:\s*/\s*)?)+)\s*\(([0-9.e+-]+(?:\s*/\s*[0-9.e+-]+)*)\)",
                                      paragraph):
        names = re.findall(r"`--([a-z0-9-]+)`", options)
        numbers = [float(value) for value in re.split(r"\s*/\s*", values)]
        assert len(names) == len(numbers), (options, values)
        defaults.update(zip(names, numbers))
    return defaults


def test_readme_main_options_give_the_defaults_of_imagepipe_run():
    documented = documented_defaults(main_options_paragraph())
    assert {"phase1-epochs", "phase2-epochs", "image-size", "unfreeze-from-block"} <= set(documented)
    actual = vars(cli.build_parser().parse_args(["run", "--data", "images"]))
    assert {name: actual[name.replace("-", "_")] for name in documented} == documented
