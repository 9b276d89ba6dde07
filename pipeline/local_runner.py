"""Runs the pipeline on a laptop: LocalDagRunner, SQLite ML Metadata, the Beam DirectRunner.

Everything lives under one work directory:
  <workdir>/pipeline_root/   component outputs (artifacts)
  <workdir>/metadata.sqlite  ML Metadata store (lineage, caching, the baseline for the next run)
  <workdir>/serving/         the Pusher's destination, in TF Serving's <version>/saved_model.pb layout
  <workdir>/run_summary.json what the last run did, as the CLI prints it
  <workdir>/reports/         each run's HTML report (pipeline/report), written by `imagepipe run`
  <workdir>/metrics.prom     the last run's figures in Prometheus text format
"""
import dataclasses
import json
import logging
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import v1 as tfx

from components.ingestion import executor as ingestion_executor
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.workdir_lock import workdir_lock

# FnApiRunner is the in-process engine the DirectRunner uses for batch pipelines. It is named directly
# because Beam 2.74's DirectRunner first tries to download and start its Prism runner (a Go binary that
# TFX 1.16 was not tested with): offline that costs a failed download per Beam pipeline, online it
# silently changes the engine.
_BASE_LOCAL_BEAM_ARGS = ("--runner=FnApiRunner", "--direct_num_workers=1")


def _project_setup_file() -> Optional[str]:
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    return path if os.path.exists(path) else None


def local_beam_args() -> tuple:
    """FnApiRunner, and this project's setup.py as the workers' dependency when the source tree is here.

    Without a dependency flag, every TFX Beam executor repackages the whole TFX installation as an sdist
    (a copy and a `setup.py sdist` subprocess, 1.5-3 s per component on 2 cores) for workers that an
    in-process runner never starts. `--setup_file` is also what a remote runner would need: that sdist
    does not even hold this project's components."""
    setup_file = _project_setup_file()
    return _BASE_LOCAL_BEAM_ARGS + ((f"--setup_file={setup_file}",) if setup_file else ())


LOCAL_BEAM_ARGS = local_beam_args()


@dataclasses.dataclass(frozen=True)
class WorkdirLayout:
    root: str

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.root, "serving")

    @property
    def summary_path(self) -> str:
        return os.path.join(self.root, "run_summary.json")

    @property
    def reports_dir(self) -> str:
        return os.path.join(self.root, "reports")

    @property
    def metrics_path(self) -> str:
        """The newest run's figures in Prometheus text format (node_exporter's textfile collector reads it)."""
        return os.path.join(self.root, "metrics.prom")

    @property
    def lock_path(self) -> str:
        """Held by the run using this workdir (see workdir_lock.py)."""
        return self.metadata_path + ".lock"


def metadata_config(layout: WorkdirLayout):
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(layout.metadata_path)


def run_local(config: PipelineConfig, layout: WorkdirLayout, wait_for_lock: bool = False) -> Dict:
    """Runs the whole pipeline and returns (and writes) its summary. Raises when a component fails, and
    WorkdirBusyError when another run holds the workdir (unless wait_for_lock: then it waits its turn)."""
    os.makedirs(layout.root, exist_ok=True)
    with workdir_lock(layout.lock_path, wait=wait_for_lock):
        logging.info("Running pipeline %r on %s; workdir %s", config.pipeline_name, config.data_root, layout.root)
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata_config(layout)))
        summary = summarize_last_run(layout)
        with open(layout.summary_path, "w") as handle:
            json.dump(summary, handle, indent=2, ensure_ascii=False)
    return summary


def _custom(artifact, key: str):
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def _component_times(store: mlmd.MetadataStore, executions) -> List[Dict]:
    node_names = {}
    for execution in executions:
        for context in store.get_contexts_by_execution(execution.id):
            if context.type == "node":
                node_names[execution.id] = context.name.split(".")[-1]
    return [
        {
            "component": node_names.get(execution.id, execution.type),
            "state": mlmd.proto.Execution.State.Name(execution.last_known_state),
            "seconds": round((execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000, 1),
        }
        for execution in sorted(executions, key=lambda e: e.id)
    ]


def run_outcome(store: mlmd.MetadataStore, run) -> Dict:
    """How a run ended, from its executions: 'interrupted' when one was left RUNNING (its process died, e.g.
    SIGKILL: TFX had no chance to record anything else), 'failed' when one failed, else 'complete'."""
    components = _component_times(store, store.get_executions_by_context(run.id))
    running = [component["component"] for component in components if component["state"] == "RUNNING"]
    failed = [component["component"] for component in components if component["state"] == "FAILED"]
    status = "interrupted" if running else "failed" if failed else "complete"
    return {"run_id": run.name, "status": status, "components": running or failed}


def summarize_last_run(layout: WorkdirLayout) -> Dict:
    """Reads what the newest pipeline run produced from ML Metadata."""
    store = mlmd.MetadataStore(metadata_config(layout))
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.id)
    if not runs:
        raise RuntimeError(f"No pipeline run recorded in {layout.metadata_path}.")
    run = runs[-1]
    executions = store.get_executions_by_context(run.id)
    artifacts = store.get_artifacts_by_context(run.id)
    types = {artifact_type.id: artifact_type.name for artifact_type in store.get_artifact_types()}
    newest: Dict[str, object] = {}
    for artifact in sorted(artifacts, key=lambda a: a.id):
        newest[types[artifact.type_id]] = artifact  # The run's own outputs are its newest artifacts.

    summary: Dict = {"run_id": run.name, "components": _component_times(store, executions)}
    if len(runs) > 1:  # What this run recovered from, if anything (its executions stay as TFX left them).
        summary["previous_run"] = run_outcome(store, runs[-2])
    examples = newest.get("Examples")
    if examples is not None:
        summary["examples"] = {
            "files_read": _custom(examples, "files_read"),
            "examples_written": _custom(examples, "examples_written"),
            "quarantined": _custom(examples, "quarantined"),
            "ignored": _custom(examples, "ignored"),
            "per_class_and_split": json.loads(_custom(examples, "examples_per_class_and_split") or "{}"),
            "quarantined_by_reason": json.loads(_custom(examples, "quarantined_by_reason") or "{}"),
            "duplicate_groups": _custom(examples, "duplicate_groups"),
            "quarantine_manifest": _custom(examples, "quarantine_manifest"),
            "report": os.path.join(examples.uri, ingestion_executor.REPORT_FILE_NAME),
        }
    validation = newest.get("imagepipe.DataValidationResult")
    if validation is not None:
        summary["data_validation_warnings"] = json.loads(_custom(validation, "warnings") or "[]")
    model = newest.get("Model")
    if model is not None:
        summary["model"] = model.uri
    evaluation = newest.get("ModelEvaluation")
    if evaluation is not None:
        summary["metrics"] = read_overall_metrics(evaluation.uri)
        summary["failed_thresholds"] = read_failed_thresholds(evaluation.uri)
    blessing = newest.get("ModelBlessing")
    if blessing is not None:
        summary["blessed"] = bool(_custom(blessing, "blessed"))
        summary["baseline_model"] = _custom(blessing, "baseline_model")
        summary.update(read_blessing_report(blessing.uri))
    pushed = newest.get("PushedModel")
    if pushed is not None:
        summary["pushed"] = bool(_custom(pushed, "pushed"))
        summary["pushed_destination"] = _custom(pushed, "pushed_destination")
        summary["pushed_version"] = _custom(pushed, "pushed_version")
        summary["already_pushed"] = bool(_custom(pushed, "already_pushed"))
    return summary


def read_blessing_report(blessing_uri: str) -> Dict:
    """The Evaluator's blessing report (components/evaluation/report.py): why, per class, calibration."""
    from components.evaluation import report as report_lib

    report = report_lib.read_report(blessing_uri)
    if report is None:
        return {}
    return {"failed_thresholds": report["reasons"], "per_class": report["per_class"],
            "expected_calibration_error": report["expected_calibration_error"],
            "blessing_report": os.path.join(blessing_uri, report_lib.REPORT_FILE_NAME)}


def read_overall_metrics(evaluation_uri: str) -> Dict[str, float]:
    """The overall slice's scalar metrics of a TFMA evaluation, by metric name."""
    import tensorflow_model_analysis as tfma  # Slow to import: only loaded when there is something to read.

    metrics: Dict[str, float] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for entry in slice_metrics.metric_keys_and_values:
            kind = entry.value.WhichOneof("type")
            if kind == "double_value" and not entry.key.is_diff:
                metrics[entry.key.name] = round(entry.value.double_value.value, 4)
    return metrics


def read_failed_thresholds(evaluation_uri: str) -> List[str]:
    """Why a model was not blessed: each failed threshold with the value that failed it."""
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            key = failure.metric_key
            name = f"{key.name} (change vs. baseline)" if key.is_diff else key.name
            threshold = json_format.MessageToDict(failure.metric_threshold)
            value = failure.metric_value.double_value.value
            failures.append(f"{name} = {value:.4f} fails {json.dumps(threshold)}")
    return failures


def format_summary(summary: Dict, serving_dir: Optional[str] = None) -> str:
    lines = [f"Run {summary['run_id']}"]
    previous = summary.get("previous_run") or {}
    if previous.get("status") in ("interrupted", "failed"):
        how = "left RUNNING: its process died" if previous["status"] == "interrupted" else "FAILED"
        lines.append(f"  (previous run {previous['run_id']} was {previous['status']}: "
                     f"{', '.join(previous['components'])} {how}; this run re-executed from there)")
    for component in summary["components"]:
        lines.append(f"  {component['component']:<32} {component['state']:<10} {component['seconds']:>7.1f} s")
    examples = summary.get("examples")
    if examples:
        lines.append(f"Ingested {examples['examples_written']} examples from {examples['files_read']} files "
                     f"({examples['quarantined']} quarantined, {examples['ignored']} ignored; see {examples['report']})")
        if examples.get("quarantined_by_reason"):
            lines.append("Quarantined by reason: " + ", ".join(
                f"{reason}={count}" for reason, count in sorted(examples["quarantined_by_reason"].items()))
                + f" (manifest: {examples.get('quarantine_manifest')})")
    for warning in summary.get("data_validation_warnings", []):
        lines.append(f"Data validation warning: {warning}")
    if "metrics" in summary:
        lines.append("Evaluation (eval split): " + ", ".join(f"{k}={v}" for k, v in sorted(summary["metrics"].items())))
    if summary.get("per_class"):
        lines.append("Per class (eval split): " + "; ".join(
            f"{name}: precision {values['precision']}, recall {values['recall']}"
            for name, values in summary["per_class"].items()))
    if summary.get("pushed") and summary.get("already_pushed"):
        lines.append(f"Blessed; already served as version {summary['pushed_version']} "
                     f"({summary['pushed_destination']}): the same model, not pushed again")
    elif summary.get("pushed"):
        lines.append(f"Blessed and pushed: {summary['pushed_destination']} (version {summary['pushed_version']}, "
                     "model card and TFLite beside it)")
    elif "blessed" in summary:
        if summary["blessed"]:
            lines.append("Nothing pushed although the model was blessed: see the Pusher's log above.")
        else:
            lines.append("Nothing pushed: the Evaluator did not bless the model:")
            lines += [f"  {failure}" for failure in summary.get("failed_thresholds", [])]
        if serving_dir:
            lines.append(f"Serving directory (unchanged): {serving_dir}")
    return "\n".join(lines)
