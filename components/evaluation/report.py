"""Plain logic of the blessing report: the decision, why, and the metrics by class name, from TFMA's output.

The Evaluator's executor writes it beside the blessing (blessing_report.json) and as custom properties
of the ModelBlessing artifact, where the run summary, the model card and the KFP dashboard read it.
"""
import json
import math
import os
from typing import Dict, Iterator, List, Optional, Sequence

import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format

from components.evaluation.eval_config import ACCURACY_METRIC

REPORT_FILE_NAME = "blessing_report.json"
OVERALL = "overall"


def slice_name(slice_key) -> str:
    """'overall' or 'label=grün' for a SliceKey proto."""
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind)
        parts.append(f"{single.column}={value.decode('utf-8') if isinstance(value, bytes) else value}")
    return ", ".join(parts) or OVERALL


def _spec_name(spec: tfma.SlicingSpec) -> str:
    values = [f"{key}={value}" for key, value in sorted(spec.feature_values.items())]
    return ", ".join(values + list(spec.feature_keys)) or OVERALL


def describe_failure(slice_label: str, failure) -> str:
    """One failed threshold in words, with the value and by how much it missed."""
    key, threshold = failure.metric_key, failure.metric_threshold
    if failure.message.strip() == "Metric not found.":
        return f"{key.name} on {slice_label}: metric not found (misspelled or not computed)"
    value = failure.metric_value.double_value.value
    if threshold.HasField("change_threshold"):
        bound = threshold.change_threshold.absolute.value
        return (f"{key.name} on {slice_label}: change vs. baseline {value:+.4f} is below the tolerated "
                f"{bound:+.4f} by {bound - value:.4f}")
    bounds = threshold.value_threshold
    if bounds.HasField("lower_bound") and value < bounds.lower_bound.value:
        return (f"{key.name} on {slice_label} = {value:.4f}, below the floor {bounds.lower_bound.value:.4f} "
                f"by {bounds.lower_bound.value - value:.4f}")
    return f"{key.name} on {slice_label} = {value:.4f} fails {json.dumps(json_format.MessageToDict(threshold))}"


def failure_reasons(validation) -> List[str]:
    reasons = []
    for per_slice in validation.metric_validations_per_slice:
        label = slice_name(per_slice.slice_key)
        reasons += [describe_failure(label, failure) for failure in per_slice.failures]
    reasons += [f"no eval examples in slice {_spec_name(spec)}: the class cannot be checked"
                for spec in validation.missing_slices]
    if validation.missing_thresholds:
        reasons.append("the evaluation config has no thresholds")
    return reasons


def scalar_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
    """Scalar metrics of the candidate by slice name ('overall', 'label=<class>'), change metrics left out."""
    by_slice: Dict[str, Dict[str, float]] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        values = by_slice.setdefault(slice_name(slice_metrics.slice_key), {})
        for entry in slice_metrics.metric_keys_and_values:
            if entry.key.is_diff or entry.key.model_name.endswith("baseline") or \
                    entry.value.WhichOneof("type") != "double_value":
                continue
            name = entry.key.name
            if entry.key.sub_key.HasField("class_id"):
                name += f"@class_id={entry.key.sub_key.class_id.value}"
            value = entry.value.double_value.value
            values[name] = round(value, 4) if math.isfinite(value) else None
    return by_slice


CALIBRATION_PLOT = "calibration_histogram_buckets"


def candidate_overall_plots(evaluation_uri: str, plot_field: str) -> Iterator:
    """The candidate model's plot entries of the overall slice that hold `plot_field` (e.g. a histogram)."""
    for slice_plots in tfma.load_plots(evaluation_uri):
        if slice_plots.slice_key.single_slice_keys:
            continue
        for entry in slice_plots.plot_keys_and_values:
            if not entry.key.model_name.endswith("baseline") and entry.value.HasField(plot_field):
                yield entry


def confusion_matrix(evaluation_uri: str, class_names: Sequence[str]) -> Optional[List[List[int]]]:
    """matrix[actual][predicted] counts of the overall slice, rows and columns in class-id order."""
    for entry in candidate_overall_plots(evaluation_uri, "multi_class_confusion_matrix_at_thresholds"):
        matrix = [[0] * len(class_names) for _ in class_names]
        # The plot holds one matrix per threshold; the first is argmax (threshold 0), what is served.
        for cell in entry.value.multi_class_confusion_matrix_at_thresholds.matrices[0].entries:
            if 0 <= cell.actual_class_id < len(class_names) and 0 <= cell.predicted_class_id < len(class_names):
                matrix[cell.actual_class_id][cell.predicted_class_id] += int(round(cell.num_weighted_examples))
        return matrix
    return None


def expected_calibration_error(evaluation_uri: str) -> Optional[float]:
    """Class-wise ECE from the overall slice's one-vs-rest reliability plots: per class, the example-weighted
    mean over score buckets of |share of the class - mean predicted probability|; then the mean over classes."""
    errors = []
    for entry in candidate_overall_plots(evaluation_uri, CALIBRATION_PLOT):
        buckets = entry.value.calibration_histogram_buckets.buckets
        total = sum(bucket.num_weighted_examples.value for bucket in buckets)
        if total:
            errors.append(sum(abs(bucket.total_weighted_label.value - bucket.total_weighted_refined_prediction.value)
                              for bucket in buckets) / total)
    return round(sum(errors) / len(errors), 4) if errors else None


def per_class_metrics(matrix: List[List[int]], class_names: Sequence[str]) -> Dict[str, Dict[str, float]]:
    per_class = {}
    for index, name in enumerate(class_names):
        actual = sum(matrix[index])
        predicted = sum(row[index] for row in matrix)
        correct = matrix[index][index]
        per_class[name] = {"examples": actual, "recall": round(correct / actual, 4) if actual else None,
                           "precision": round(correct / predicted, 4) if predicted else None}
    return per_class


def build_report(evaluation_uri: str, class_names: Sequence[str], has_baseline: bool) -> Dict:
    validation = tfma.load_validation_result(evaluation_uri)
    metrics = scalar_metrics(evaluation_uri)
    matrix = confusion_matrix(evaluation_uri, class_names)
    return {
        "blessed": bool(validation.validation_ok),
        "reasons": failure_reasons(validation),
        "compared_with_baseline": has_baseline,
        "overall": metrics.get(OVERALL, {}),
        "expected_calibration_error": expected_calibration_error(evaluation_uri),
        "per_class": per_class_metrics(matrix, class_names) if matrix else {},
        "per_class_slices": {name: values for name, values in metrics.items() if name != OVERALL},
        "confusion_matrix": {"class_names": list(class_names), "actual_by_predicted": matrix},
        "accuracy_metric": ACCURACY_METRIC,
    }


def not_evaluated_report(reasons: List[str], class_names: Sequence[str], has_baseline: bool) -> Dict:
    """The report of a model refused before TFMA ran (same keys as build_report, no metrics)."""
    return {
        "blessed": False,
        "reasons": reasons,
        "compared_with_baseline": has_baseline,
        "overall": {},
        "expected_calibration_error": None,
        "per_class": {},
        "per_class_slices": {},
        "confusion_matrix": {"class_names": list(class_names), "actual_by_predicted": None},
        "accuracy_metric": ACCURACY_METRIC,
    }


def write_report(report: Dict, directory: str) -> str:
    path = os.path.join(directory, REPORT_FILE_NAME)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(report, indent=2, ensure_ascii=False))
    return path


def read_report(directory: str) -> Optional[Dict]:
    path = os.path.join(directory, REPORT_FILE_NAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())
