"""DataValidationGate: fails the run before Transform when the data has anomalies (ExampleValidator only
records them). See gate.py for the anomaly kinds and what each checks."""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.validation import executor, gate


class DataValidationResult(Artifact):
    """validation_result.json: whether the gate passed, and the anomalies that failed it or only warned."""

    TYPE_NAME = "imagepipe.DataValidationResult"  # KFP v2 wants a namespaced custom type name.


class DataValidationGateSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.MIN_EXAMPLES_KEY: ExecutionParameter(type=int),
        executor.MAX_IMBALANCE_KEY: ExecutionParameter(type=float),
        executor.WARN_ONLY_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.PREVIOUS_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {executor.RESULT_KEY: ChannelParameter(type=DataValidationResult)}


class DataValidationGate(base_component.BaseComponent):
    """Validates a span's statistics against the schema, the previous span and the class-balance settings."""

    SPEC_CLASS = DataValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel, examples: types.BaseChannel,
                 settings: gate.GateSettings = gate.GateSettings(),
                 previous_statistics: Optional[types.BaseChannel] = None):
        super().__init__(spec=DataValidationGateSpec(
            statistics=statistics, schema=schema, examples=examples, previous_statistics=previous_statistics,
            min_examples_per_class=settings.min_examples_per_class,
            max_class_imbalance=float(settings.max_class_imbalance),
            warn_only=",".join(sorted(settings.warn_only)),
            result=types.Channel(type=DataValidationResult)))
