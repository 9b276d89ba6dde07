"""The TFMA EvalConfig that decides blessing: what is measured and which thresholds a model must clear.

Measured on the eval split, through the exported serving_tf_example signature on raw examples (bytes in),
so what is gated is what is served; labels come from the exported Transform graph (transform_features).

- overall: accuracy, top-k accuracy, example count, cross-entropy, the multi-class confusion matrix, and
  class-wise calibration (Calibration and a reliability plot per class; needs the class names);
- per class: one slice per class, keyed by the raw `label` feature, i.e. by class name. Accuracy within
  the slice of class c is the recall of c; precision per class comes from the confusion matrix (report.py).

Thresholds (all absolute values in [0, 1]):
- overall accuracy >= min_accuracy;
- recall of every class >= min_class_recall, so one collapsed class blocks promotion;
- accuracy >= the latest blessed model's - max_accuracy_drop. Without a baseline (the first run) TFMA
  skips change thresholds and the absolute ones still apply.
"""
from typing import Dict, List, Optional, Sequence

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2

from components import features

ACCURACY_METRIC = "sparse_categorical_accuracy"
TOP_K_ACCURACY_METRIC = "sparse_top_k_categorical_accuracy"
# class_name -> the metric name TFMA reports, for every metric the config may compute.
METRIC_NAMES = {
    "ExampleCount": "example_count",
    "SparseCategoricalAccuracy": ACCURACY_METRIC,
    "SparseTopKCategoricalAccuracy": TOP_K_ACCURACY_METRIC,
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "MultiClassConfusionMatrixPlot": "multi_class_confusion_matrix_plot",
    "Calibration": "calibration",
    "CalibrationPlot": "calibration_plot",
}


def overall_slice() -> tfma.SlicingSpec:
    return tfma.SlicingSpec()


def class_slice(class_name: str) -> tfma.SlicingSpec:
    return tfma.SlicingSpec(feature_values={features.LABEL_KEY: class_name})


def class_slices(class_names: Sequence[str]) -> List[tfma.SlicingSpec]:
    """One slice per named class; a named class with no eval examples is a missing slice, which TFMA
    reports as a validation failure. Without names, one slice per label value that occurs."""
    if class_names:
        return [class_slice(name) for name in class_names]
    return [tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])]


def _accuracy_thresholds(min_accuracy: Optional[float], max_accuracy_drop: Optional[float],
                         min_class_recall: Optional[float], class_names: Sequence[str]
                         ) -> List[tfma.PerSliceMetricThreshold]:
    accuracy = []
    if min_accuracy is not None:
        accuracy.append(tfma.PerSliceMetricThreshold(slicing_specs=[overall_slice()], threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}))))
    if max_accuracy_drop is not None:
        accuracy.append(tfma.PerSliceMetricThreshold(slicing_specs=[overall_slice()], threshold=tfma.MetricThreshold(
            change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                         absolute={"value": -max_accuracy_drop}))))
    if min_class_recall is not None:
        accuracy.append(tfma.PerSliceMetricThreshold(slicing_specs=class_slices(class_names),
                                                     threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                                                         lower_bound={"value": min_class_recall}))))
    return accuracy


def _calibration_specs(num_classes: int) -> List[tfma.MetricsSpec]:
    """Class-wise calibration (one-vs-rest): per class, mean predicted probability / share of the class
    (1 is calibrated) and a reliability plot, from which report.py derives the expected calibration error.
    Class ids are needed to binarize, so it is computed when the class names are known."""
    if not num_classes:
        return []
    return [tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name="Calibration"), tfma.MetricConfig(class_name="CalibrationPlot")],
        binarize=tfma.BinarizationOptions(class_ids={"values": list(range(num_classes))}))]


def build_eval_config(min_accuracy: Optional[float], max_accuracy_drop: Optional[float],
                      min_class_recall: Optional[float] = None, class_names: Sequence[str] = (),
                      top_k: int = 3) -> tfma.EvalConfig:
    """The EvalConfig of the Evaluator; raises ValueError when it would gate nothing (see validate)."""
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}.")
    eval_config = tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Stated, not detected: without a type TFMA loads the whole model with Keras once to see whether
                # it is one, then again as Keras (tensorflow_model_analysis/utils/model_util.py,
                # get_model_type and model_construct_fn), 20+ s per model; we only call its signatures.
                model_type=tfma.TF_GENERIC,
                signature_name=features.TF_EXAMPLE_SIGNATURE,
                preprocessing_function_names=[features.TRANSFORM_SIGNATURE],
                label_key=features.TRANSFORMED_LABEL_KEY,
                prediction_key=features.PROBABILITIES_KEY,
            )
        ],
        slicing_specs=[overall_slice()] + class_slices(class_names),
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    # Thresholds sit on the MetricConfig: MetricsSpec.per_slice_thresholds keys them without
                    # example weighting, which never matches a computed metric in TFMA 0.47 ("Metric not found").
                    tfma.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=_accuracy_thresholds(
                        min_accuracy, max_accuracy_drop, min_class_recall, class_names)),
                    tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy", config=f'{{"k": {top_k}}}'),
                    tfma.MetricConfig(class_name="SparseCategoricalCrossentropy"),
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                ],
            ),
        ] + _calibration_specs(len(class_names)),
        # Only the metrics above. TFMA otherwise adds the Keras model's compiled loss and metrics when it can
        # load the SavedModel with tf.keras, which is Keras 2 or 3 depending on import order in TF 2.16: in
        # one process it scored one-hot-trained compiled losses against sparse labels and failed the run.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
    )
    validate(eval_config)
    return eval_config


def named_classes(eval_config: tfma.EvalConfig) -> List[str]:
    """The class names the config slices by (class_slices), in order."""
    return [spec.feature_values[features.LABEL_KEY] for spec in eval_config.slicing_specs
            if features.LABEL_KEY in spec.feature_values]


def classes_without_outputs(eval_config: tfma.EvalConfig, model_class_names: Sequence[str],
                            eval_classes: Sequence[str] = ()) -> List[str]:
    """Classes the config names or the eval split holds that the model has no output for: they had no training
    examples (the label vocabulary comes from the training split)."""
    known = set(model_class_names)
    return [name for name in dict.fromkeys([*named_classes(eval_config), *eval_classes]) if name not in known]


def threshold_metric_names(eval_config: tfma.EvalConfig) -> List[str]:
    names = []
    for spec in eval_config.metrics_specs:
        names += [METRIC_NAMES.get(metric.class_name, metric.class_name) for metric in spec.metrics
                  if metric.HasField("threshold") or metric.per_slice_thresholds or metric.cross_slice_thresholds]
        names += list(spec.per_slice_thresholds) + list(spec.cross_slice_thresholds)
    return names


def validate(eval_config: tfma.EvalConfig) -> None:
    """Refuses a config TFX would run without ever blessing on purpose, or never blessing by mistake.

    - No threshold at all: TFX's Evaluator then writes NOT_BLESSED for every model, silently.
    - A threshold on a metric the config does not compute (a misspelled name): TFMA reports it as
      "Metric not found" at run time, after the whole evaluation; here it fails when the pipeline is built.
    """
    computed = {METRIC_NAMES.get(metric.class_name, metric.class_name)
                for spec in eval_config.metrics_specs for metric in spec.metrics}
    unknown = sorted({metric.class_name for spec in eval_config.metrics_specs for metric in spec.metrics
                      if metric.class_name not in METRIC_NAMES})
    if unknown:
        raise ValueError(f"Unknown metric class name(s) {unknown}; known: {sorted(METRIC_NAMES)}.")
    thresholds = threshold_metric_names(eval_config)
    if not thresholds:
        raise ValueError("The evaluation config has no thresholds, so no model would ever be blessed: set at least "
                         "one of min_accuracy, min_class_recall, max_accuracy_drop.")
    missing = sorted(set(thresholds) - computed)
    if missing:
        raise ValueError(f"Threshold(s) on {missing}, which the config does not compute; computed metrics: "
                         f"{sorted(computed)}. Check the spelling of the metric name.")
