"""Hand-made inputs for the report's unit tests: run data as run_data.gather returns it, and small ML Metadata
stores shaped as LocalDagRunner and as Kubeflow Pipelines v2 record runs."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

from ml_metadata.proto import metadata_store_pb2

from pipeline.report.store import sqlite_config

CLASSES = ("red apple", "grün", "<b>blue</b> sky")  # Markup in a class name must come out escaped.

_DRIFT = "drift: feature 'label', split 'train': L-infinity distance 0.31 > 0.2 [COMPARATOR_L_INFTY_HIGH]"
_RUN_DATA = {
    "run": {"run_id": "2026-01-02T03:04:05.000001", "pipeline": "unit-test", "status": "COMPLETE",
            "started": "2026-01-02T03:04:05+00:00", "finished": "2026-01-02T03:09:05+00:00", "wall_seconds": 300.0},
    "components": [
        {"component": "ImageExampleGen", "state": "CACHED", "seconds": 0.0, "start_offset_seconds": 0.0},
        {"component": "DataValidationGate", "state": "COMPLETE", "seconds": 1.5, "start_offset_seconds": 0.2},
        {"component": "Trainer", "state": "COMPLETE", "seconds": 250.0, "start_offset_seconds": 2.0},
        {"component": "Evaluator", "state": "COMPLETE", "seconds": 40.0, "start_offset_seconds": 252.0},
        {"component": "Pusher", "state": "COMPLETE", "seconds": 0.4, "start_offset_seconds": 292.0},
    ],
    "dataset": {
        "uri": "/runs/examples/1", "span": 2, "files_read": 65, "examples_written": 60, "quarantined": 3,
        "ignored": 2, "leaks_prevented": 0, "duplicate_groups": 1,
        "per_class_and_split": {"red apple": {"train": 15, "eval": 5}, "grün": {"train": 14, "eval": 6},
                                "<b>blue</b> sky": {"train": 13, "eval": 7}},
        "quarantined_by_reason": {
            "duplicate": {"count": 1, "files": [{"uri": "/data/grün/copy of 1.png", "class": "grün",
                                                 "detail": "same content as /data/grün/1.png"}]},
            "undecodable": {"count": 2, "files": [
                {"uri": "/data/red apple/truncated.jpg", "class": "red apple", "detail": "image file is truncated"},
                {"uri": "/data/red apple/broken.png", "class": "red apple", "detail": "broken PNG"}]}},
        "quarantine_manifest": "/runs/examples/1/quarantine.jsonl",
    },
    "validation": {
        "tfdv_anomalies": {"train": [], "eval": [{"feature": "image_format",
                                                  "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
                                                  "description": "Unexpected string values: TIFF"}]},
        "gate_state": "COMPLETE",
        "gate": {"passed": True, "errors": [], "drift_baseline": "/runs/statistics/0", "warnings": [_DRIFT]},
        "drift_baseline": "/runs/statistics/0",
        "drift_findings": [_DRIFT],
        "drift_measurements": [
            {"feature": "label", "measure": "L_INFTY", "value": 0.31, "threshold": 0.2, "exceeds": True},
            {"feature": "image_height", "measure": "JENSEN_SHANNON_DIVERGENCE", "value": 0.02, "threshold": 0.3,
             "exceeds": False}],
    },
    "training": {
        "tensorboard_logdir": "/runs/Trainer/model_run/7",
        "phases": {"phase1": {"loss": [1.2, 0.8, 0.6], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.0, 0.7, 0.55],
                              "val_accuracy": [0.6, 0.75, 0.85], "seconds": 100.0},
                   "phase2": {"loss": [0.5, 0.4], "accuracy": [0.85, 0.9], "val_loss": [0.5, 0.45],
                              "val_accuracy": [0.88, 0.9], "seconds": 120.0}},
    },
    "evaluation": {
        "blessed": False,
        "reasons": ["sparse_categorical_accuracy on label=grün = 0.5000, below the floor 0.7000 by 0.2000"],
        "compared_with_baseline": True, "accuracy_metric": "sparse_categorical_accuracy",
        "overall": {"sparse_categorical_accuracy": 0.8333, "example_count": 18.0, "calibration@class_id=1": 1.25},
        "per_class": {"red apple": {"examples": 5, "recall": 1.0, "precision": 0.8333},
                      "grün": {"examples": 6, "recall": 0.5, "precision": 1.0},
                      "<b>blue</b> sky": {"examples": 7, "recall": 1.0, "precision": 0.7778}},
        "per_class_slices": {"label=grün": {"sparse_categorical_crossentropy": 0.9}},
        "confusion_matrix": {"class_names": list(CLASSES), "actual_by_predicted": [[5, 0, 0], [1, 3, 2], [0, 0, 7]]},
        "expected_calibration_error": 0.0812,
        "calibration_curves": {name: [{"examples": 10, "mean_prediction": 0.05, "observed": 0.0},
                                      {"examples": 8, "mean_prediction": 0.85, "observed": 0.9}] for name in CLASSES},
        "blessing_uri": "/runs/Evaluator/blessing/9", "evaluation_uri": "/runs/Evaluator/evaluation/9",
    },
    "push": {"pushed": False, "version": None, "destination": None, "method": None},
    "lineage": {
        "examples": {"id": 1, "type": "Examples", "uri": "/runs/examples/1", "span": 2,
                     "produced_by_run": "2026-01-01T00:00:00.000001", "reused": True},
        "schema": {"id": 2, "type": "Schema", "uri": "/runs/schema/2", "span": None,
                   "produced_by_run": "2026-01-02T03:04:05.000001", "reused": False},
        "transform_graph": None, "model": None, "baseline_model": None,
    },
}


def run_data() -> Dict:
    """A not-blessed run with quarantined files, a TFDV anomaly and a drift warning."""
    return copy.deepcopy(_RUN_DATA)


# ---- ML Metadata stores -------------------------------------------------------------------------------------

class StoreBuilder:
    """Writes runs into a SQLite ML Metadata store the way an orchestrator records them."""

    def __init__(self, path: str, kubeflow: bool = False):
        import ml_metadata as mlmd

        config = sqlite_config(path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = mlmd.MetadataStore(config)
        self.kubeflow = kubeflow
        self._type_ids: Dict[Tuple[str, str], int] = {}

    def _type_id(self, kind: str, name: str) -> int:
        if (kind, name) not in self._type_ids:
            proto = {"artifact": metadata_store_pb2.ArtifactType, "execution": metadata_store_pb2.ExecutionType,
                     "context": metadata_store_pb2.ContextType}[kind](name=name)
            put = {"artifact": self.store.put_artifact_type, "execution": self.store.put_execution_type,
                   "context": self.store.put_context_type}[kind]
            self._type_ids[(kind, name)] = put(proto)
        return self._type_ids[(kind, name)]

    def _context(self, type_name: str, name: str) -> metadata_store_pb2.Context:
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        context = metadata_store_pb2.Context(type_id=self._type_id("context", type_name), name=name)
        context.id = self.store.put_contexts([context])[0]
        return context

    def artifact(self, type_name: str, uri: str, **properties) -> metadata_store_pb2.Artifact:
        if self.kubeflow:
            type_name = "tfx." + type_name
        artifact = metadata_store_pb2.Artifact(type_id=self._type_id("artifact", type_name), uri=uri)
        for key, value in properties.items():
            field = {int: "int_value", float: "double_value"}.get(type(value), "string_value")
            setattr(artifact.custom_properties[key], field, value)
        artifact.id = self.store.put_artifacts([artifact])[0]
        return artifact

    def execution(self, run_id: str, component: str, state: str = "COMPLETE",
                  outputs: Optional[Dict[str, Sequence]] = None, inputs: Optional[Dict[str, Sequence]] = None) -> int:
        pipeline = "unit-test"
        execution = metadata_store_pb2.Execution(type_id=self._type_id("execution", f"components.{component}"),
                                                 last_known_state=metadata_store_pb2.Execution.State.Value(state))
        contexts: List[metadata_store_pb2.Context] = []
        if self.kubeflow:  # KFP v2 names the task on the execution, the run and pipeline by system.* contexts.
            execution.custom_properties["task_name"].string_value = component
            contexts += [self._context("system.PipelineRun", run_id), self._context("system.Pipeline", pipeline)]
        else:
            contexts += [self._context("pipeline_run", run_id), self._context("pipeline", pipeline),
                         self._context("node", f"{pipeline}.{component}")]
        events = []
        for event_type, artifacts_by_key in ((metadata_store_pb2.Event.OUTPUT, outputs or {}),
                                             (metadata_store_pb2.Event.INPUT, inputs or {})):
            by_artifact: Dict[int, Tuple] = {}  # As TFX does: one event per artifact, a step pair per key.
            for key, artifacts in artifacts_by_key.items():
                for index, artifact in enumerate(artifacts):
                    _, event = by_artifact.setdefault(artifact.id,
                                                      (artifact, metadata_store_pb2.Event(type=event_type)))
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
            events += by_artifact.values()
        execution_id, _, _ = self.store.put_execution(execution, events, contexts)
        return execution_id


def write_two_runs(path: str, kubeflow: bool = False) -> Tuple[str, str]:
    """An older run that blessed and pushed version 1, and a newer one whose Trainer failed."""
    builder = StoreBuilder(path, kubeflow)
    first, second = "run-1-older", "run-2-newer"
    examples = builder.artifact("Examples", "/runs/examples/1", examples_written=60)
    builder.execution(first, "ImageExampleGen", outputs={"examples": [examples]})
    model = builder.artifact("Model", "/runs/model/3")
    model_run = builder.artifact("ModelRun", "/runs/model_run/3")
    builder.execution(first, "Trainer", inputs={"examples": [examples]}, outputs={"model": [model],
                                                                                  "model_run": [model_run]})
    blessing = builder.artifact("ModelBlessing", "/runs/blessing/4", blessed=1, accuracy=0.9167)
    builder.execution(first, "Evaluator", inputs={"model": [model]}, outputs={"blessing": [blessing]})
    pushed = builder.artifact("PushedModel", "/runs/pushed/5", pushed=1, pushed_version="1",
                              pushed_destination="/serving/1")
    builder.execution(first, "Pusher", inputs={"model": [model]}, outputs={"pushed_model": [pushed]})
    builder.execution(second, "ImageExampleGen", state="CACHED", outputs={"examples": [examples]})
    builder.execution(second, "Trainer", state="FAILED", inputs={"examples": [examples]})
    return first, second
