"""Ingestion: walking the tree, checking files, splitting, and the real Beam executor end to end."""
import gzip
import hashlib
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
from components.ingestion.component import ImageExampleGen, input_pattern
from tests import corpus
from tests.conftest import COLORS, encode, noisy_color, write_color_tree

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
    paths = [hashlib.sha256(f"image {i}".encode()).hexdigest() for i in range(4000)]
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
    (b"this is not an image at all", "not_an_image"),
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


def _run_executor(input_base: Path, output_dir: Path, eval_percent: int = 30, resolved_pattern: str = None):
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    component = ImageExampleGen(input_base=str(input_base), eval_percent=eval_percent)
    if resolved_pattern:  # As the driver passes it after resolving {SPAN}.
        component.exec_properties["input_config"] = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="images", pattern=resolved_pattern)])
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
    assert report["quarantined_by_reason"] == {"not_an_image": 1, "empty_file": 1}
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


def test_example_writer_moves_each_bundles_file_to_a_shard_and_leaves_one_empty_shard_for_an_empty_split(
        tmp_path):
    from components.ingestion import example_files

    split_uris = {split: str(tmp_path / f"Split-{split}") for split in image_tree.SPLITS}
    unfinished = str(tmp_path / ".unfinished_examples")
    records = [(image_tree.TRAIN_SPLIT, f"example {index}".encode()) for index in range(5)]
    writer, written = example_files._WriteBundleFiles(unfinished), []
    for bundle in (records[:3], records[3:]):
        writer.start_bundle()
        for record in bundle:
            writer.process(record)
        written += [windowed.value for windowed in writer.finish_bundle()]
    # A failed attempt's file: written, never reported, so never moved.
    (Path(unfinished) / image_tree.TRAIN_SPLIT / "failed attempt.gz").write_bytes(b"partial")
    example_files.finalize(written, split_uris, unfinished)

    train = sorted(Path(split_uris[image_tree.TRAIN_SPLIT]).iterdir())
    assert [path.name for path in train] == [example_files.shard_name(0, 2), example_files.shard_name(1, 2)]
    read = [r.numpy() for path in train for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    assert sorted(read) == sorted(example for _, example in records)
    empty = list(Path(split_uris[image_tree.EVAL_SPLIT]).iterdir())
    assert [path.name for path in empty] == [example_files.shard_name(0, 1)]
    assert list(tf.data.TFRecordDataset(str(empty[0]), compression_type="GZIP")) == []
    assert not os.path.exists(unfinished)


def test_ingestion_graph_reads_side_inputs_only_for_its_two_global_combines(color_tree, tmp_path, monkeypatch):
    """The local runner sizes each side input it loads by walking every imported module's globals (about
    10 ms each with TensorFlow imported): Beam's Write read 6 per split. What is left is the default value
    that CombineGlobally injects for an empty input, for the report and for the list of written files."""
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    pipelines = []
    make_pipeline = ingestion_executor.Executor._make_beam_pipeline
    monkeypatch.setattr(ingestion_executor.Executor, "_make_beam_pipeline",
                        lambda self: pipelines.append(make_pipeline(self)) or pipelines[-1])
    _run_executor(color_tree, tmp_path / "examples")
    transforms = pipelines[0].to_runner_api().components.transforms.values()
    with_side_inputs = sorted(transform.unique_name.split("/")[0] for transform in transforms
                              if transform.spec.urn == common_urns.primitives.PAR_DO.urn
                              and beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload).side_inputs)
    assert with_side_inputs == ["GatherReport", "WriteSplits"]


def test_example_files_are_what_tfx_readers_open(color_tree, tmp_path):
    """Written by ingestion's own sink (gzip level 0, no reshuffle): named as TFX's WriteSplit names them and
    read by tfx_bsl's TFExampleRecord, which StatisticsGen and Transform use and which picks GZIP by suffix."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    from tfx.components.example_gen import write_split
    from tfx_bsl.tfxio import tf_example_record

    output_dir = tmp_path / "examples"
    _run_executor(color_tree, output_dir)
    files = sorted(output_dir.glob("Split-*/*"))
    assert [path.name for path in files] == [f"{write_split.DEFAULT_FILE_NAME}-00000-of-00001.gz"] * 2
    for path in files:
        with gzip.open(path) as handle:
            assert handle.read(1)  # A gzip stream.
    with beam.Pipeline() as pipeline:
        rows = (pipeline
                | tf_example_record.TFExampleRecord(file_pattern=str(output_dir / "Split-*" / "*")).BeamSource()
                | beam.Map(lambda batch: batch.num_rows)
                | beam.CombineGlobally(sum))
        assert_that(rows, equal_to([18]))


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


# The bad-input corpus (tests/corpus.py): every file's fate, checked against the report and the splits.

def _outcomes(report, examples_by_uri, root: Path):
    """{relative path: (outcome, reason or steps)} as the pipeline reports it."""
    outcomes = {}
    normalized = {entry["uri"]: tuple(entry["steps"]) for entry in report["normalized"]}
    for uri in examples_by_uri:
        outcomes[os.path.relpath(uri, root)] = (corpus.EXAMPLE, normalized.get(uri, ()))
    for entry in report["quarantined"]:
        outcomes[os.path.relpath(entry["uri"], root)] = (corpus.QUARANTINED, entry["reason"])
    for entry in report["ignored"]:
        outcomes[os.path.relpath(entry["uri"], root)] = (corpus.IGNORED, None)
    return outcomes


def _expected_outcomes(expected):
    return {relative: (e.outcome, e.steps if e.outcome == corpus.EXAMPLE else e.reason)
            for relative, e in expected.items()}


def _examples_by_uri(output_dir: Path):
    return {e.features.feature[features.SOURCE_URI_KEY].bytes_list.value[0].decode(): (split, e)
            for split in image_tree.SPLITS for e in _read_split(output_dir, split)}


def _files_in(root: Path):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names)


@pytest.fixture(scope="module")
def ingested_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "images"
    expected = corpus.write_corpus(root)
    output_dir = tmp_path_factory.mktemp("corpus_examples")
    artifact = _run_executor(root, output_dir, eval_percent=50)
    report = json.loads((output_dir / ingestion_executor.REPORT_FILE_NAME).read_text())
    return root, expected, output_dir, report, artifact


def test_corpus_every_file_has_the_expected_fate(ingested_corpus):
    root, expected, output_dir, report, _ = ingested_corpus
    assert _files_in(root) == sorted(expected)  # The generator's list is the whole tree.
    assert _outcomes(report, _examples_by_uri(output_dir), root) == _expected_outcomes(expected)


def test_corpus_counts_balance_and_name_each_reason(ingested_corpus):
    root, expected, _, report, artifact = ingested_corpus
    assert report["files_read"] == len(_files_in(root))
    assert report["files_read"] == report["examples_written"] + report["quarantined_count"] + report["ignored_count"]
    assert report["quarantined_by_reason"] == {"conflicting_labels": 2, "duplicate": 1, "empty_file": 1,
                                               "not_an_image": 1, "too_many_pixels": 1, "undecodable": 1}
    per_class = {name: sum(splits.values()) for name, splits in report["examples_per_class_and_split"].items()}
    assert per_class == {"cat": 13, "dog": 2, corpus.ONE_IMAGE_CLASS: 1, corpus.EMPTY_CLASS: 0}
    assert artifact.get_int_custom_property("duplicate_groups") == 2
    manifest = [json.loads(line) for line in Path(artifact.get_string_custom_property("quarantine_manifest"))
                .read_text().splitlines()]
    assert sorted((os.path.relpath(e["uri"], root), e["reason"]) for e in manifest) == sorted(
        (relative, e.reason) for relative, e in expected.items() if e.outcome == corpus.QUARANTINED)


def test_files_in_many_small_batches_keep_their_fate_and_the_balance(tmp_path, monkeypatch):
    # Batches of 2 cut across class folders and mix candidates, quarantined and ignored files.
    monkeypatch.setattr(ingestion_executor, "FILES_PER_ELEMENT", 2)
    root = tmp_path / "images"
    expected = corpus.write_corpus(root)
    artifact = _run_executor(root, tmp_path / "examples", eval_percent=50)
    report = json.loads((tmp_path / "examples" / ingestion_executor.REPORT_FILE_NAME).read_text())
    assert _outcomes(report, _examples_by_uri(tmp_path / "examples"), root) == _expected_outcomes(expected)
    assert artifact.get_int_custom_property("files_read") == len(expected)


def test_content_grouping_carries_a_reference_not_the_image(tmp_path):
    # Beam's local runner holds a GroupByKey's whole input in memory: with the images in it, peak memory grew
    # with the tree. The reading stage sets each example aside and passes on where it is.
    root = tmp_path / "images" / "cat"
    root.mkdir(parents=True)
    items = []
    for index in range(3):
        path = root / f"photo {index}.png"
        corpus.camera_photo(index, 300, 200).save(path)
        items.append(("cat", str(path), True, None))
    read = ingestion_executor._ReadAndCheck(LIMITS, len(items), str(tmp_path / "spill"), threads=2)
    read.setup()
    read.start_bundle()
    candidates = [*read.process(items), *(windowed.value for windowed in read.finish_bundle())]
    read.teardown()
    by_uri = {fields[0]: (sha256, fields) for sha256, fields in candidates}
    assert sorted(by_uri) == sorted(path for _, path, _, _ in items)
    reader = ingestion_executor.example_spill.SpillReader()
    for uri, (sha256, fields) in by_uri.items():
        assert len(repr(fields)) < 1000  # Path, class, split, steps and a (file, offset, length) reference.
        checked = image_tree.check_image(Path(uri).read_bytes(), LIMITS)
        assert checked.sha256 == sha256 and len(checked.encoded) > 10_000
        # Compared parsed: protobuf does not promise one byte order for a map's entries.
        assert tf.train.Example.FromString(reader.read(fields[-1])) == image_tree.make_example(checked, "cat", uri)
    reader.close()


def test_set_aside_examples_are_removed_after_the_run(ingested_corpus):
    _, _, output_dir, _, _ = ingested_corpus
    assert not (output_dir / ingestion_executor.example_spill.SPILL_FOLDER_NAME).exists()
    assert sorted(path.name for path in output_dir.iterdir() if path.name.startswith(".")) == []


def test_batches_are_consecutive_and_bounded():
    assert ingestion_executor.batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert ingestion_executor.batches([], 2) == []


def test_corpus_examples_are_8_bit_rgb_or_gray_with_their_metadata(ingested_corpus):
    root, expected, output_dir, _, _ = ingested_corpus
    for uri, (_, example) in _examples_by_uri(output_dir).items():
        feature = example.features.feature
        relative = os.path.relpath(uri, root)
        decoded = tf.io.decode_image(feature[features.IMAGE_KEY].bytes_list.value[0], expand_animations=False)
        assert decoded.dtype == tf.uint8 and decoded.shape[-1] in (1, 3), relative
        width, height = expected[relative].size or (24, 24)
        assert decoded.shape[:2] == (height, width), relative
        assert (feature[features.HEIGHT_KEY].int64_list.value[0], feature[features.WIDTH_KEY].int64_list.value[0]) \
            == (height, width)
        data = (root / relative).read_bytes()
        assert feature[features.BYTE_SIZE_KEY].int64_list.value[0] == len(data)
        assert feature[features.SHA256_KEY].bytes_list.value[0].decode() == hashlib.sha256(data).hexdigest()
        assert feature[features.LABEL_KEY].bytes_list.value[0].decode() == relative.split("/")[0]
    formats = {os.path.relpath(uri, root): e.features.feature[features.FORMAT_KEY].bytes_list.value[0].decode()
               for uri, (_, e) in _examples_by_uri(output_dir).items()}
    assert formats["cat/animated.gif"] == "GIF" and formats["cat/web.WebP"] == "WEBP"
    assert formats["cat/bitmap.bmp"] == "BMP" and formats["cat/cmyk.jpg"] == "JPEG"


def test_exif_rotation_and_alpha_are_applied_to_the_pixels():
    rotated = image_tree.check_image(corpus.exif_rotated_jpeg(13), LIMITS)
    upright = np.asarray(Image.open(io.BytesIO(corpus.exif_rotated_jpeg(13))).transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(tf.io.decode_image(rotated.encoded).numpy(), upright)
    transparent = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # Fully transparent red: shows as white.
    checked = image_tree.check_image(encode(np.asarray(transparent), "PNG"), LIMITS)
    assert (tf.io.decode_image(checked.encoded).numpy() == 255).all()
    assert checked.channels == 4


def test_sixteen_bit_samples_are_scaled_not_clipped():
    samples = np.array([[0, 257 * 100, 65535, 32768]], dtype=np.uint16).repeat(4, axis=0)
    checked = image_tree.check_image(encode(samples, "PNG"), LIMITS)
    assert tf.io.decode_image(checked.encoded, channels=1).numpy()[0, :, 0].tolist() == [0, 100, 255, 128]


def test_header_bomb_is_refused_before_decoding():
    with pytest.raises(image_tree.RejectedImage) as rejected:
        image_tree.check_image(corpus.header_bomb_png(30000, 30000), LIMITS)
    assert rejected.value.reason == "too_many_pixels" and "900000000 pixels" in rejected.value.detail
    with pytest.raises(image_tree.RejectedImage, match="too_many_pixels: 3000x3000 > limit"):
        image_tree.check_image(corpus.header_bomb_png(3000, 3000), image_tree.Limits(max_pixels=1_000_000))


def test_explicit_train_and_eval_folders_are_honoured_and_a_leak_is_dropped_from_eval(tmp_path):
    root = tmp_path / "images"
    expected = corpus.write_explicit_split_corpus(root)
    _run_executor(root, tmp_path / "examples")
    report = json.loads((tmp_path / "examples" / ingestion_executor.REPORT_FILE_NAME).read_text())
    examples = _examples_by_uri(tmp_path / "examples")
    assert _outcomes(report, examples, root) == _expected_outcomes(expected)
    assert {os.path.relpath(uri, root): split for uri, (split, _) in examples.items()} == {
        "train/cat/a.png": "train", "train/cat/leaked.png": "train", "train/dog/b.png": "train",
        "eval/dog/c.png": "eval"}
    assert report["layout"] == "explicit_splits" and report["leaks_prevented"] == 1
    assert {e.features.feature[features.LABEL_KEY].bytes_list.value[0].decode() for _, e in examples.values()} \
        == {"cat", "dog"}


def test_a_renamed_file_keeps_its_split(color_tree, tmp_path):
    _run_executor(color_tree, tmp_path / "before")
    original = color_tree / "grün" / "img 1.JPG"
    original.rename(color_tree / "grün" / "völlig neuer Name.jpg")
    _run_executor(color_tree, tmp_path / "after")

    def split_by_hash(output_dir):
        return {e.features.feature[features.SHA256_KEY].bytes_list.value[0]: split
                for split, e in _examples_by_uri(output_dir).values()}
    assert split_by_hash(tmp_path / "before") == split_by_hash(tmp_path / "after")


def test_spans_pick_the_newest_span_folder(tmp_path):
    from tfx.components.example_gen import utils as example_gen_utils
    from tfx.proto import example_gen_pb2

    for span in (1, 2):
        write_color_tree(tmp_path / "images" / f"span-{span}", per_class=span, seed=span)
    pattern = input_pattern("span-{SPAN}")
    # What FileBasedExampleGen's driver does before the executor runs: find the newest span, fill the pattern.
    _, span, _ = example_gen_utils.calculate_splits_fingerprint_span_and_version(
        str(tmp_path / "images"), [example_gen_pb2.Input.Split(name="images", pattern=pattern)])
    assert span == 2
    resolved = pattern.replace("{SPAN}", str(span))
    _run_executor(tmp_path / "images", tmp_path / "examples", resolved_pattern=resolved)
    report = json.loads((tmp_path / "examples" / ingestion_executor.REPORT_FILE_NAME).read_text())
    assert report["root"] == str(tmp_path / "images" / "span-2") and report["examples_written"] == 6
    with pytest.raises(ValueError, match="SPAN"):
        ImageExampleGen(input_base=str(tmp_path), span_folder="dated/*")
