"""Executor of LatestPushedModel: unpacks artifacts and asks the serving directory (serving/serving_dir.py)."""
import logging
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from serving import storage
from serving.serving_dir import ServingDir

CANDIDATE_MODEL_KEY = "candidate_model"
SERVING_DIR_KEY = "serving_dir"
BASELINE_MODEL_KEY = "baseline_model"
# Custom properties on the baseline artifact, so lineage shows what the candidate was compared with.
SOURCE_PROPERTY = "baseline_source"
VERSION_PROPERTY = "baseline_version"


class Executor(base_executor.BaseExecutor):
    """Copies the newest pushed model version into the baseline Model artifact.

    Before anything has been pushed, the candidate is copied instead: compared with itself its accuracy
    change is zero, so only the absolute threshold gates the first model, as with an empty Resolver.
    """

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        baseline = artifact_utils.get_single_instance(output_dict[BASELINE_MODEL_KEY])
        serving = ServingDir(exec_properties[SERVING_DIR_KEY])
        version = serving.latest_version()
        if version is None:
            candidate = artifact_utils.get_single_instance(input_dict[CANDIDATE_MODEL_KEY])
            source_dir, version = path_utils.serving_model_path(candidate.uri), 0
            logging.info("Nothing pushed yet under %s: the candidate is its own baseline.",
                         exec_properties[SERVING_DIR_KEY])
        else:
            source_dir = serving.version_dir(version)
            logging.info("Baseline: pushed model version %d (%s).", version, source_dir)
        # The Evaluator reads a Model artifact's SavedModel from <uri>/Format-Serving.
        storage.copy_tree(source_dir, path_utils.serving_model_dir(baseline.uri))
        baseline.set_string_custom_property(SOURCE_PROPERTY, source_dir)
        baseline.set_int_custom_property(VERSION_PROPERTY, version)
