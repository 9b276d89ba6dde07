"""Ingestion: walking the tree, checking files, splitting, and the real Beam executor end to end."""
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import features
from components.ingestion import executor as ingestion_executor
from components.ingestion import image_tree
from components.ingestion.component import ImageExampleGen
from tests.conftest import COLORS, encode, noisy_color

LIMITS = image_tree.Limits()


def _pixels(seed=0, size=16):
    return noisy_color((120, 80, 200), np.random.default_rng(seed), size)


def test_class_names_are_visible_folders_sorted(tmp_path):
    for name in ("zebra", "Äpfel mit Saft", ".ipynb_checkpoints"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.txt").write_text("not a class")
    assert image_tree.list_class_names(str(tmp_path)) == ["zebra", "Äpfel mit Saft"][::-1] or \
        image_tree.list_class_names(str(tmp_path)) == sorted(["zebra", "Äpfel mit Saft"])


def test_missing_or_empty_tree_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        image_tree.list_class_names(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no class folders"):
        image_tree.list_class_names(str(tmp_path))


def test_walk_finds_nested_images_any_case_and_flags_the_rest(tmp_path):
    (tmp_path / "cat" / "deep" / "deeper").mkdir(parents=True)
    (tmp_path / "cat" / ".ipynb_checkpoints").mkdir()
    for relative in ("a.JPG", "deep/b.png", "deep/deeper/c.Jpeg", ".DS_Store", "notes.txt",
                     ".ipynb_checkpoints/d.png"):
        (tmp_path / "cat" / relative).write_bytes(b"x")
    found = {os.path.relpath(path, tmp_path / "cat"): ok for path, ok in
             image_tree.walk_class_folder(str(tmp_path), "cat")}
    assert found == {"a.JPG": True, "deep/b.png": True, "deep/deeper/c.Jpeg": True, ".DS_Store": False,
                     "notes.txt": False, ".ipynb_checkpoints/d.png": False}


def test_split_is_deterministic_and_follows_the_ratio():
    paths = [f"class/img_{i}.png" for i in range(4000)]
    first = [image_tree.assign_split(p, 20, 100) for p in paths]
    assert first == [image_tree.assign_split(p, 20, 100) for p in paths]
    eval_share = first.count(image_tree.EVAL_SPLIT) / len(paths)
    assert 0.18 < eval_share < 0.22


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_jpeg_and_png_pass_through_unchanged(fmt):
    data = encode(_pixels(), fmt)
    checked = image_tree.check_image(data, LIMITS)
    assert checked.encoded == data
    assert (checked.source_format, checked.width, checked.height) == (fmt, 16, 16)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
def test_other_formats_are_reencoded_losslessly_to_png(fmt):
    pixels = _pixels()
    checked = image_tree.check_image(encode(pixels, fmt), LIMITS)
    assert checked.source_format == fmt
    decoded = tf.io.decode_image(checked.encoded, channels=3, expand_animations=False).numpy()
    assert decoded.shape == (16, 16, 3)
    if fmt != "GIF":  # GIF is palette-quantized on write; BMP and lossless WebP keep every pixel.
        reference = np.asarray(Image.open(io.BytesIO(encode(pixels, fmt))).convert("RGB"))
        np.testing.assert_array_equal(decoded, reference)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_file"),
    (b"this is not an image at all", "undecodable"),
    (encode(_pixels(size=64), "JPEG")[:300], "undecodable"),  # Truncated: header fine, pixels missing.
])
def test_bad_files_are_rejected_with_a_reason(data, reason):
    with pytest.raises(image_tree.RejectedImage) as rejected:
        image_tree.check_image(data, LIMITS)
    assert rejected.value.reason == reason


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(image_tree.RejectedImage) as rejected:
        image_tree.check_image(encode(_pixels(size=64), "PNG"), image_tree.Limits(max_pixels=1000))
    assert rejected.value.reason == "too_many_pixels"


def _run_executor(input_base: Path, output_dir: Path, eval_percent: int = 30):
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    component = ImageExampleGen(input_base=str(input_base), eval_percent=eval_percent)
    exec_properties = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
                       for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    ingestion_executor.Executor().Do({}, {"examples": [examples]}, exec_properties)
    return examples


def _read_split(output_dir: Path, split: str):
    records = []
    for path in sorted((output_dir / f"Split-{split}").glob("*.gz")):
        records += [tf.train.Example.FromString(r.numpy())
                    for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    return records


def test_executor_writes_splits_and_accounts_for_every_file(color_tree, tmp_path):
    (color_tree / "grün" / "broken.png").write_bytes(b"not a png")
    (color_tree / "grün" / "empty.jpg").write_bytes(b"")
    (color_tree / "grün" / ".DS_Store").write_bytes(b"\0")
    (color_tree / "blue sky" / "labels.csv").write_text("a,b")
    output_dir = tmp_path / "examples"
    artifact = _run_executor(color_tree, output_dir)

    report = json.loads((output_dir / ingestion_executor.REPORT_FILE_NAME).read_text())
    assert report["examples_written"] == 18
    assert report["quarantined_by_reason"] == {"undecodable": 1, "empty_file": 1}
    assert {os.path.basename(e["uri"]) for e in report["quarantined"]} == {"broken.png", "empty.jpg"}
    assert {os.path.basename(e["uri"]) for e in report["ignored"]} == {".DS_Store", "labels.csv"}
    assert report["files_read"] == report["examples_written"] + report["quarantined_count"] + report["ignored_count"]
    per_class = report["examples_per_class_and_split"]
    assert {name: sum(splits.values()) for name, splits in per_class.items()} == {name: 6 for name in COLORS}

    train, evaluation = _read_split(output_dir, "train"), _read_split(output_dir, "eval")
    assert len(train) + len(evaluation) == 18 and evaluation
    example = train[0].features.feature
    assert example[features.LABEL_KEY].bytes_list.value[0].decode() in COLORS
    assert os.path.exists(example[features.SOURCE_URI_KEY].bytes_list.value[0].decode())
    decoded = tf.io.decode_image(example[features.IMAGE_KEY].bytes_list.value[0], channels=3)
    assert decoded.shape == (40, 40, 3)
    # The same counts are on the artifact, for ML Metadata.
    assert artifact.get_int_custom_property("examples_written") == 18
    assert artifact.get_int_custom_property("quarantined") == 2
    assert artifact.split_names == '["train", "eval"]'


def test_split_membership_survives_moving_the_tree(color_tree, tmp_path):
    first = _run_executor(color_tree, tmp_path / "first")
    moved = tmp_path / "moved" / "elsewhere"
    moved.parent.mkdir()
    os.rename(color_tree, moved)
    second = _run_executor(moved, tmp_path / "second")
    del first, second

    def eval_files(output_dir):
        return sorted(os.path.relpath(e.features.feature[features.SOURCE_URI_KEY].bytes_list.value[0].decode(),
                                      root) for e, root in ((e, r) for e in _read_split(output_dir, "eval")
                                                            for r in [color_tree if "first" in str(output_dir)
                                                                      else moved]))
    assert eval_files(tmp_path / "first") == eval_files(tmp_path / "second")
