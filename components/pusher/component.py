"""VersionedPusher: TFX's Pusher with integer versions that never collide and a push TF Serving never
sees half-done (serving/serving_dir.py owns the serving directory), plus the model card and the TFLite files
that passed their tolerance."""
import json
import logging
import posixpath
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components import features
from components.evaluation import report as report_lib
from components.pusher import model_card
from serving import rollback
from serving.serving_dir import CopyFile, PushResult, ServingDir

# Pusher custom_config key: largest accuracy drop of a TFLite file against the SavedModel that still ships.
TFLITE_TOLERANCE_KEY = "max_tflite_accuracy_drop"
DEFAULT_TFLITE_TOLERANCE = 0.02
METHOD_PROPERTY = "push_method"
# On the PushedModel: the pushed model's content hash (serving/serving_dir.py model_fingerprint), and 1 when an earlier run had
# already pushed the same model as the newest version (pushed_version/pushed_destination then name that one).
FINGERPRINT_PROPERTY = "model_fingerprint"
ALREADY_PUSHED_PROPERTY = "already_pushed"


def _read_json(path: str) -> Optional[Dict]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())


def tflite_within_tolerance(evaluation: Optional[Dict], tolerance: float) -> Dict[str, bool]:
    """Which TFLite conversions may ship: accuracy at most `tolerance` below the SavedModel's."""
    if not evaluation or evaluation.get("savedmodel_accuracy") is None:
        return {}
    reference = evaluation["savedmodel_accuracy"]
    return {quantization: values["accuracy"] is not None and values["accuracy"] >= reference - tolerance
            for quantization, values in evaluation["tflite"].items()}


def push_blessed_model(model_dir: str, serving_dir: str, report: Optional[Dict], tolerance: float,
                       copy_file: Optional[CopyFile] = None) -> PushResult:
    """Pushes one blessed model with its model card; TFLite files outside the tolerance stay behind. The first
    push also writes the default model config that TF Serving polls (never replacing an operator's)."""
    model_info = _read_json(posixpath.join(model_dir, features.ASSETS_EXTRA_DIR, features.MODEL_INFO_FILE_NAME)) or {}
    tflite = _read_json(posixpath.join(model_dir, features.TFLITE_DIR, features.TFLITE_EVALUATION_FILE_NAME))
    shipped = tflite_within_tolerance(tflite, tolerance)
    exclude = [posixpath.join(features.TFLITE_DIR, values["file"]) for quantization, values in
               (tflite or {}).get("tflite", {}).items() if not shipped.get(quantization)]
    if exclude:
        logging.warning("TFLite files outside the %.3f accuracy tolerance are not pushed: %s", tolerance, exclude)

    def card(version: int) -> Dict[str, str]:
        return {features.MODEL_CARD_FILE_NAME: model_card.render_model_card(version, model_info, report, tflite,
                                                                            shipped)}

    serving = ServingDir(serving_dir)
    result = serving.push(model_dir, exclude=exclude, extra_files=card, copy_file=copy_file)
    if rollback.ensure_config(serving):
        logging.info("Wrote TF Serving's model config %s (newest versions served).", serving.config_path)
    return result


class Executor(pusher_executor.Executor):
    """Blessed models only (TFX's CheckBlessing), filesystem destinations, versions 1, 2, 3, ..."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("VersionedPusher pushes to a filesystem destination (a TF Serving model base path) only.")
        custom_config = json.loads(exec_properties.get(specs.CUSTOM_CONFIG_KEY) or "null") or {}
        blessing = input_dict[specs.MODEL_BLESSING_KEY][0]
        result = push_blessed_model(self.GetModelPath(input_dict), destination.filesystem.base_directory,
                                    report_lib.read_report(blessing.uri),
                                    float(custom_config.get(TFLITE_TOLERANCE_KEY, DEFAULT_TFLITE_TOLERANCE)))
        # Already pushed or not, the model is served from this version: the artifact says pushed, and where.
        self._MarkPushed(model_push, pushed_destination=result.version_dir, pushed_version=str(result.version))
        model_push.set_string_custom_property(METHOD_PROPERTY, result.method)
        model_push.set_string_custom_property(FINGERPRINT_PROPERTY, result.fingerprint)
        model_push.set_int_custom_property(ALREADY_PUSHED_PROPERTY, int(result.already_pushed))
        if result.already_pushed:
            logging.info("Model already pushed as version %d (%s): not pushed again.", result.version,
                         result.version_dir)
        else:
            logging.info("Model pushed as version %d to %s (%s).", result.version, result.version_dir, result.method)


class VersionedPusher(pusher_component.Pusher):
    """TFX's Pusher with the executor above; same inputs, outputs and parameters."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
