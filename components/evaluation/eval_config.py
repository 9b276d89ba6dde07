"""The TFMA EvalConfig that decides blessing: what is measured and which thresholds a model must clear."""
import tensorflow_model_analysis as tfma

from components import features

ACCURACY_METRIC = "sparse_categorical_accuracy"


def build_eval_config(min_accuracy: float, max_accuracy_drop: float) -> tfma.EvalConfig:
    """Accuracy must reach `min_accuracy` and may not fall more than `max_accuracy_drop` below the baseline.

    The model is evaluated through its serving_tf_example signature on raw examples, so what is gated is
    what is served; labels come from the exported Transform graph (the transform_features signature).
    On the first run there is no baseline, and TFMA applies only the absolute threshold.
    """
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_accuracy_drop},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=features.TF_EXAMPLE_SIGNATURE,
                preprocessing_function_names=[features.TRANSFORM_SIGNATURE],
                label_key=features.TRANSFORMED_LABEL_KEY,
                prediction_key=features.PROBABILITIES_KEY,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="SparseCategoricalAccuracy", threshold=accuracy_threshold),
                    tfma.MetricConfig(class_name="SparseCategoricalCrossentropy"),
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                ]
            )
        ],
    )
