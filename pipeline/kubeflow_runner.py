"""Compiles the pipeline for Kubeflow Pipelines (v2) / Vertex AI Pipelines with KubeflowV2DagRunner.

Transform and Trainer name their code by dotted path and the image has this package installed, so the
compile step uploads nothing: it works offline whatever the pipeline root is (gs://, s3://, a PVC path).

On top of what TFX compiles, this module sets per-task CPU/memory/GPU, per-component Beam args and the
run-time parameters, and disables the cache of the tasks whose cache key cannot see what they read
(UNCACHED_TASKS).
"""
import dataclasses
import json
import logging
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

from tfx import v1 as tfx
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent

from pipeline.config import PipelineConfig
from pipeline.pipeline import (LATEST_PUSHED_MODEL_ID, PREVIOUS_SPAN_STATISTICS_ID, SCHEMA_IMPORT_ID, SPAN_WINDOW_ID,
                               create_pipeline)

DEFAULT_IMAGE = "ghcr.io/imagepipe/imagepipe:0.1.0"
# The name Kubernetes schedules NVIDIA GPUs by (KFP OSS). Vertex AI wants a machine accelerator name
# such as NVIDIA_TESLA_T4 instead.
DEFAULT_GPU_TYPE = "nvidia.com/gpu"
# Run-time parameters: (component id, execution property) -> pipeline parameter name. Their compiled
# values are the defaults; `imagepipe submit --param NAME=VALUE` overrides them for one run.
# training_config is the Trainer's whole custom_config JSON ({"training": {...}, "code_version": ...}):
# TFX 1.16 compiles only whole execution properties to parameters, not fields inside one.
RUNTIME_PARAMETERS = {
    ("ImageExampleGen", "input_base"): "data_root",
    ("Trainer", "custom_config"): "training_config",
}


# Tasks whose KFP cache key cannot see what they read, so KFP must always run them. KFP's key holds the
# task's parameters, input artifacts and container (backend/src/v2/cacheutils/cache.go, GenerateCacheKey):
# - ImageExampleGen: the images under data_root. TFX fingerprints them in its driver, which KFP OSS never runs
#   (see tests/kfp_v2_launcher.py), so new images under the same data_root would reuse the old Examples.
# - ImportSchemaGen: the schema file's content (its path is all the key holds; the file is read at run time).
# - latest_pushed_model: the serving directory, which the Pusher changes between runs.
# - PreviousSpanStatistics, SpanWindow: the span history under the pipeline root, which SpanWindow changes.
UNCACHED_TASKS = ("ImageExampleGen", SCHEMA_IMPORT_ID, LATEST_PUSHED_MODEL_ID, PREVIOUS_SPAN_STATISTICS_ID,
                  SPAN_WINDOW_ID)


@dataclasses.dataclass(frozen=True)
class TaskResources:
    """Container resources of one task. Requests equal limits: a task that is scheduled is not evicted
    for memory it was promised, and Vertex AI, which reads only limits, picks the same machine."""

    cpu: float
    memory_gb: float
    gpu: int = 0
    gpu_type: str = DEFAULT_GPU_TYPE

    def __post_init__(self):
        if self.cpu <= 0 or self.memory_gb <= 0:
            raise ValueError(f"cpu and memory must be positive, got cpu={self.cpu}, memory={self.memory_gb}.")
        if self.gpu < 0:
            raise ValueError(f"gpu must be >= 0, got {self.gpu}.")

    def to_spec(self) -> Dict:
        """The PipelineContainerSpec.ResourceSpec as compiled JSON (memory in GB, as KFP reads it)."""
        spec = {"cpuLimit": self.cpu, "cpuRequest": self.cpu,
                "memoryLimit": self.memory_gb, "memoryRequest": self.memory_gb}
        if self.gpu:
            spec["accelerator"] = {"type": self.gpu_type, "count": str(self.gpu)}  # int64 is a JSON string.
        return spec


# Sized for tens of thousands of 224x224 images with the DirectRunner inside the task's own pod; with
# Dataflow/Flink/Spark (Beam args) the Beam components' pods only submit the job and need little.
DEFAULT_RESOURCES: Mapping[str, TaskResources] = {
    "ImageExampleGen": TaskResources(cpu=2, memory_gb=8),
    "StatisticsGen": TaskResources(cpu=2, memory_gb=8),
    "ImportSchemaGen": TaskResources(cpu=0.5, memory_gb=1),
    "ExampleValidator": TaskResources(cpu=1, memory_gb=2),
    "DataValidationGate": TaskResources(cpu=1, memory_gb=2),
    PREVIOUS_SPAN_STATISTICS_ID: TaskResources(cpu=0.5, memory_gb=1),
    SPAN_WINDOW_ID: TaskResources(cpu=0.5, memory_gb=1),  # Copies are server-side on gs:// (no bytes through it).
    "Transform": TaskResources(cpu=4, memory_gb=16),
    "DataQuality": TaskResources(cpu=4, memory_gb=16),
    "Trainer": TaskResources(cpu=8, memory_gb=32),
    LATEST_PUSHED_MODEL_ID: TaskResources(cpu=0.5, memory_gb=1),
    "Evaluator": TaskResources(cpu=4, memory_gb=16),
    "Pusher": TaskResources(cpu=0.5, memory_gb=1),
}


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    """What only a cluster run needs: the image, resources and Beam args per component."""

    image: str = DEFAULT_IMAGE
    resources: Mapping[str, TaskResources] = dataclasses.field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    # Appended after the pipeline-wide beam_pipeline_args, e.g. {"Transform": ("--runner=DataflowRunner",)}.
    component_beam_args: Mapping[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.image:
            raise ValueError("image must name the container image that has this package installed.")


def parse_resources(text: str, gpu_type: str = DEFAULT_GPU_TYPE) -> Tuple[str, TaskResources]:
    """'Trainer:cpu=8,memory=32,gpu=1' -> ('Trainer', TaskResources(8, 32, 1)); memory in GB."""
    component, separator, assignments = text.partition(":")
    if not separator or not component:
        raise ValueError(f"Expected COMPONENT:cpu=N,memory=GB[,gpu=N], got {text!r}.")
    values = dict(DEFAULT_RESOURCES.get(component, TaskResources(cpu=1, memory_gb=2)).__dict__)
    names = {"cpu": "cpu", "memory": "memory_gb", "gpu": "gpu"}
    for assignment in assignments.split(","):
        name, _, value = assignment.partition("=")
        if name not in names or not value:
            raise ValueError(f"Unknown or empty resource {assignment!r} in {text!r}; use cpu, memory (GB), gpu.")
        values[names[name]] = int(value) if name == "gpu" else float(value)
    values["gpu_type"] = gpu_type
    return component, TaskResources(**values)


def parse_component_beam_arg(text: str) -> Tuple[str, str]:
    """'Transform=--runner=DataflowRunner' -> ('Transform', '--runner=DataflowRunner')."""
    component, separator, argument = text.partition("=")
    if not separator or not component or not argument.startswith("--"):
        raise ValueError(f"Expected COMPONENT=--beam_option=value, got {text!r}.")
    return component, argument


# Beam options that tell TFX where its workers get their Python dependencies from.
_DEPENDENCY_OPTIONS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file", "--worker_harness_container_image",
                       "--sdk_container_image")


def with_worker_image(beam_args: Sequence[str], image: str) -> Tuple[str, ...]:
    """Names the pipeline image as Beam's worker image unless the user chose a dependency option.

    Dataflow, Flink and Spark workers need this project's components to run its transforms; the image holds
    them. Without such an option TFX would instead repackage its own installation as an sdist in every Beam
    task (seconds each), which lacks the components anyway. In-process runners ignore the option."""
    if any(arg.split("=", 1)[0] in _DEPENDENCY_OPTIONS for arg in beam_args):
        return tuple(beam_args)
    return tuple(beam_args) + (f"--sdk_container_image={image}",)


def compile_pipeline(config: PipelineConfig, output_file: str,
                     settings: Optional[KubeflowSettings] = None) -> str:
    """Writes the KFP v2 PipelineJob JSON (pipeline spec schema 2.1.0, which KFP 2.x and Vertex AI read)."""
    settings = settings or KubeflowSettings()
    config = dataclasses.replace(config, beam_pipeline_args=with_worker_image(config.beam_pipeline_args,
                                                                              settings.image))
    tfx_pipeline = create_pipeline(config, read_span_history=False)
    components = {component.id: component for component in tfx_pipeline.components}
    # Defaults name every possible task (both baselines); only names a user added must exist.
    added_names = [name for name in settings.resources if name not in DEFAULT_RESOURCES]
    _check_component_names(components, added_names + list(settings.component_beam_args))
    _add_component_beam_args(components, settings.component_beam_args)
    parameter_defaults = _expose_runtime_parameters(components)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=settings.image, use_pipeline_spec_2_1=True),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    # The defaults become the job's runtimeConfig values; TFX would otherwise leave them out of schema 2.1.
    job = runner.run(tfx_pipeline, parameter_values=parameter_defaults, write_out=False)
    set_parameter_defaults(job["pipelineSpec"], parameter_defaults)
    set_task_resources(job["pipelineSpec"], settings.resources)
    for task_name in UNCACHED_TASKS:
        set_task_caching(job["pipelineSpec"], task_name, enabled=False)
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    with open(output_file, "w") as handle:
        json.dump(job, handle, indent=1, sort_keys=True)
    logging.info("Wrote the Kubeflow pipeline spec to %s", output_file)
    return output_file


def _check_component_names(components: Mapping, names: Sequence[str]) -> None:
    unknown = sorted(set(names) - set(components))
    if unknown:
        raise ValueError(f"Unknown component(s) {unknown}; the pipeline has {sorted(components)}.")


def _add_component_beam_args(components: Mapping, component_beam_args: Mapping[str, Sequence[str]]) -> None:
    for component_id, beam_args in component_beam_args.items():
        component = components[component_id]
        if not isinstance(component, BaseBeamComponent):
            raise ValueError(f"{component_id} does not run Beam; Beam args apply to "
                             f"{sorted(i for i, c in components.items() if isinstance(c, BaseBeamComponent))}.")
        # The pipeline's own Beam args were prepended when the pipeline was built; these come after them.
        component.with_beam_pipeline_args(list(beam_args))


def _expose_runtime_parameters(components: Mapping) -> Dict[str, str]:
    """Replaces compiled-in values by RuntimeParameters that default to them (a runner-only concern:
    create_pipeline stays a pure function of the typed config). Returns the defaults by name."""
    defaults = {}
    for (component_id, property_name), parameter_name in RUNTIME_PARAMETERS.items():
        exec_properties = components[component_id].exec_properties
        defaults[parameter_name] = exec_properties[property_name]
        exec_properties[property_name] = tfx.dsl.experimental.RuntimeParameter(
            name=parameter_name, ptype=str, default=defaults[parameter_name])
    return defaults


def set_parameter_defaults(pipeline_spec: Dict, defaults: Mapping[str, str]) -> None:
    """Declares the defaults in the spec too, so a run or recurring run created without values uses them."""
    declared = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    for name, value in defaults.items():
        declared[name].update(defaultValue=value, isOptional=True)


def _executors_by_task(pipeline_spec: Dict) -> Dict[str, Dict]:
    executors = pipeline_spec["deploymentSpec"]["executors"]
    result = {}
    for task_name, task in pipeline_spec["root"]["dag"]["tasks"].items():
        label = pipeline_spec["components"][task["componentRef"]["name"]].get("executorLabel")
        if label and "container" in executors[label]:
            result[task_name] = executors[label]
    return result


def set_task_resources(pipeline_spec: Dict, resources: Mapping[str, TaskResources]) -> None:
    """Writes each task's resources into its container spec.

    Done on the compiled spec rather than with `with_platform_config`, because TFX 1.16 drops
    platform_config for FileBasedExampleGen (step_builder._build_file_based_example_gen_spec), so
    ImageExampleGen's resources would be silently lost.
    """
    executors = _executors_by_task(pipeline_spec)
    for task_name, task_resources in resources.items():
        if task_name in executors:
            executors[task_name]["container"]["resources"] = task_resources.to_spec()


def set_task_caching(pipeline_spec: Dict, task_name: str, enabled: bool) -> None:
    task = pipeline_spec["root"]["dag"]["tasks"].get(task_name)
    if task is not None:
        task["cachingOptions"] = {"enableCache": True} if enabled else {}


def settings_from_options(image: Optional[str], resource_overrides: Sequence[str], gpu_type: Optional[str],
                          component_beam_args: Sequence[str]) -> KubeflowSettings:
    """KubeflowSettings from the compile command's options (see `imagepipe compile --help`)."""
    resources = dict(DEFAULT_RESOURCES)
    for text in resource_overrides:
        component, task_resources = parse_resources(text, gpu_type or DEFAULT_GPU_TYPE)
        resources[component] = task_resources
    beam_args: Dict[str, Tuple[str, ...]] = {}
    for text in component_beam_args:
        component, argument = parse_component_beam_arg(text)
        beam_args[component] = beam_args.get(component, ()) + (argument,)
    return KubeflowSettings(image=image or DEFAULT_IMAGE, resources=resources, component_beam_args=beam_args)
