"""GatedEvaluator: TFX's Evaluator, plus a blessing report that says why a model was (not) blessed."""
import json
import logging
import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import path_utils

from components import features
from components.evaluation import report as report_lib

# Custom properties of the ModelBlessing artifact: shown by the KFP UI and read by the run summary.
REASONS_PROPERTY = "blessing_reasons"
REPORT_PROPERTY = "blessing_report"
ACCURACY_PROPERTY = "accuracy"


def read_model_info(model_uri: str) -> Dict:
    path = os.path.join(path_utils.serving_model_path(model_uri), features.ASSETS_EXTRA_DIR,
                        features.MODEL_INFO_FILE_NAME)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())


class Executor(evaluator_executor.Executor):
    """Runs TFX's Evaluator executor unchanged, then writes the report next to its blessing."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        evaluation = artifact_utils.get_single_instance(output_dict[specs.EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[specs.BLESSING_KEY])
        model = artifact_utils.get_single_instance(input_dict[specs.MODEL_KEY])
        model_info = read_model_info(model.uri)
        report = report_lib.build_report(evaluation.uri, model_info.get("class_names", []),
                                         has_baseline=bool(input_dict.get(specs.BASELINE_MODEL_KEY)))
        examples = input_dict[specs.EXAMPLES_KEY][0]
        if examples.has_custom_property("examples_per_class_and_split"):
            report["examples_per_class_and_split"] = json.loads(
                examples.get_string_custom_property("examples_per_class_and_split") or "{}")
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
