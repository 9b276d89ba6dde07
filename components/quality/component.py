"""DataQuality: suspect labels, near-duplicate leaks and outliers, found on the base's features after
validation and before training. See assessment.py for what it finds and what it acts on.

A component of its own rather than part of the Trainer: its findings are there (and can stop the run) before
any training is paid for, and its filtered examples (leaking eval copies removed, suspects optionally left out
of train) are what both the Trainer and the Evaluator read, so the two always see the same data.
"""
import json
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.quality import executor, findings
from components.quality.feature_cache import featurization_config
from components.quality.settings import QualitySettings
from components.trainer.hparams import TrainingConfig


class DataQualityReport(Artifact):
    """quality_summary.json, suspect_labels.jsonl, near_duplicates.jsonl, outliers.jsonl and thumbnails/."""

    TYPE_NAME = findings.QUALITY_ARTIFACT_TYPE


class DataQualitySpec(types.ComponentSpec):
    PARAMETERS = {
        executor.SETTINGS_KEY: ExecutionParameter(type=str),
        executor.TRAINING_CONFIG_KEY: ExecutionParameter(type=str),
        # A hash of our code (pipeline/config.py components_fingerprint): the executor is named by class path,
        # so without it a code change would reuse cached findings.
        executor.CODE_VERSION_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        executor.FILTERED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.QUALITY_KEY: ChannelParameter(type=DataQualityReport),
    }


class DataQuality(base_component.BaseComponent):
    """Assesses labels, near-duplicates and outliers; outputs the examples that training and evaluation read."""

    SPEC_CLASS = DataQualitySpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 training: TrainingConfig, settings: QualitySettings = QualitySettings(),
                 code_version: Optional[str] = None):
        """`training` is the Trainer's config: features come from the same base, weights and input size."""
        super().__init__(spec=DataQualitySpec(
            examples=examples, transform_graph=transform_graph,
            settings=json.dumps(settings.to_json_dict(), sort_keys=True),
            training_config=json.dumps(featurization_config(training).to_json_dict(), sort_keys=True),
            code_version=code_version,
            filtered_examples=types.Channel(type=standard_artifacts.Examples),
            quality=types.Channel(type=DataQualityReport)))

