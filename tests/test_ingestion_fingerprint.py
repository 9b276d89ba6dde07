"""The input fingerprint decides whether ImageExampleGen's cached output is reused (locally, by TFX's driver; on
KFP, by components/spans/resolution.py): it must change when any image of the tree changes, sub-folders and
explicit train/eval trees included."""
import json
import os

import pytest
from PIL import Image
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.ingestion.component import ImageExampleGen, input_pattern
from components.spans.resolution import resolve_like_the_driver


def _write_image(path, colour, size=(8, 8)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _fingerprint_by_driver(root, span_folder=None) -> str:
    splits = [example_gen_pb2.Input.Split(name="images", pattern=input_pattern(span_folder))]
    processor = ImageExampleGen.DRIVER_CLASS(None).get_input_processor(splits=splits, input_base_uri=str(root))
    span, version = processor.resolve_span_and_version()
    return processor.get_input_fingerprint(span, version)


def _fingerprint_without_driver(root, span_folder=None) -> str:
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="images", pattern=input_pattern(span_folder))])
    resolved = resolve_like_the_driver({specs.INPUT_BASE_KEY: str(root),
                                        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config)})
    return resolved[utils.FINGERPRINT_PROPERTY_NAME]


def _rewrite_later(path, colour, size):
    """Rewrites an image with other bytes and a later whole-second mtime (TFX's fingerprint has second grain)."""
    mtime = os.stat(path).st_mtime
    _write_image(path, colour, size)
    os.utime(path, (mtime + 5, mtime + 5))


@pytest.mark.parametrize("fingerprint", [_fingerprint_by_driver, _fingerprint_without_driver],
                         ids=["driver", "no driver (KFP)"])
@pytest.mark.parametrize("nested", ["cat/holiday/2024/b.png", "train/cat/b.png"],
                         ids=["sub-folder of a class", "explicit split folders"])
def test_an_image_rewritten_deep_in_the_tree_changes_the_fingerprint(tmp_path, fingerprint, nested):
    root = tmp_path / "data"
    first_level = "train/cat/a.png" if nested.startswith("train/") else "cat/a.png"
    _write_image(str(root / first_level), "red")
    _write_image(str(root / nested), "blue")
    before = fingerprint(root)
    _rewrite_later(str(root / nested), "green", (16, 16))
    after = fingerprint(root)
    assert before != after
    assert "num_files:2" in after  # Both images counted, not the class or split folders.


def test_the_fingerprint_of_a_span_covers_only_that_span(tmp_path):
    root = tmp_path / "data"
    _write_image(str(root / "span-1" / "cat" / "a.png"), "red")
    _write_image(str(root / "span-2" / "cat" / "sub" / "a.png"), "red")
    _write_image(str(root / "span-2" / "dog" / "b.png"), "blue")
    assert "num_files:2" in _fingerprint_by_driver(root, "span-{SPAN}")
    assert _fingerprint_by_driver(root, "span-{SPAN}") == _fingerprint_without_driver(root, "span-{SPAN}")
