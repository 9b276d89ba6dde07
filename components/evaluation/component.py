"""GatedEvaluator: TFX's Evaluator, plus a blessing report that says why a model was (not) blessed."""
import json
import logging
import os
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import path_utils, proto_utils

from components import features
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import report as report_lib

# Custom properties of the ModelBlessing artifact: shown by the KFP UI and read by the run summary.
REASONS_PROPERTY = "blessing_reasons"
REPORT_PROPERTY = "blessing_report"
ACCURACY_PROPERTY = "accuracy"
EXAMPLE_COUNTS_PROPERTY = "examples_per_class_and_split"


def read_model_info(model_uri: str) -> Dict:
    path = os.path.join(path_utils.serving_model_path(model_uri), features.ASSETS_EXTRA_DIR,
                        features.MODEL_INFO_FILE_NAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())


def _examples_per_class_and_split(examples: types.Artifact) -> Dict[str, Dict[str, int]]:
    """Set by ImageExampleGen (components/ingestion); absent on examples from elsewhere."""
    if not examples.has_custom_property(EXAMPLE_COUNTS_PROPERTY):
        return {}
    return json.loads(examples.get_string_custom_property(EXAMPLE_COUNTS_PROPERTY) or "{}")


def mark_not_blessed(blessing: types.Artifact) -> None:
    """Overrides TFX's decision the way TFX records it (tfx/components/evaluator/executor.py: a NOT_BLESSED
    file and the `blessed` property, which the Pusher reads)."""
    tf.io.gfile.makedirs(blessing.uri)
    blessed_file = os.path.join(blessing.uri, evaluator_constants.BLESSED_FILE_NAME)
    if tf.io.gfile.exists(blessed_file):
        tf.io.gfile.remove(blessed_file)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, evaluator_constants.NOT_BLESSED_FILE_NAME), "w") as handle:
        handle.write("")
    blessing.set_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     evaluator_constants.NOT_BLESSED_VALUE)


class Executor(evaluator_executor.Executor):
    """Runs TFX's Evaluator executor unchanged, then writes the report next to its blessing; refuses a model
    with no output for a class the run names (no training examples) without running it."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        model = artifact_utils.get_single_instance(input_dict[specs.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[specs.BLESSING_KEY])
        model_info = read_model_info(model.uri)
        model_classes = model_info.get("class_names", [])
        has_baseline = bool(input_dict.get(specs.BASELINE_MODEL_KEY))
        eval_config = proto_utils.json_to_proto(exec_properties[specs.EVAL_CONFIG_KEY], tfma.EvalConfig())
        counts = _examples_per_class_and_split(input_dict[specs.EXAMPLES_KEY][0])
        eval_classes = sorted(name for name, splits in counts.items() if splits.get("eval"))
        untrained = eval_config_lib.classes_without_outputs(eval_config, model_classes, eval_classes) \
            if model_classes else []
        if untrained:
            # The label vocabulary comes from the training split, so such a class's eval examples have label
            # id -1, on which TFMA's calibration and cross-entropy fail the whole run. The model cannot be
            # blessed whatever its other metrics: TFMA is not run, and the reason is recorded.
            report = report_lib.not_evaluated_report(
                [f"class {name!r} has no training examples: the model cannot predict it" for name in untrained],
                model_classes, has_baseline)
            mark_not_blessed(blessing)
        else:
            super().Do(input_dict, output_dict, exec_properties)
            evaluation = artifact_utils.get_single_instance(output_dict[specs.EVALUATION_KEY])
            report = report_lib.build_report(evaluation.uri, model_classes, has_baseline=has_baseline)
        if counts:
            report["examples_per_class_and_split"] = counts
        report["training"] = model_info.get("training", {})
        path = report_lib.write_report(report, blessing.uri)
        blessing.set_string_custom_property(REASONS_PROPERTY, json.dumps(report["reasons"], ensure_ascii=False))
        blessing.set_string_custom_property(REPORT_PROPERTY, path)
        accuracy = report["overall"].get(report_lib.ACCURACY_METRIC)
        if accuracy is not None:
            blessing.set_float_custom_property(ACCURACY_PROPERTY, accuracy)
        logging.info("Blessed: %s. Reasons: %s", report["blessed"], report["reasons"] or "all thresholds met")


class GatedEvaluator(evaluator_component.Evaluator):
    """TFX's Evaluator with the executor above; same inputs, outputs and parameters."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
