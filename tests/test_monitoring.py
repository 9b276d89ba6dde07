"""`imagepipe monitor`'s parts on generated images, with real TFDV and Pillow (seconds). The whole command on
a real run's served version, with and without a planted shift: tests/test_monitoring_e2e.py (slow)."""
import os
from pathlib import Path

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components import features
from production_monitor import comparison
from production_monitor.sample import read_sample
from tests.conftest import COLORS, encode, noisy_color, write_color_tree

SCHEMA = io_utils.parse_pbtxt_file(str(Path(__file__).parent.parent / "schemas" / "schema.pbtxt"),
                                   schema_pb2.Schema())


def write_images(folder: Path, count: int, size=(40, 40), fmt=("png", "PNG"), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.clip(rng.normal(128, 40, (*size, 3)), 0, 255).astype(np.uint8)
        (folder / f"{index:03d}.{fmt[0]}").write_bytes(encode(pixels, fmt[1]))
    return folder


def test_sample_is_the_newest_files_and_counts_each_unusable_one(tmp_path):
    folder = write_images(tmp_path / "production", 6)
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_bytes(b"not an image at all")
    (folder / ".hidden.png").write_bytes(encode(noisy_color((1, 2, 3), np.random.default_rng(0)), "PNG"))
    (folder / "notes.txt").write_text("ignored: no image extension")
    now = 2_000_000_000
    visible = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    for age, path in enumerate(visible):
        os.utime(path, (now - age, now - age))  # 000.png newest ... text.jpg oldest
    sample = read_sample(str(folder), count=4)
    assert [Path(image.path).name for image in sample.images] == ["000.png", "001.png", "002.png", "003.png"]
    everything = read_sample(str(folder), count=100)
    assert len(everything.images) == 6 and everything.files_listed == 8
    assert dict(everything.rejected) == {"empty_file": 1, "not_an_image": 1}
    assert read_sample(str(folder), count=100, since_seconds=now - 2).files_listed == 3


def statistics_of(folder: Path):
    return comparison.image_statistics(read_sample(str(folder), count=1000).images)


def test_no_skew_between_two_samples_of_the_same_kind_of_images(tmp_path):
    train = statistics_of(write_color_tree(tmp_path / "train", per_class=10, seed=1))
    production = statistics_of(write_color_tree(tmp_path / "production", per_class=5, seed=2))
    findings, distances = comparison.skew_findings(train, production, SCHEMA)
    assert findings == []
    assert set(distances) >= {features.HEIGHT_KEY, features.WIDTH_KEY, features.FORMAT_KEY}
    assert max(distances.values()) < 0.1


def test_other_sizes_and_formats_are_skew_over_the_schemas_thresholds(tmp_path):
    train = statistics_of(write_color_tree(tmp_path / "train", per_class=10, seed=1))
    production = statistics_of(write_images(tmp_path / "production", 12, size=(90, 120), fmt=("bmp", "BMP")))
    findings, distances = comparison.skew_findings(train, production, SCHEMA)
    skewed = {finding.subject: finding for finding in findings if finding.kind == "skew"}
    assert set(skewed) == {features.HEIGHT_KEY, features.WIDTH_KEY, features.FORMAT_KEY}
    assert skewed[features.HEIGHT_KEY].threshold == 0.3  # The schema's drift threshold, used for skew.
    assert skewed[features.FORMAT_KEY].threshold == comparison.DEFAULT_FORMAT_SKEW_LINF
    assert all(distances[name] > finding.threshold for name, finding in skewed.items())


def test_images_outside_the_schemas_ranges_are_findings(tmp_path):
    train = statistics_of(write_color_tree(tmp_path / "train", per_class=10, seed=1))
    production = statistics_of(write_images(tmp_path / "production", 5, size=(8, 8)))  # Under the 16 px minimum.
    findings, _ = comparison.skew_findings(train, production, SCHEMA)
    assert {finding.subject for finding in findings if finding.kind == "schema"} == {features.HEIGHT_KEY,
                                                                                     features.WIDTH_KEY}


def test_class_mix_distance_is_the_largest_share_difference():
    names = list(COLORS)
    reference = comparison.summarize([(names[0], 0.9), (names[1], 0.8), (names[2], 0.7), (names[2], 0.6)], names)
    production = comparison.summarize([(names[0], 0.5)] * 3 + [None], names)
    assert production.count == 3 and production.refused == 1 and production.mean_confidence == 0.5
    assert reference.class_shares == {names[0]: 0.25, names[1]: 0.25, names[2]: 0.5}
    assert comparison.class_mix_linf(production, reference) == pytest.approx(0.75)
    assert comparison.label_linf_threshold(SCHEMA) == 0.2


def test_monitor_command_refuses_missing_inputs_with_a_message(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["monitor", "--data", str(tmp_path), "--workdir", str(tmp_path / "none")]) == 2
    assert "No metadata store" in capsys.readouterr().err
    assert main(["monitor", "--data", str(tmp_path), "--metadata-grpc", "localhost:1"]) == 2
    assert "pass --serving-dir too" in capsys.readouterr().err
