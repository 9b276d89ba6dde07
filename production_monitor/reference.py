"""The served version's reference data, found in ML Metadata: the run whose Pusher pushed (or found already
served) that version, its StatisticsGen output (training statistics), the examples those statistics describe
(the eval split) and its schema."""
import dataclasses
import posixpath
from typing import Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.ingestion.image_tree import EVAL_SPLIT, TRAIN_SPLIT
from pipeline.report import run_data
from pipeline.report.store import MetadataReader, RunRecord
from serving.serving_dir import ServingDir

SCHEMA_FILE = "schema.pbtxt"  # What ImportSchemaGen/SchemaGen write (tfx/components/schema_gen/executor.py).


@dataclasses.dataclass(frozen=True)
class ServedReference:
    version: int
    version_dir: str
    run_id: str
    train_statistics: statistics_pb2.DatasetFeatureStatisticsList
    eval_examples_pattern: str  # GZIP TFRecords of tf.Example, the eval split the version was evaluated on.
    schema: schema_pb2.Schema


def served_version(serving_dir: str, version: Optional[int] = None) -> int:
    """The version TF Serving serves by default (the newest complete one), or the named one if complete."""
    directory = ServingDir(serving_dir)
    if version is None:
        version = directory.latest_version()
        if version is None:
            raise ValueError(f"No complete model version under {serving_dir}: nothing is served yet.")
    directory.require_complete(version)
    return version


def _served_by(run: RunRecord) -> Optional[int]:
    """The version the run pushed or found already served (what its report says), else None."""
    push = run_data.push_section(run)
    return push["version"] if push and push["pushed"] else None


def _only_output(run: RunRecord, component: str, key: str):
    record = run.component(component)
    artifacts = record.outputs.get(key) if record else None
    return artifacts[0] if artifacts else None


def _read_statistics(statistics_uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    path = posixpath.join(statistics_uri, f"Split-{split}", run_data.STATISTICS_FILE)
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    with tf.io.gfile.GFile(path, "rb") as handle:
        statistics.ParseFromString(handle.read())
    return statistics


def _read_schema(schema_uri: str) -> schema_pb2.Schema:
    from google.protobuf import text_format

    with tf.io.gfile.GFile(posixpath.join(schema_uri, SCHEMA_FILE), "r") as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def find_reference(reader: MetadataReader, serving_dir: str, version: Optional[int] = None) -> ServedReference:
    """The newest run that pushed the served version and still has its statistics; ValueError if none."""
    number = served_version(serving_dir, version)
    version_dir = ServingDir(serving_dir).version_dir(number)
    for context in reader.run_contexts():
        run = reader.read_run(context)
        if _served_by(run) != number:
            continue
        statistics = _only_output(run, "StatisticsGen", "statistics")
        schema = run.first_output_of_type("Schema")
        statistics_gen = run.component("StatisticsGen")
        examples = statistics_gen.inputs.get("examples", [None])[0] if statistics_gen else None
        if statistics is None or schema is None or examples is None:
            continue
        return ServedReference(
            version=number, version_dir=version_dir, run_id=run.run_id,
            train_statistics=_read_statistics(statistics.uri, TRAIN_SPLIT),
            eval_examples_pattern=posixpath.join(examples.uri, f"Split-{EVAL_SPLIT}", "*"),
            schema=_read_schema(schema.uri))
    raise ValueError(f"No run in this metadata store pushed version {number} ({version_dir}) with its statistics: "
                     "point --workdir/--metadata-grpc at the store of the pipeline that serves it.")
