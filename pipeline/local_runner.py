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
import datetime
import json
import logging
import os
import posixpath
from typing import Dict, List, Optional

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.report import quality, run_data
from pipeline.report.store import (COMPLETE, FAILED, PLANNED_COMPONENTS_PROPERTY, TFX_RUN_CONTEXT_TYPE,
                                   MetadataReader, sqlite_config)
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
        run_id = run_pipeline(create_pipeline(config, metadata_config(layout)), metadata_config(layout))
        summary = summarize_run(layout, run_id)
        with open(layout.summary_path, "w") as handle:
            json.dump(summary, handle, indent=2, ensure_ascii=False)
    return summary


def run_pipeline(pipeline: tfx.dsl.Pipeline, connection_config) -> str:
    """Runs the pipeline with LocalDagRunner, after recording the components it is started with on its run
    context (store.PLANNED_COMPONENTS_PROPERTY), so that a process killed between two components leaves a
    run that reads as unfinished instead of complete. Returns the run id.

    This is LocalDagRunner.run split in its steps (tfx/orchestration/portable/tfx_runner.py `run`: compile,
    then `run_with_ir`), with the run id chosen here as local_dag_runner.py chooses it (the time, ISO
    format): `run_with_ir` only substitutes a run id that is still a runtime parameter, and TFX's launcher
    reuses an existing run context of that name (context_lib.py `_register_context_if_not_exist`)."""
    from tfx.dsl.compiler import compiler
    from tfx.dsl.compiler import constants
    from tfx.orchestration import metadata
    from tfx.orchestration.portable import runtime_parameter_utils

    ir = compiler.Compiler().compile(pipeline)
    run_id = datetime.datetime.now().isoformat()
    runtime_parameter_utils.substitute_runtime_parameter(ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    planned = [node.pipeline_node.node_info.id for node in ir.nodes
               if not node.pipeline_node.execution_options.HasField("skip")]
    with metadata.Metadata(connection_config) as handle:
        _record_planned_components(handle, run_id, planned)
    tfx.orchestration.LocalDagRunner().run_with_ir(ir)
    return run_id


def _record_planned_components(handle, run_id: str, planned: List[str]) -> None:
    from tfx.orchestration.portable.mlmd import context_lib

    context = context_lib.register_context_if_not_exists(handle, TFX_RUN_CONTEXT_TYPE, run_id)
    context.custom_properties[PLANNED_COMPONENTS_PROPERTY].string_value = json.dumps(planned)
    handle.store.put_contexts([context])


def summarize_run(layout: WorkdirLayout, run_id: Optional[str] = None) -> Dict:
    """What a run (the newest by default) did, read from ML Metadata by the reader the report and the metrics
    use (pipeline/report), so the printed summary, run_summary.json, the report and the metrics agree."""
    reader = MetadataReader(sqlite_config(layout.metadata_path))
    summary = summary_of(run_data.gather(reader, run_id))
    previous = _previous_run(reader, summary["run_id"])
    if previous is not None:
        summary["previous_run"] = previous
    return summary


def _previous_run(reader: MetadataReader, run_id: str) -> Optional[Dict]:
    """How the run before this one ended: what this run recovered from, if anything."""
    contexts = [context for context in reader.run_contexts() if context.name != run_id]
    if not contexts:
        return None
    previous = reader.read_run(contexts[0])
    return {"run_id": previous.run_id, "status": previous.status, "failed": previous.failed_components,
            "unfinished": previous.unfinished_components, "not_started": previous.components_not_started}


def summary_of(data: Dict) -> Dict:
    """The run summary (run_summary.json, and what `run` prints) from run_data.gather's result."""
    summary: Dict = {"run_id": data["run"]["run_id"], "status": data["run"]["status"],
                     "components": [{key: component[key] for key in ("component", "state", "seconds")}
                                    for component in data["components"]]}
    dataset = data.get("dataset")
    if dataset:
        summary["examples"] = {
            **{key: dataset[key] for key in ("files_read", "examples_written", "quarantined", "ignored",
                                             "per_class_and_split", "duplicate_groups", "quarantine_manifest")},
            "quarantined_by_reason": {reason: entry["count"]
                                      for reason, entry in dataset["quarantined_by_reason"].items()},
            "report": posixpath.join(dataset["uri"], run_data.INGESTION_REPORT),
        }
    gate = (data.get("validation") or {}).get("gate")
    if gate is not None:
        summary["data_validation_warnings"] = gate.get("warnings", [])
    data_quality = quality.run_summary_entry(data.get("quality"))
    if data_quality:
        summary["data_quality"] = data_quality
    model = (data.get("lineage") or {}).get("model")
    if model:
        summary["model"] = model["uri"]
    evaluation = data.get("evaluation")
    if evaluation:
        baseline = data["lineage"].get("baseline_model")
        summary.update({"metrics": evaluation["overall"], "blessed": evaluation["blessed"],
                        "baseline_model": baseline["uri"] if baseline else None,
                        "failed_thresholds": evaluation["reasons"], "per_class": evaluation["per_class"],
                        "expected_calibration_error": evaluation["expected_calibration_error"],
                        "blessing_report": posixpath.join(evaluation["blessing_uri"], run_data.BLESSING_REPORT)})
    push = data.get("push")
    if push:
        summary.update({"pushed": push["pushed"], "pushed_destination": push["destination"],
                        "pushed_version": push["version"], "already_pushed": push["already_pushed"],
                        "shipped_beside_model": push["shipped_files"]})
    return summary


def _previous_run_line(previous: Dict) -> Optional[str]:
    if previous["status"] == COMPLETE:
        return None
    if previous["status"] == FAILED:
        what = f"{', '.join(previous['failed'])} FAILED"
    else:  # This run holds the workdir's lock, so the previous run's process is gone.
        what = "; ".join(filter(None, [
            f"{', '.join(previous['unfinished'])} left RUNNING" if previous["unfinished"] else "",
            f"{', '.join(previous['not_started'])} never started" if previous["not_started"] else ""]))
        what += ": its process died"
    return f"  (previous run {previous['run_id']} did not complete: {what}; this run re-executed from there)"


def _headline_metrics(metrics: Dict) -> str:
    """The overall scalar metrics; per-class sub-metrics (calibration@class_id=N) are in the report."""
    return ", ".join(f"{name}={value}" for name, value in sorted(metrics.items()) if "@" not in name)


def _push_line(summary: Dict) -> str:
    beside = summary.get("shipped_beside_model") or []
    where = f"{summary['pushed_destination']} (version {summary['pushed_version']}"
    return f"Blessed and pushed: {where}{', with ' + ', '.join(beside) if beside else ''})"


def format_summary(summary: Dict, serving_dir: Optional[str] = None) -> str:
    lines = [f"Run {summary['run_id']}: {summary['status']}"]
    previous_line = _previous_run_line(summary["previous_run"]) if summary.get("previous_run") else None
    if previous_line:
        lines.append(previous_line)
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
    lines += quality.summary_lines(summary.get("data_quality"))
    if summary.get("metrics"):
        lines.append("Evaluation (eval split): " + _headline_metrics(summary["metrics"]))
    if summary.get("per_class"):
        lines.append("Per class (eval split): " + "; ".join(
            f"{name}: precision {values['precision']}, recall {values['recall']}"
            for name, values in summary["per_class"].items()))
    if summary.get("pushed") and summary.get("already_pushed"):
        lines.append(f"Blessed; already served as version {summary['pushed_version']} "
                     f"({summary['pushed_destination']}): the same model, not pushed again")
    elif summary.get("pushed"):
        lines.append(_push_line(summary))
    elif "blessed" in summary:
        if summary["blessed"]:
            lines.append("Nothing pushed although the model was blessed: see the Pusher's log above.")
        else:
            lines.append("Nothing pushed: the Evaluator did not bless the model:")
            lines += [f"  {failure}" for failure in summary.get("failed_thresholds", [])]
        if serving_dir:
            lines.append(f"Serving directory (unchanged): {serving_dir}")
    return "\n".join(lines)
