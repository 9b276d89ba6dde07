"""Pipeline runs as ML Metadata records them: runs, their component executions, and each one's artifacts.

Only ML Metadata's own model is used (contexts, executions, events, artifacts), so the same code reads the
local SQLite store of LocalDagRunner and a cluster's metadata service (Kubeflow Pipelines' metadata-grpc
service, through a port-forward) given the matching connection config. Artifact URIs are read with
tf.io.gfile elsewhere, so gs:// works as well as local paths.

TFX names things slightly differently on each orchestrator; the differences are absorbed here:
  run context type: `pipeline_run` (TFX) or `system.PipelineRun` (KFP v2)
  component name:   the `node` context `<pipeline>.<component>` (TFX), or the execution's `task_name` /
                    `display_name` custom property (KFP v2)
  artifact type:    `Examples` (TFX) or `tfx.Examples` (KFP v2 schema titles)
"""
import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

TFX_RUN_CONTEXT_TYPE = "pipeline_run"
RUN_CONTEXT_TYPES = (TFX_RUN_CONTEXT_TYPE, "system.PipelineRun")
NODE_CONTEXT_TYPE = "node"
PIPELINE_CONTEXT_TYPES = ("pipeline", "system.Pipeline")
_TASK_NAME_PROPERTIES = ("task_name", "display_name")
_TYPE_PREFIXES = ("tfx.", "system.")
# A Resolver's INTERNAL_OUTPUT is an older artifact it found, not something produced: it is left out, and
# the artifact appears as the consumer's input instead.
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT,
                 metadata_store_pb2.Event.INTERNAL_INPUT)
# Custom property of a run context: the JSON list of the components the run was started with, written by the
# local runner before the first one runs (pipeline/local_runner.py). A process killed between two components
# leaves every execution COMPLETE; only this list shows that the later ones never ran.
PLANNED_COMPONENTS_PROPERTY = "imagepipe_planned_components"
# Run status words, used alike by the run summary, `imagepipe runs`, the report and the metrics.
COMPLETE, FAILED, RUNNING = "COMPLETE", "FAILED", "RUNNING"


def sqlite_config(path: str) -> metadata_store_pb2.ConnectionConfig:
    """Read-only connection to a local SQLite store (a report never writes metadata)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return config


def grpc_config(address: str) -> metadata_store_pb2.MetadataStoreClientConfig:
    """A metadata gRPC service, e.g. KFP's after `kubectl port-forward svc/metadata-grpc-service 8080`."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--metadata-grpc wants HOST:PORT, e.g. localhost:8080; got {address!r}")
    return metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port))


@dataclasses.dataclass(frozen=True)
class ArtifactRecord:
    id: int
    type: str
    uri: str
    properties: Dict[str, object]
    create_time_ms: int


@dataclasses.dataclass(frozen=True)
class ComponentRecord:
    """One component's execution in a run, with its artifacts by input/output key."""

    name: str
    execution_id: int
    state: str
    start_ms: int
    end_ms: int
    inputs: Dict[str, List[ArtifactRecord]]
    outputs: Dict[str, List[ArtifactRecord]]

    @property
    def seconds(self) -> float:
        return round((self.end_ms - self.start_ms) / 1000, 1)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    pipeline: str
    start_ms: int
    components: List[ComponentRecord]
    # The components the run was started with (PLANNED_COMPONENTS_PROPERTY); empty when not recorded
    # (runs of other orchestrators, or older runs).
    planned: Tuple[str, ...] = ()

    @property
    def end_ms(self) -> int:
        return max((component.end_ms for component in self.components), default=self.start_ms)

    @property
    def failed_components(self) -> List[str]:
        return [component.name for component in self.components if component.state in _FAILED_STATES]

    @property
    def unfinished_components(self) -> List[str]:
        """Components whose execution has not ended: still running, or left so by a process that died."""
        return [component.name for component in self.components if component.state in _UNFINISHED_STATES]

    @property
    def components_not_started(self) -> List[str]:
        """Planned components with no execution in this run: not reached yet, or never (the process died)."""
        started = {component.name for component in self.components}
        return [name for name in self.planned if name not in started]

    @property
    def status(self) -> str:
        """FAILED if a component failed; RUNNING if one is unfinished or a planned one has not started (a run
        still going, or one whose process died); else COMPLETE."""
        if self.failed_components:
            return FAILED
        if not self.components or self.unfinished_components or self.components_not_started:
            return RUNNING
        return COMPLETE

    def component(self, name: str) -> Optional[ComponentRecord]:
        return next((component for component in self.components if component.name == name), None)

    def component_producing(self, type_name: str) -> Optional[ComponentRecord]:
        """The component with an output of this type (found by type: component ids differ between pipelines)."""
        for component in self.components:
            if any(a.type == type_name for artifacts in component.outputs.values() for a in artifacts):
                return component
        return None

    def first_output_of_type(self, type_name: str) -> Optional[ArtifactRecord]:
        component = self.component_producing(type_name)
        if component is None:
            return None
        return next(a for artifacts in component.outputs.values() for a in artifacts if a.type == type_name)

    def first_input_of_type(self, type_name: str, key: Optional[str] = None,
                            consumer_of: Optional[str] = None) -> Optional[ArtifactRecord]:
        """An input artifact of this type (and input key), of the component producing `consumer_of` if given."""
        consumers = self.components
        if consumer_of is not None:
            producer = self.component_producing(consumer_of)
            consumers = [producer] if producer else []
        for component in consumers:
            for input_key, artifacts in component.inputs.items():
                for artifact in artifacts:
                    if artifact.type == type_name and key in (None, input_key):
                        return artifact
        return None


_FAILED_STATES = ("FAILED", "CANCELED")
_UNFINISHED_STATES = ("NEW", "RUNNING", "UNKNOWN")


def _value(value: metadata_store_pb2.Value) -> object:
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind) if kind else None


def artifact_type_name(name: str) -> str:
    for prefix in _TYPE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class MetadataReader:
    """Read-only queries on one ML Metadata store."""

    def __init__(self, connection_config):
        self._store = mlmd.MetadataStore(connection_config)
        self._artifact_types = {t.id: artifact_type_name(t.name) for t in self._store.get_artifact_types()}

    def run_contexts(self) -> List[metadata_store_pb2.Context]:
        """Every recorded run, newest first."""
        runs = []
        for type_name in RUN_CONTEXT_TYPES:
            try:
                runs += self._store.get_contexts_by_type(type_name)
            except mlmd.errors.NotFoundError:
                continue
        return sorted(runs, key=lambda context: (context.create_time_since_epoch, context.id), reverse=True)

    def run(self, run_id: Optional[str] = None) -> RunRecord:
        """The run named run_id, or the newest run."""
        runs = self.run_contexts()
        if not runs:
            raise LookupError("No pipeline run is recorded in this metadata store.")
        if run_id is None:
            return self.read_run(runs[0])
        for context in runs:
            if context.name == run_id:
                return self.read_run(context)
        raise LookupError(f"No run {run_id!r} in the metadata store; `imagepipe runs` lists them.")

    def read_run(self, context: metadata_store_pb2.Context) -> RunRecord:
        executions = sorted(self._store.get_executions_by_context(context.id), key=lambda e: e.id)
        events = self._store.get_events_by_execution_ids([execution.id for execution in executions])
        artifacts = {a.id: a for a in self._store.get_artifacts_by_id(list({e.artifact_id for e in events}))}
        components = [self._component(execution, [e for e in events if e.execution_id == execution.id], artifacts)
                      for execution in executions]
        start = min((c.start_ms for c in components), default=context.create_time_since_epoch)
        planned = context.custom_properties.get(PLANNED_COMPONENTS_PROPERTY)
        return RunRecord(run_id=context.name, pipeline=self._pipeline_name(context, executions),
                         start_ms=start, components=components,
                         planned=tuple(json.loads(planned.string_value)) if planned else ())

    def artifact(self, artifact_id: int) -> Optional[ArtifactRecord]:
        found = self._store.get_artifacts_by_id([artifact_id])
        return self._artifact(found[0]) if found else None

    def producing_run(self, artifact_id: int) -> Optional[str]:
        """The run whose execution created the artifact (a cached component reuses an older run's output)."""
        events = [event for event in self._store.get_events_by_artifact_ids([artifact_id])
                  if event.type == metadata_store_pb2.Event.OUTPUT]
        for execution in self._store.get_executions_by_id(sorted({e.execution_id for e in events})):
            if execution.last_known_state == metadata_store_pb2.Execution.COMPLETE:
                runs = [c for c in self._store.get_contexts_by_execution(execution.id) if c.type in RUN_CONTEXT_TYPES]
                if runs:
                    return runs[0].name
        return None

    def _component(self, execution, events: Sequence[metadata_store_pb2.Event], artifacts) -> ComponentRecord:
        inputs: Dict[str, List[ArtifactRecord]] = {}
        outputs: Dict[str, List[ArtifactRecord]] = {}
        for event in events:
            if not event.path.steps or event.artifact_id not in artifacts:
                continue
            target = outputs if event.type in _OUTPUT_EVENTS else inputs if event.type in _INPUT_EVENTS else None
            if target is None:
                continue
            # One event per artifact: an artifact given under two keys has a path [key, index, key, index].
            for key in [step.key for step in event.path.steps if step.HasField("key")]:
                target.setdefault(key, []).append(self._artifact(artifacts[event.artifact_id]))
        return ComponentRecord(
            name=self._component_name(execution),
            execution_id=execution.id,
            state=metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            start_ms=execution.create_time_since_epoch,
            end_ms=execution.last_update_time_since_epoch,
            inputs=inputs, outputs=outputs)

    def _artifact(self, artifact: metadata_store_pb2.Artifact) -> ArtifactRecord:
        properties = {key: _value(value) for key, value in artifact.properties.items()}
        properties.update({key: _value(value) for key, value in artifact.custom_properties.items()})
        return ArtifactRecord(id=artifact.id, type=self._artifact_types.get(artifact.type_id, "?"),
                              uri=artifact.uri, properties=properties,
                              create_time_ms=artifact.create_time_since_epoch)

    def _component_name(self, execution: metadata_store_pb2.Execution) -> str:
        for context in self._store.get_contexts_by_execution(execution.id):
            if context.type == NODE_CONTEXT_TYPE:
                return context.name.split(".")[-1]
        for key in _TASK_NAME_PROPERTIES:
            if key in execution.custom_properties:
                return str(_value(execution.custom_properties[key]))
        return execution.type.split(".")[-1]

    def _pipeline_name(self, run: metadata_store_pb2.Context, executions) -> str:
        for execution in executions[:1]:
            for context in self._store.get_contexts_by_execution(execution.id):
                if context.type in PIPELINE_CONTEXT_TYPES:
                    return context.name
        return run.name


def json_property(artifact: Optional[ArtifactRecord], key: str, default=None):
    """A custom property that holds JSON text (TFX artifacts store dicts and lists that way)."""
    if artifact is None or artifact.properties.get(key) in (None, ""):
        return default
    return json.loads(artifact.properties[key])
