"""Where a killed Trainer finds its checkpoints again: a folder under the pipeline root that is the same for
every run that trains on the same examples, not one derived from the Trainer's output URI or from its input
URIs, which on KFP both hold the run id (every KFP run re-runs ImageExampleGen, uncached there, so a rerun's
examples are the same records under a new URI)."""
import json
import shutil
from pathlib import Path

import tensorflow as tf
from tfx import v1 as tfx

from components import features
from components.trainer.run import checkpoint_dir_for
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

ROOT = "gs://bucket/root"


def trainer_custom_config() -> dict:
    config = PipelineConfig(pipeline_name="imagepipe", pipeline_root=ROOT, data_root="gs://bucket/images",
                            serving_dir="gs://bucket/serving")
    trainer = next(c for c in create_pipeline(config).components if c.id == "Trainer")
    custom_config = trainer.exec_properties["custom_config"]
    return json.loads(custom_config) if isinstance(custom_config, str) else custom_config


def records(split: str, count: int = 6, label_first: bool = True) -> list:
    """Examples as ingestion writes them, with their two features serialized in a chosen order: the order in
    which a map field serializes is not part of protobuf's contract (upb's follows its hash table, which
    differed between two KFP runs of the same ingestion), so the order is fixed here by concatenating two
    one-feature messages, which a parser merges into one Example (protobuf's documented merge of repeated
    occurrences of a message field)."""
    def one_feature(key: str, value: bytes) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature={
            key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))})).SerializeToString()

    serialized = []
    for index in range(count):
        label = one_feature(features.LABEL_KEY, f"class-{index % 2}".encode())
        image = one_feature(features.IMAGE_KEY, f"{split}-{index}".encode())
        serialized.append(label + image if label_first else image + label)
    return serialized


def write_run(local_root: Path, run_id: str, transform_output: str, shards: int, reverse: bool,
              custom_config: dict) -> tfx.components.FnArgs:
    """A run's Trainer inputs in KFP's layout, <root>/<pipeline>/<run id>/<task>/<uuid>/<key>
    (kubeflow/pipelines backend/src/v2/driver/driver.go, provisionOutputs): the same records written by
    another run in another number of shards and order, as Beam may, with another order of each example's
    features."""
    run_root = local_root / "imagepipe" / run_id
    for split in ("train", "eval"):
        values = records(split, label_first=not reverse)[::-1] if reverse else records(split)
        folder = run_root / "DataQuality" / f"uuid-{run_id}" / "filtered_examples" / f"Split-{split}"
        folder.mkdir(parents=True)
        for shard in range(shards):
            with tf.io.TFRecordWriter(str(folder / f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz"),
                                      options="GZIP") as writer:
                for value in values[shard::shards]:
                    writer.write(value)
    graph = run_root / "Transform" / f"uuid-{run_id}" / "transform_graph"
    shutil.copytree(transform_output, graph)
    task_root = run_root / "Trainer" / f"uuid-{run_id}"
    examples = run_root / "DataQuality" / f"uuid-{run_id}" / "filtered_examples"
    return tfx.components.FnArgs(
        custom_config=custom_config, train_files=[str(examples / "Split-train" / "*")],
        eval_files=[str(examples / "Split-eval" / "*")], transform_output=str(graph),
        model_run_dir=str(task_root / "model_run"), serving_model_dir=str(task_root / "model" / "Format-Serving"))


def test_a_rerun_on_kfp_finds_the_killed_runs_checkpoints_under_the_pipeline_root(tmp_path, transform_output_dir):
    custom_config = trainer_custom_config()
    assert records("train") != records("train", label_first=False)  # Same examples, other bytes:
    assert [tf.train.Example.FromString(r) for r in records("train")] == [
        tf.train.Example.FromString(r) for r in records("train", label_first=False)]
    killed = checkpoint_dir_for(write_run(tmp_path, "run-1", transform_output_dir, 1, False, custom_config))
    rerun = checkpoint_dir_for(write_run(tmp_path, "run-2", transform_output_dir, 3, True, custom_config))
    assert killed == rerun
    assert killed.startswith(f"{ROOT}/Trainer/checkpoints/")


def test_other_inputs_get_other_checkpoints(tmp_path, transform_output_dir):
    custom_config = trainer_custom_config()
    changed = {**custom_config, "training": {**custom_config["training"], "phase1_epochs": 99}}
    fn_args = write_run(tmp_path, "run-1", transform_output_dir, 1, False, custom_config)
    assert checkpoint_dir_for(fn_args) != checkpoint_dir_for(
        write_run(tmp_path, "run-2", transform_output_dir, 1, False, changed))
    # One more training example is other data.
    with tf.io.TFRecordWriter(fn_args.train_files[0].replace("*", "extra.gz"), options="GZIP") as writer:
        writer.write(records("extra", 1)[0])
    assert checkpoint_dir_for(fn_args) != checkpoint_dir_for(
        write_run(tmp_path, "run-3", transform_output_dir, 1, False, custom_config))
