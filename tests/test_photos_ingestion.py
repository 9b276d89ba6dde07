"""Camera-size photos at ingestion: the stored-size policy, decoding at reduced scale that still refuses
truncated files, the reading threads (with the files_read balance) and the progress log."""
import hashlib
import io
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import features
from components.ingestion import executor as ingestion_executor
from components.ingestion import image_tree
from components.ingestion.component import ImageExampleGen
from tests import corpus

STORED_SIDE = 256  # Below the camera corpus' 1200 px, above the bad-input corpus' 24-64 px.


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def test_large_jpeg_is_stored_downscaled_as_jpeg_with_the_originals_metadata():
    original = _jpeg(corpus.camera_photo(1, 2000, 1500), quality=95)
    checked = image_tree.check_image(original, image_tree.Limits(max_stored_side=STORED_SIDE))
    with Image.open(io.BytesIO(checked.encoded)) as stored:
        # Decoded by libjpeg at 1/8 scale (250x188), which is within DRAFT_MIN_SHARE of 256: not resized again.
        assert (stored.format, stored.size) == ("JPEG", (250, 188))
    assert checked.normalizations == (image_tree.DOWNSCALED_STEP,)
    assert (checked.width, checked.height, checked.byte_size) == (2000, 1500, len(original))
    assert checked.sha256 == hashlib.sha256(original).hexdigest()
    assert len(checked.encoded) < len(original) / 10


def test_downscaled_copy_shows_the_same_picture():
    photo = corpus.camera_photo(2, 1600, 1200)
    checked = image_tree.check_image(_jpeg(photo, quality=95), image_tree.Limits(max_stored_side=STORED_SIDE))
    stored = np.asarray(Image.open(io.BytesIO(checked.encoded)).convert("RGB"), np.float32)
    reference = np.asarray(photo.resize(stored.shape[1::-1], Image.Resampling.LANCZOS), np.float32)
    assert np.abs(stored - reference).mean() < 2.0  # 8-bit levels: JPEG and reduced-scale decoding only.


def test_large_png_is_box_reduced_by_an_integer_factor_and_shows_the_same_picture():
    photo = corpus.camera_photo(7, 2000, 1500)
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    checked = image_tree.check_image(buffer.getvalue(), image_tree.Limits(max_stored_side=STORED_SIDE))
    stored = Image.open(io.BytesIO(checked.encoded))
    # 2000 / 10 = 200 keeps DRAFT_MIN_SHARE of 256 (192): reduced by 10, not resized again.
    assert (stored.format, stored.size) == ("JPEG", (200, 150))
    reference = np.asarray(photo.resize(stored.size, Image.Resampling.LANCZOS), np.float32)
    assert np.abs(np.asarray(stored.convert("RGB"), np.float32) - reference).mean() < 2.0


def test_zero_keeps_originals_and_small_images_pass_through():
    original = _jpeg(corpus.camera_photo(3, 1600, 1200))
    assert image_tree.check_image(original, image_tree.Limits(max_stored_side=0)).encoded == original
    small = _jpeg(corpus.camera_photo(4, 200, 150))
    assert image_tree.check_image(small, image_tree.Limits(max_stored_side=STORED_SIDE)).encoded == small


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_large_jpeg_is_refused_although_decoded_at_reduced_scale(progressive):
    data = _jpeg(corpus.camera_photo(5, 2000, 1500), progressive=progressive)
    for cut in (len(data) // 2, len(data) - 200):
        with pytest.raises(image_tree.RejectedImage) as rejected:
            image_tree.check_image(data[:cut], image_tree.Limits(max_stored_side=STORED_SIDE))
        assert rejected.value.reason == "undecodable"


def test_lossless_copy_is_png_at_zlib_level_1_with_the_run_length_strategy():
    """The sideways JPEG stored upright: exactly the bytes of Pillow's PNG writer with zlib's Z_RLE strategy
    (faster and smaller than the default strategy on camera photos; see image_tree._PNG_COMPRESS_TYPE)."""
    sideways = corpus.with_exif_orientation(_jpeg(corpus.camera_photo(8, 600, 400)), 6)
    checked = image_tree.check_image(sideways, image_tree.Limits())
    with Image.open(io.BytesIO(sideways)) as image:
        upright = image.transpose(Image.Transpose.ROTATE_270)
    expected = io.BytesIO()
    upright.save(expected, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    assert checked.normalizations == ("exif_orientation",)
    assert checked.encoded == expected.getvalue()


def test_local_files_are_read_without_tf_gfile_and_remote_ones_through_it(tmp_path, monkeypatch):
    data = _jpeg(corpus.camera_photo(6, 64, 48))
    local = tmp_path / "photo.jpg"
    local.write_bytes(data)
    remote = "ram://photos/photo.jpg"
    with tf.io.gfile.GFile(remote, "wb") as handle:
        handle.write(data)
    opened = []
    gfile = tf.io.gfile.GFile
    monkeypatch.setattr(tf.io.gfile, "GFile", lambda path, mode: opened.append(path) or gfile(path, mode))
    assert image_tree.read_file(str(local), image_tree.Limits()) == data
    assert opened == []
    assert image_tree.read_file(remote, image_tree.Limits()) == data
    assert opened == [remote]
    for path in (str(local), remote):
        with pytest.raises(image_tree.RejectedImage, match="too_many_bytes"):
            image_tree.read_file(path, image_tree.Limits(max_bytes=len(data) - 1))


def test_component_refuses_a_negative_stored_side():
    with pytest.raises(ValueError, match="max_stored_side"):
        ImageExampleGen(input_base="/data", max_stored_side=-1)


def _ingest(input_base: Path, output_dir: Path, **component_options):
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    component = ImageExampleGen(input_base=str(input_base), eval_percent=30, **component_options)
    exec_properties = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
                       for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    ingestion_executor.Executor().Do({}, {"examples": [examples]}, exec_properties)
    return json.loads((output_dir / ingestion_executor.REPORT_FILE_NAME).read_text())


def _stored_examples(output_dir: Path):
    examples = {}
    for path in sorted(output_dir.glob("Split-*/*.gz")):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            examples[example.features.feature[features.SOURCE_URI_KEY].bytes_list.value[0].decode()] = example
    return examples


@pytest.fixture(scope="module")
def ingested_photos(tmp_path_factory):
    """The bad-input corpus and the camera corpus in one tree, ingested on 2 threads at STORED_SIDE."""
    root = tmp_path_factory.mktemp("photos") / "images"
    expected = {**corpus.write_corpus(root), **corpus.write_camera_corpus(root)}
    output_dir = tmp_path_factory.mktemp("photo_examples")
    report = _ingest(root, output_dir, max_stored_side=STORED_SIDE, read_threads=2)
    return root, expected, report, _stored_examples(output_dir)


def test_every_file_has_its_expected_fate_and_the_balance_holds(ingested_photos):
    root, expected, report, examples = ingested_photos
    outcomes = {os.path.relpath(uri, root): corpus.EXAMPLE for uri in examples}
    outcomes.update({os.path.relpath(e["uri"], root): e["reason"] for e in report["quarantined"]})
    outcomes.update({os.path.relpath(e["uri"], root): corpus.IGNORED for e in report["ignored"]})
    assert outcomes == {relative: e.reason or e.outcome for relative, e in expected.items()}
    assert report["files_read"] == len(expected)
    assert report["files_read"] == report["examples_written"] + report["quarantined_count"] + report["ignored_count"]


def test_camera_photos_are_stored_downscaled_with_their_original_size_and_hash(ingested_photos):
    root, expected, report, examples = ingested_photos
    steps = {os.path.relpath(entry["uri"], root): tuple(entry["steps"]) for entry in report["normalized"]}
    for relative, fate in expected.items():
        if fate.outcome != corpus.EXAMPLE or not relative.split("/")[-1].startswith("camera"):
            continue
        feature = examples[str(root / relative)].features.feature
        stored = tf.io.decode_image(feature[features.IMAGE_KEY].bytes_list.value[0], expand_animations=False)
        width, height = fate.size
        # Reduced by an integer factor (libjpeg's scale or a box reduction), Lanczos only above STORED_SIDE.
        assert image_tree.DRAFT_MIN_SHARE * STORED_SIDE <= max(stored.shape[:2]) <= STORED_SIDE
        assert (stored.shape[1] > stored.shape[0]) == (width > height)
        assert (feature[features.WIDTH_KEY].int64_list.value[0], feature[features.HEIGHT_KEY].int64_list.value[0]) \
            == (width, height)
        data = (root / relative).read_bytes()
        assert feature[features.BYTE_SIZE_KEY].int64_list.value[0] == len(data)
        assert feature[features.SHA256_KEY].bytes_list.value[0].decode() == hashlib.sha256(data).hexdigest()
        assert steps[relative] == fate.steps


def test_progress_names_files_done_rate_and_time_left_without_flooding(caplog):
    now = [0.0]
    progress = ingestion_executor.Progress(total=100, interval=10.0, clock=lambda: now[0])
    lines = []
    with caplog.at_level(logging.INFO):
        for _ in range(100):
            now[0] += 0.5  # 2 files/s: 50 s in all, a line every 10 s (the fifth at the end).
            lines.append(progress.add())
        now[0] += 0.1
        progress.add(0)  # Nothing new within the interval: no line.
    logged = [line for line in lines if line]
    assert len(logged) == 5 and len(caplog.records) == 5
    assert logged[0] == "ImageExampleGen: 20 of 100 files checked (20%), 2.0 files/s, about 40 s left"
    assert logged[-1].startswith("ImageExampleGen: 100 of 100 files checked (100%)")
