"""Spans without a Resolver (works on the open-source KFP v2 backend, which runs none; see history.py).

- PreviousSpanStatistics, before the validation gate: the statistics of the newest earlier validated span,
  the gate's drift baseline.
- SpanWindow, after the gate: records the validated span, then outputs the newest N validated spans'
  examples as one Examples artifact (splits train/eval) for Transform, DataQuality, Trainer and Evaluator.
  ImageExampleGen splits by content hash, so an image lands in the same split in every span (as long as
  --eval-percent is the same): the window never puts one image in both train and eval.

Both read the history when they run, which their inputs do not show: `history_fingerprint` (the records of
spans before the newest one in the data, hashed when the pipeline is built) is in their cache key locally, and
kubeflow_runner.py turns their KFP cache off.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.spans import executor
from components.validation.component import DataValidationResult


class PreviousSpanStatisticsSpec(types.ComponentSpec):
    PARAMETERS = {executor.HISTORY_DIR_KEY: ExecutionParameter(type=str),
                  executor.HISTORY_FINGERPRINT_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics)}
    OUTPUTS = {executor.PREVIOUS_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics)}


class PreviousSpanStatistics(base_component.BaseComponent):
    """The statistics of the newest validated span before the current one (none for the first span)."""

    SPEC_CLASS = PreviousSpanStatisticsSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.PreviousStatisticsExecutor)

    def __init__(self, statistics: types.BaseChannel, history_dir: str, history_fingerprint: str = ""):
        super().__init__(spec=PreviousSpanStatisticsSpec(
            statistics=statistics, history_dir=history_dir, history_fingerprint=history_fingerprint,
            previous_statistics=types.Channel(type=standard_artifacts.ExampleStatistics)))


class SpanWindowSpec(types.ComponentSpec):
    PARAMETERS = {executor.HISTORY_DIR_KEY: ExecutionParameter(type=str),
                  executor.SPAN_WINDOW_KEY: ExecutionParameter(type=int),
                  executor.HISTORY_FINGERPRINT_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
              executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
              executor.VALIDATION_RESULT_KEY: ChannelParameter(type=DataValidationResult)}
    OUTPUTS = {executor.WINDOW_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class SpanWindow(base_component.BaseComponent):
    """Records the span the gate passed; outputs the newest `span_window` validated spans (None: all)."""

    SPEC_CLASS = SpanWindowSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.SpanWindowExecutor)

    def __init__(self, examples: types.BaseChannel, statistics: types.BaseChannel,
                 validation_result: types.BaseChannel, history_dir: str, span_window: Optional[int] = None,
                 history_fingerprint: str = ""):
        if span_window is not None and span_window < 1:
            raise ValueError(f"span_window must be at least 1 (or None for every span), got {span_window}.")
        super().__init__(spec=SpanWindowSpec(
            examples=examples, statistics=statistics, validation_result=validation_result,
            history_dir=history_dir, span_window=span_window or 0, history_fingerprint=history_fingerprint,
            window_examples=types.Channel(type=standard_artifacts.Examples)))
