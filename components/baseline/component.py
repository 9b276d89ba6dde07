"""LatestPushedModel: the Evaluator's baseline read from the serving directory instead of ML Metadata.

The open-source Kubeflow Pipelines v2 backend does not execute TFX Resolver tasks (see README, Kubeflow),
so on it the baseline cannot come from a metadata query. The Pusher only pushes blessed models, so the
newest version in the serving directory is the last model that passed the gate.
"""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.baseline import executor


class LatestPushedModelSpec(types.ComponentSpec):
    PARAMETERS = {executor.SERVING_DIR_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.CANDIDATE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class LatestPushedModel(base_component.BaseComponent):
    """Outputs the newest complete version under `serving_dir` as a Model (the candidate if none yet)."""

    SPEC_CLASS = LatestPushedModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, candidate_model: types.BaseChannel, serving_dir: str):
        if not serving_dir:
            raise ValueError("LatestPushedModel needs serving_dir: the directory the Pusher writes versions to.")
        super().__init__(spec=LatestPushedModelSpec(
            candidate_model=candidate_model,
            serving_dir=serving_dir,
            baseline_model=types.Channel(type=standard_artifacts.Model),
        ))
