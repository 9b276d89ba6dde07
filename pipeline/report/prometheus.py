"""A run's key figures as Prometheus metrics: a text file (node_exporter's textfile collector format) and,
optionally, a push to a Pushgateway, for dashboards and alerts on scheduled runs.

Every metric describes the newest exported run of a pipeline (gauges, labelled by pipeline): a push
replaces the pipeline's previous group, so a dashboard shows the last run and Prometheus keeps the history.
The run id is a label of imagepipe_run_info only, so series do not multiply with every run.
"""
import os
from typing import Mapping, Optional

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway, write_to_textfile

JOB = "imagepipe"
METRICS_FILE_NAME = "metrics.prom"


def _gauge(registry: CollectorRegistry, name: str, documentation: str, labels=()) -> Gauge:
    return Gauge(name, documentation, ("pipeline", *labels), registry=registry)


def _add_run(registry: CollectorRegistry, pipeline: str, data: Mapping) -> None:
    run = data["run"]
    _gauge(registry, "imagepipe_run_info", "The exported run (value 1)", ("run_id", "status")).labels(
        pipeline, run["run_id"], run["status"]).set(1)
    _gauge(registry, "imagepipe_run_success", "1 if every component completed or was cached").labels(
        pipeline).set(int(run["status"] == "COMPLETE"))
    _gauge(registry, "imagepipe_run_duration_seconds", "Wall time of the run").labels(pipeline).set(run["wall_seconds"])
    duration = _gauge(registry, "imagepipe_component_duration_seconds", "Wall time of each component's execution",
                      ("component", "state"))
    for component in data["components"]:
        duration.labels(pipeline, component["component"], component["state"]).set(component["seconds"])


def _add_data(registry: CollectorRegistry, pipeline: str, data: Mapping) -> None:
    dataset = data.get("dataset")
    if dataset:
        files_read = _gauge(registry, "imagepipe_files_read", "Files ingestion read")
        files_read.labels(pipeline).set(dataset["files_read"] or 0)
        ingested = _gauge(registry, "imagepipe_examples_ingested", "Examples written, by split", ("split",))
        for split in sorted({s for counts in dataset["per_class_and_split"].values() for s in counts}):
            ingested.labels(pipeline, split).set(sum(c.get(split, 0) for c in dataset["per_class_and_split"].values()))
        _gauge(registry, "imagepipe_files_quarantined", "Files quarantined by ingestion").labels(pipeline).set(
            dataset["quarantined"] or 0)
        by_reason = _gauge(registry, "imagepipe_files_quarantined_by_reason", "Quarantined files, by reason",
                           ("reason",))
        for reason, entry in dataset["quarantined_by_reason"].items():
            by_reason.labels(pipeline, reason).set(entry["count"])
    validation = data.get("validation")
    if validation:
        anomalies = _gauge(registry, "imagepipe_data_anomalies",
                           "Data anomalies: TFDV's per split, and the validation gate's errors and warnings",
                           ("source", "split"))
        for split, entries in validation["tfdv_anomalies"].items():
            anomalies.labels(pipeline, "tfdv", split).set(len(entries))
        gate = validation.get("gate") or {}
        anomalies.labels(pipeline, "gate_error", "all").set(len(gate.get("errors", [])))
        anomalies.labels(pipeline, "gate_warning", "all").set(len(gate.get("warnings", [])))
        _gauge(registry, "imagepipe_data_drift_findings", "Drift anomalies against the previous span").labels(
            pipeline).set(len(validation["drift_findings"]))


def _add_quality(registry: CollectorRegistry, pipeline: str, data: Mapping) -> None:
    """The data-quality stage's counts (components/quality), from its summary."""
    summary = (data.get("quality") or {}).get("summary")
    if not summary:
        return
    counts = (("imagepipe_suspect_labels", "Examples whose label confident learning finds suspect", "suspect_labels"),
              ("imagepipe_near_duplicate_groups", "Groups of near-duplicate images", "near_duplicate_groups"),
              ("imagepipe_near_duplicate_leaks", "Near-duplicate groups straddling train and eval",
               "near_duplicate_leaks"),
              ("imagepipe_outliers", "Images unlike the rest of the data (blank, far in features, atypical pixels)",
               "outliers"),
              ("imagepipe_estimated_label_noise", "Estimated share of mislabeled examples", "estimated_label_noise"))
    for name, documentation, key in counts:
        _gauge(registry, name, documentation).labels(pipeline).set(summary[key])
    actions = summary["actions"]
    _gauge(registry, "imagepipe_near_duplicate_eval_copies_dropped", "Eval copies of leaks removed before evaluation"
           ).labels(pipeline).set(actions["leak_eval_copies_dropped"])
    _gauge(registry, "imagepipe_suspect_labels_excluded", "Suspect training examples left out of training").labels(
        pipeline).set(actions["suspects_excluded_from_train"])


def _add_model(registry: CollectorRegistry, pipeline: str, data: Mapping) -> None:
    evaluation = data.get("evaluation")
    if evaluation:
        accuracy = (evaluation.get("overall") or {}).get(evaluation.get("accuracy_metric") or "")
        if accuracy is not None:
            _gauge(registry, "imagepipe_eval_accuracy", "Accuracy on the eval split").labels(pipeline).set(accuracy)
        recall = _gauge(registry, "imagepipe_eval_class_recall", "Recall of each class on the eval split", ("class",))
        for name, values in (evaluation.get("per_class") or {}).items():
            if values.get("recall") is not None:
                recall.labels(pipeline, name).set(values["recall"])
        _gauge(registry, "imagepipe_model_blessed", "1 if the Evaluator blessed the model").labels(pipeline).set(
            int(evaluation["blessed"]))
    push = data.get("push")
    if push:
        _gauge(registry, "imagepipe_model_pushed", "1 if the run pushed a new model version").labels(pipeline).set(
            int(push["pushed"] and not push.get("already_pushed")))
        if push["pushed"] and isinstance(push.get("version"), int):
            _gauge(registry, "imagepipe_pushed_model_version",
                   "Version the run pushed, or found already served").labels(pipeline).set(
                push["version"])


def registry_for_run(data: Mapping) -> CollectorRegistry:
    """A registry holding the run's figures (from run_data.gather's result)."""
    registry = CollectorRegistry()
    pipeline = data["run"]["pipeline"]
    _add_run(registry, pipeline, data)
    _add_data(registry, pipeline, data)
    _add_quality(registry, pipeline, data)
    _add_model(registry, pipeline, data)
    return registry


def write_metrics_file(registry: CollectorRegistry, path: str) -> str:
    """Written to a temporary file and renamed, so a scraper never reads half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_to_textfile(path, registry)
    return path


def push_metrics(registry: CollectorRegistry, gateway_url: str, pipeline: str, timeout_s: Optional[float] = 10) -> None:
    """PUT to the Pushgateway's group job=imagepipe/pipeline=<name>, replacing that pipeline's last run."""
    push_to_gateway(gateway_url, job=JOB, registry=registry, grouping_key={"pipeline": pipeline}, timeout=timeout_s)


def generate_text(registry: CollectorRegistry) -> str:
    """The registry in Prometheus text exposition format (what the file and the push contain)."""
    return generate_latest(registry).decode("utf-8")
