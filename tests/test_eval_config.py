"""The EvalConfig built from settings: what it measures, and the configurations it refuses at build time."""
import pytest
import tensorflow_model_analysis as tfma

from components import features
from components.evaluation import eval_config as eval_config_lib
from components.evaluation.eval_config import ACCURACY_METRIC, build_eval_config, validate


def test_measures_accuracy_top_k_per_class_confusion_calibration_and_count():
    config = build_eval_config(0.6, 0.01, 0.5, class_names=["cat", "dog"], top_k=3)
    computed = {metric.class_name for spec in config.metrics_specs for metric in spec.metrics}
    assert {"ExampleCount", "SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
            "MultiClassConfusionMatrixPlot", "Calibration", "CalibrationPlot"} <= computed
    assert [dict(spec.feature_values) for spec in config.slicing_specs] == [{}, {"label": "cat"}, {"label": "dog"}]
    assert config.model_specs[0].signature_name == features.TF_EXAMPLE_SIGNATURE
    assert list(config.metrics_specs[1].binarize.class_ids.values) == [0, 1]  # Class-wise calibration.


def test_thresholds_absolute_change_and_per_class_recall():
    config = build_eval_config(0.6, 0.01, 0.5, class_names=["cat", "dog"])
    accuracy = next(metric for metric in config.metrics_specs[0].metrics
                    if metric.class_name == "SparseCategoricalAccuracy")
    overall_floor, change, recall = accuracy.per_slice_thresholds
    assert overall_floor.threshold.value_threshold.lower_bound.value == 0.6
    assert change.threshold.change_threshold.absolute.value == -0.01
    assert [dict(spec.feature_values) for spec in recall.slicing_specs] == [{"label": "cat"}, {"label": "dog"}]
    assert recall.threshold.value_threshold.lower_bound.value == 0.5


def test_a_config_with_no_thresholds_is_refused():
    with pytest.raises(ValueError, match="no thresholds"):
        build_eval_config(None, None, None)


def test_a_threshold_on_a_misspelled_metric_is_refused():
    config = build_eval_config(0.6, None)
    config.metrics_specs[0].per_slice_thresholds["sparse_categorical_acuracy"].thresholds.add().threshold.CopyFrom(
        tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.6})))
    with pytest.raises(ValueError, match="sparse_categorical_acuracy"):
        validate(config)


def test_an_unknown_metric_class_is_refused():
    config = build_eval_config(0.6, None)
    config.metrics_specs[0].metrics.append(tfma.MetricConfig(class_name="SparseCategoricalAccuracyy"))
    with pytest.raises(ValueError, match="SparseCategoricalAccuracyy"):
        validate(config)


def test_without_class_names_every_label_value_is_a_slice():
    config = build_eval_config(None, None, 0.5)
    assert list(config.slicing_specs[1].feature_keys) == [features.LABEL_KEY]
    assert eval_config_lib.threshold_metric_names(config) == [ACCURACY_METRIC]
