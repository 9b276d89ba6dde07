"""Everything the run report shows, gathered from one run's ML Metadata records and artifact files.

The result is plain data (dicts, lists, numbers, strings: JSON-serializable), so the HTML page, the
plots and the Prometheus export are built from it without knowing about ML Metadata or TFX, and their
tests can use small hand-made inputs. Artifact files are read with tf.io.gfile (local paths and gs://).
"""
import datetime
import json
import logging
import os
import posixpath
from typing import Dict, List, Optional

from components import features
from pipeline.report.quality import quality_section
from pipeline.report.store import ArtifactRecord, ComponentRecord, MetadataReader, RunRecord, json_property

# Files the components write beside their artifacts (see components/*): names repeated here so that
# reading a report does not import the components (and TensorFlow Transform, TFMA) to learn them.
INGESTION_REPORT = "ingestion_report.json"
VALIDATION_RESULT = "validation_result.json"
HISTORY_FILE = "history.json"
BLESSING_REPORT = "blessing_report.json"
ANOMALIES_FILE = "SchemaDiff.pb"
STATISTICS_FILE = "FeatureStats.pb"
# The split the validation gate checks for drift (components/validation/gate.py DRIFT_SPLIT).
DRIFT_SPLIT = "train"
PREVIOUS_STATISTICS_KEY = "previous_statistics"
# Reliability diagram resolution: TFMA's calibration histogram has many fine buckets; ten bins are readable.
CALIBRATION_BINS = 10
# How many quarantined file names per reason the page lists (the manifest has them all).
QUARANTINE_NAMES_SHOWN = 20


def _read_text(path: str) -> Optional[str]:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as handle:
        return handle.read()


def _read_json(directory: str, name: str) -> Optional[Dict]:
    text = _read_text(os.path.join(directory, name))
    return json.loads(text) if text is not None else None


def _iso(milliseconds: int) -> str:
    """Local time with its UTC offset, as `imagepipe runs` prints it (without the offset)."""
    return datetime.datetime.fromtimestamp(milliseconds / 1000).astimezone().isoformat(timespec="seconds")


def _artifact_summary(artifact: Optional[ArtifactRecord], reader: Optional[MetadataReader],
                      run_id: str) -> Optional[Dict]:
    if artifact is None:
        return None
    produced_by = reader.producing_run(artifact.id) if reader else None
    return {"id": artifact.id, "type": artifact.type, "uri": artifact.uri, "span": artifact.properties.get("span"),
            "produced_by_run": produced_by, "reused": bool(produced_by and produced_by != run_id)}


def run_overview(run: RunRecord) -> Dict:
    return {"run_id": run.run_id, "pipeline": run.pipeline, "status": run.status, "started": _iso(run.start_ms),
            "finished": _iso(run.end_ms), "wall_seconds": round((run.end_ms - run.start_ms) / 1000, 1),
            "failed_components": run.failed_components, "unfinished_components": run.unfinished_components,
            "components_not_started": run.components_not_started}


def component_times(run: RunRecord) -> List[Dict]:
    return [{"component": c.name, "state": c.state, "seconds": c.seconds,
             "start_offset_seconds": round((c.start_ms - run.start_ms) / 1000, 1)} for c in run.components]


def dataset_section(run: RunRecord) -> Optional[Dict]:
    """Counts per class and split, and every quarantined file by reason (from ingestion_report.json)."""
    examples = run.first_output_of_type("Examples")
    if examples is None:
        return None
    report = _read_json(examples.uri, INGESTION_REPORT) or {}
    by_reason: Dict[str, List[Dict]] = {}
    for entry in report.get("quarantined", []):
        by_reason.setdefault(entry["reason"], []).append(
            {"uri": entry["uri"], "class": entry.get("class"), "detail": entry.get("detail", "")})
    return {
        "uri": examples.uri,
        "span": examples.properties.get("span"),
        "files_read": examples.properties.get("files_read"),
        "examples_written": examples.properties.get("examples_written"),
        "quarantined": examples.properties.get("quarantined"),
        "ignored": examples.properties.get("ignored"),
        "leaks_prevented": examples.properties.get("leaks_prevented"),
        "duplicate_groups": examples.properties.get("duplicate_groups"),
        "per_class_and_split": json_property(examples, "examples_per_class_and_split", {}),
        "quarantined_by_reason": {reason: {"count": len(entries), "files": entries[:QUARANTINE_NAMES_SHOWN]}
                                  for reason, entries in sorted(by_reason.items())},
        "quarantine_manifest": examples.properties.get("quarantine_manifest"),
    }


def _tfdv_anomalies(anomalies_artifact: ArtifactRecord) -> Dict[str, List[Dict]]:
    """ExampleValidator's anomalies (TFDV against the schema), per split."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    import tensorflow as tf

    by_split: Dict[str, List[Dict]] = {}
    for split in json.loads(anomalies_artifact.properties.get("split_names") or "[]"):
        path = os.path.join(anomalies_artifact.uri, f"Split-{split}", ANOMALIES_FILE)
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "rb") as handle:
            anomalies = anomalies_pb2.Anomalies.FromString(handle.read())
        entries = [{"feature": feature, "type": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                    "description": reason.description}
                   for feature, info in sorted(anomalies.anomaly_info.items()) for reason in info.reason]
        entries += [{"feature": "(data set)", "type": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                     "description": reason.description} for reason in anomalies.dataset_anomaly_info.reason]
        by_split[split] = entries
    return by_split


def _statistics(statistics_uri: str, split: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2
    import tensorflow as tf

    path = os.path.join(statistics_uri, f"Split-{split}", STATISTICS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as handle:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())


def _schema(schema_uri: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    import tensorflow as tf

    paths = tf.io.gfile.glob(os.path.join(schema_uri, "*.pbtxt"))
    return text_format.Parse(_read_text(paths[0]), schema_pb2.Schema()) if paths else None


def drift_measurements(current, previous, schema) -> List[Dict]:
    """Each drift distance the schema's drift comparators define (label L-infinity, height/width Jensen-Shannon),
    with its threshold: the gate reports only those beyond it, the report shows them all."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    return [{"feature": ".".join(info.path.step), "measure": anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type),
             "value": round(m.value, 4), "threshold": m.threshold, "exceeds": m.value > m.threshold}
            for info in anomalies.drift_skew_info for m in info.drift_measurements]


def _validation_gate(run: RunRecord) -> Optional[ComponentRecord]:
    """The gate: by its output, or (failed, so without one) by its previous-statistics input or its name."""
    return run.component_producing("imagepipe.DataValidationResult") or next(
        (c for c in run.components if PREVIOUS_STATISTICS_KEY in c.inputs or c.name == "DataValidationGate"), None)


def _drift_baseline(gate: Optional[ComponentRecord], gate_result: Optional[Dict]) -> Optional[str]:
    """The statistics the gate compared with. A gate that failed the run kept no result (TFX removes a failed
    execution's outputs): then the same choice as its executor, the newest statistics of an earlier span."""
    if gate_result is not None or gate is None:
        return (gate_result or {}).get("drift_baseline")
    current = (gate.inputs.get("statistics") or [None])[0]
    if current is None:
        return None
    span = lambda artifact: int(artifact.properties.get("span") or 0)  # noqa: E731
    earlier = [artifact for artifact in gate.inputs.get(PREVIOUS_STATISTICS_KEY, [])
               if artifact.id != current.id and span(artifact) < span(current)]
    return max(earlier, key=lambda a: (span(a), a.id)).uri if earlier else None


def _run_drift_measurements(gate: Optional[ComponentRecord], baseline: Optional[str]) -> List[Dict]:
    statistics = (gate.inputs.get("statistics") or [None])[0] if gate else None
    schema = (gate.inputs.get("schema") or [None])[0] if gate else None
    if not (baseline and statistics and schema):
        return []
    current, previous = _statistics(statistics.uri, DRIFT_SPLIT), _statistics(baseline, DRIFT_SPLIT)
    schema_proto = _schema(schema.uri)
    if current is None or previous is None or schema_proto is None:
        return []
    return drift_measurements(current, previous, schema_proto)


def validation_section(run: RunRecord) -> Optional[Dict]:
    """TFDV's anomalies per split, and the gate's decision (its drift check included)."""
    anomalies = run.first_output_of_type("ExampleAnomalies")
    result = run.first_output_of_type("imagepipe.DataValidationResult")
    gate = _validation_gate(run)
    if anomalies is None and result is None and gate is None:
        return None
    gate_result = _read_json(result.uri, VALIDATION_RESULT) if result else None
    findings = (gate_result or {}).get("errors", []) + (gate_result or {}).get("warnings", [])
    baseline = _drift_baseline(gate, gate_result)
    return {
        "tfdv_anomalies": _tfdv_anomalies(anomalies) if anomalies else {},
        "gate_state": gate.state if gate else None,
        "gate": gate_result,
        "drift_baseline": baseline,
        "drift_findings": [finding for finding in findings if finding.startswith("drift:")],
        "drift_measurements": _run_drift_measurements(gate, baseline),
    }


def training_section(run: RunRecord) -> Optional[Dict]:
    """Per-phase Keras history (loss, accuracy, eval loss and accuracy per epoch) and the TensorBoard logs."""
    model_run = run.first_output_of_type("ModelRun")
    if model_run is None:
        return None
    history = _read_json(model_run.uri, HISTORY_FILE) or {}
    return {"tensorboard_logdir": model_run.uri, "phases": history}


def _trained_model(run: RunRecord) -> Optional[ArtifactRecord]:
    trainer = run.component_producing("ModelRun")
    models = [a for artifacts in trainer.outputs.values() for a in artifacts if a.type == "Model"] if trainer else []
    return models[0] if models else None


def _calibration_curves(evaluation_uri: str, class_names: List[str]) -> Dict[str, List[Dict]]:
    """Per class (one-vs-rest), the reliability diagram: in each bin of predicted probability, the mean
    prediction and the observed share of the class, with the example count."""
    # TFMA is slow to import: only when there is an evaluation.
    from components.evaluation.report import CALIBRATION_PLOT, candidate_overall_plots

    curves: Dict[str, List[Dict]] = {}
    for entry in candidate_overall_plots(evaluation_uri, CALIBRATION_PLOT):
        class_id = entry.key.sub_key.class_id.value if entry.key.sub_key.HasField("class_id") else None
        name = class_names[class_id] if class_id is not None and class_id < len(class_names) else str(class_id)
        curves[name] = _reliability_bins(entry.value.calibration_histogram_buckets.buckets)
    return curves


def _reliability_bins(buckets) -> List[Dict]:
    sums = [[0.0, 0.0, 0.0] for _ in range(CALIBRATION_BINS)]  # examples, sum of predictions, sum of labels
    for bucket in buckets:
        weight = bucket.num_weighted_examples.value
        if not weight:
            continue
        mean_prediction = bucket.total_weighted_refined_prediction.value / weight
        index = min(CALIBRATION_BINS - 1, max(0, int(mean_prediction * CALIBRATION_BINS)))
        sums[index][0] += weight
        sums[index][1] += bucket.total_weighted_refined_prediction.value
        sums[index][2] += bucket.total_weighted_label.value
    return [{"examples": round(n), "mean_prediction": round(p / n, 4), "observed": round(y / n, 4)}
            for n, p, y in sums if n]


def evaluation_section(run: RunRecord) -> Optional[Dict]:
    """The Evaluator's blessing report (decision, reasons, per-class metrics, confusion matrix) and calibration."""
    blessing = run.first_output_of_type("ModelBlessing")
    evaluation = run.first_output_of_type("ModelEvaluation")
    if blessing is None:
        return None
    report = _read_json(blessing.uri, BLESSING_REPORT) or {}
    class_names = (report.get("confusion_matrix") or {}).get("class_names") or []
    section = {
        "blessed": bool(blessing.properties.get("blessed")),
        "reasons": report.get("reasons", json_property(blessing, "blessing_reasons", [])),
        "compared_with_baseline": report.get("compared_with_baseline"),
        "accuracy_metric": report.get("accuracy_metric"),
        "overall": report.get("overall", {}),
        "per_class": report.get("per_class", {}),
        "per_class_slices": report.get("per_class_slices", {}),
        "confusion_matrix": report.get("confusion_matrix"),
        "expected_calibration_error": report.get("expected_calibration_error"),
        "calibration_curves": {},
        "blessing_uri": blessing.uri,
        "evaluation_uri": evaluation.uri if evaluation else None,
    }
    if evaluation is not None:
        try:
            section["calibration_curves"] = _calibration_curves(evaluation.uri, class_names)
        except Exception as error:  # A report still renders when TFMA cannot read the plots; the page says so.
            logging.warning("Calibration plots unreadable in %s: %s", evaluation.uri, error)
    return section


def push_section(run: RunRecord) -> Optional[Dict]:
    pushed = run.first_output_of_type("PushedModel")
    if pushed is None:
        return None
    version = pushed.properties.get("pushed_version")
    destination = pushed.properties.get("pushed_destination")
    # already_pushed (components/pusher): the same model is the newest version already; nothing new was written.
    return {"pushed": bool(pushed.properties.get("pushed")),
            "already_pushed": bool(pushed.properties.get("already_pushed")),
            "version": int(version) if str(version or "").isdigit() else version,
            "destination": destination,
            "method": pushed.properties.get("push_method") or pushed.properties.get("method"),
            "shipped_files": _shipped_files(destination) if pushed.properties.get("pushed") else []}


def _shipped_files(version_dir: Optional[str]) -> List[str]:
    """What the version holds beside the SavedModel (the model card, TFLite exports within tolerance), as
    paths relative to it: the summary says what is there, not what the options asked for."""
    import tensorflow as tf

    if not version_dir:
        return []
    candidates = [features.MODEL_CARD_FILE_NAME, posixpath.join(features.TFLITE_DIR, "*.tflite")]
    prefix = len(version_dir.rstrip("/")) + 1  # glob keeps the directory as given (and a gs:// scheme).
    return sorted(path[prefix:] for pattern in candidates
                  for path in tf.io.gfile.glob(posixpath.join(version_dir, pattern)))


def lineage_section(run: RunRecord, reader: Optional[MetadataReader]) -> Dict[str, Optional[Dict]]:
    """What the model was built from and compared with: a cached component's artifact names its older run."""
    return {
        # The Trainer is found as the producer of the ModelRun (a baseline task may also output a Model).
        "examples": _artifact_summary(run.first_input_of_type("Examples", consumer_of="ModelRun"), reader, run.run_id),
        "schema": _artifact_summary(run.first_input_of_type("Schema", consumer_of="ModelRun"), reader, run.run_id),
        "transform_graph": _artifact_summary(run.first_input_of_type("TransformGraph", consumer_of="ModelRun"),
                                             reader, run.run_id),
        "model": _artifact_summary(_trained_model(run), reader, run.run_id),
        "baseline_model": _artifact_summary(_baseline_model(run, reader), reader, run.run_id),
    }


def _baseline_model(run: RunRecord, reader: Optional[MetadataReader]) -> Optional[ArtifactRecord]:
    """The Evaluator's baseline input or, when the baseline is the candidate itself (a cached Trainer: ML Metadata
    then records one input event for both), the id TFX's Evaluator puts on the blessing."""
    baseline = run.first_input_of_type("Model", key="baseline_model")
    blessing = run.first_output_of_type("ModelBlessing")
    if baseline is None and reader is not None and blessing is not None:
        baseline_id = blessing.properties.get("baseline_model_id")
        baseline = reader.artifact(int(baseline_id)) if baseline_id else None
    return baseline


def gather(reader: MetadataReader, run_id: Optional[str] = None) -> Dict:
    """The whole report's data for one run (the newest if run_id is None)."""
    run = reader.run(run_id)
    return {
        "run": run_overview(run),
        "components": component_times(run),
        "dataset": dataset_section(run),
        "validation": validation_section(run),
        "quality": quality_section(run),
        "training": training_section(run),
        "evaluation": evaluation_section(run),
        "push": push_section(run),
        "lineage": lineage_section(run, reader),
    }
