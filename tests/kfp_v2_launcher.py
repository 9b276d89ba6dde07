"""A TEST STAND-IN for the open-source KFP v2 backend's driver and launcher: it executes a compiled PipelineJob
JSON task by task, so tests check the compiled spec as a cluster would run it. Not an orchestrator for users
(no retries, no cache, no pods, no ML Metadata, no UI); use a KFP cluster for that.

What it does, each step as the backend does it (kubeflow/pipelines, read at 7b70c7b):
- Refuses what the backend refuses when it compiles the run into an Argo workflow: a resolver executor
  ("resolver executors not implemented") and a custom job (backend/src/v2/compiler/argocompiler/dag.go,
  `(*workflowCompiler).task`). Importers are not needed by our pipeline and are refused here, saying so.
- Runs nothing but the container: the backend runs the driver (backend/src/v2/driver/container.go,
  `Container`) and the launcher (backend/src/v2/component/launcher_v2.go, `execute`), and neither looks at
  `container.lifecycle`: `git grep -i lifecycle backend/src/v2` finds only Argo exit hooks and plugins. So
  TFX's ExampleGen driver, which TFX compiles as `lifecycle.preCacheCheck`, never runs on KFP OSS
  (Vertex AI runs it). This stand-in does not run it either.
- Parameters: from `runtimeConfig.parameterValues`, overridden per run (as `imagepipe submit --param`), else
  the root's declared default; constants from `runtimeValue.constant` (driver/resolve.go).
- Output URIs: `<pipeline root>/<pipeline name>/<run id>/<task name>/<uuid>/<output key>`: the run's root
  comes from metadata/client.go `GetPipeline` (GenerateOutputURI(root, [pipelineName, runID])), the rest from
  driver/driver.go `provisionOutputs` (task root = GenerateOutputURI(runRoot, [taskName, uuid])). Each output
  RuntimeArtifact carries name, type and metadata from the component's outputDefinitions.
- `{{$}}` in command and args becomes the ExecutorInput JSON (launcher_v2.go `compileCmdAndArgs`), and the
  `{{$.inputs...}}`/`{{$.outputs...}}` placeholders of `getPlaceholders` that name artifact URIs and parameter
  values are substituted too (our tasks use only `{{$}}`).
- `outputs.outputFile`: the launcher uses LocalPathForURI(task root) + "/output_metadata.json"
  (gs://b/x -> /gcs/b/x) and falls back to /tmp/kfp_outputs/output_metadata.json for a scheme it does not
  know, such as a local path. Each pod has its own /tmp and /gcs; here both are rebased under a scratch
  folder of the run, per task.
- After the container exits 0, the ExecutorOutput it wrote is merged into the output artifacts
  (launcher_v2.go `uploadOutputArtifacts` -> `mergeRuntimeArtifacts`: uri and metadata fields), and those
  are what downstream tasks receive as inputs, with `name` the artifact's (here: sequential) MLMD id as in
  metadata/converter.go `toRuntimeArtifact`.
- Tasks run in DAG order; a failed task stops the run, and the tasks after it do not run.
- `kill`: for tests of a lost pod (OOM-killed, node gone), a task's process group is SIGKILLed once its log
  shows a given line; the task then fails, as a pod's container that exits by a signal does.
"""
import argparse
import copy
import dataclasses
import itertools
import json
import os
import posixpath
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
# The backend's own messages (argocompiler/dag.go) for executors it cannot run.
REFUSALS = {"resolver": "resolver executors not implemented",
            "customJob": "custom job executors is Google Cloud only, it's not supported"}
OUTPUT_METADATA_FILE = "output_metadata.json"  # component.OutputMetadataFilepath's base name.
LEGACY_OUTPUT_DIR = "kfp_outputs"  # /tmp/kfp_outputs: the launcher's fallback for unknown schemes.


class RefusedByBackend(ValueError):
    """The compiled spec holds something the open-source KFP v2 backend refuses to run."""


class TaskFailed(RuntimeError):
    def __init__(self, task_name: str, returncode: int, log_path: Path):
        self.task_name, self.returncode, self.log_path = task_name, returncode, log_path
        tail = log_path.read_text(errors="replace")[-4000:]
        super().__init__(f"Task {task_name} failed with exit code {returncode}; log {log_path}:\n{tail}")


@dataclasses.dataclass
class TaskRecord:
    name: str
    executor_input: Dict
    outputs: Dict[str, Dict]  # Output key -> RuntimeArtifact (JSON), after the ExecutorOutput was merged.
    log_path: Path
    seconds: float


@dataclasses.dataclass
class RunResult:
    run_id: str
    run_root: str
    tasks: Dict[str, TaskRecord]

    def output_uri(self, task_name: str, key: str) -> str:
        return self.tasks[task_name].outputs[key]["uri"]


def check_backend_accepts(pipeline_spec: Mapping) -> None:
    """Raises RefusedByBackend for each executor kind the OSS backend's Argo compiler refuses."""
    for label, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        for kind, message in REFUSALS.items():
            if kind in executor:
                raise RefusedByBackend(f"{label}: {message}")
        if "importer" in executor:
            raise RefusedByBackend(f"{label}: importer executors are run by KFP but not by this test stand-in")


def task_order(dag_tasks: Mapping[str, Dict]) -> List[str]:
    """Topological order over dependentTasks and the producers of input artifacts (ties by name)."""
    needs = {name: set(task.get("dependentTasks", [])) | {
        artifact["taskOutputArtifact"]["producerTask"]
        for artifact in task.get("inputs", {}).get("artifacts", {}).values() if "taskOutputArtifact" in artifact}
        for name, task in dag_tasks.items()}
    order: List[str] = []
    while len(order) < len(needs):
        ready = sorted(name for name, upstream in needs.items() if name not in order and upstream <= set(order))
        if not ready:
            raise ValueError(f"The DAG has a cycle among {sorted(set(needs) - set(order))}.")
        order.extend(ready)
    return order


def run_parameters(job: Mapping, overrides: Mapping[str, str]) -> Dict:
    """The run's pipeline parameters: runtimeConfig values, then overrides; a declared default fills a gap."""
    declared = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ValueError(f"Unknown pipeline parameter(s) {unknown}; the pipeline declares {sorted(declared)}.")
    values = {name: spec["defaultValue"] for name, spec in declared.items() if "defaultValue" in spec}
    values.update(job.get("runtimeConfig", {}).get("parameterValues", {}))
    values.update(overrides)
    return values


def _input_parameters(task: Mapping, run_parameters_: Mapping) -> Dict:
    values = {}
    for name, source in task.get("inputs", {}).get("parameters", {}).items():
        if "componentInputParameter" in source:
            values[name] = run_parameters_[source["componentInputParameter"]]
        elif "runtimeValue" in source:
            values[name] = source["runtimeValue"]["constant"]
        else:
            raise NotImplementedError(f"Parameter source {sorted(source)} is not handled by this stand-in.")
    return values


def _input_artifacts(task: Mapping, component: Mapping, produced: Mapping[str, TaskRecord]) -> Dict:
    types = component.get("inputDefinitions", {}).get("artifacts", {})
    artifacts = {}
    for name, source in task.get("inputs", {}).get("artifacts", {}).items():
        producer = source["taskOutputArtifact"]
        artifact = copy.deepcopy(produced[producer["producerTask"]].outputs[producer["outputArtifactKey"]])
        artifact["type"] = types[name]["artifactType"]
        artifacts[name] = {"artifacts": [artifact]}
    return artifacts


def local_path_for_uri(uri: str, scratch: Path) -> Optional[Path]:
    """launcher_v2.go `LocalPathForURI`, rebased under `scratch` (the pod's /): gs://b/x -> scratch/gcs/b/x."""
    for scheme, mount in (("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3")):
        if uri.startswith(scheme):
            return scratch / mount / uri[len(scheme):]
    return None


def _output_artifacts(task_root: str, component: Mapping) -> Dict:
    outputs = {}
    for name, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        artifact = {"name": name, "uri": f"{task_root}/{name}", "type": spec["artifactType"]}
        if "metadata" in spec:
            artifact["metadata"] = spec["metadata"]
        outputs[name] = {"artifacts": [artifact]}
    return outputs


def generate_output_uri(root: str, *parts: str) -> str:
    """metadata/client.go `GenerateOutputURI`: no path.Join over the root, which would turn gs:// into gs:/."""
    return f"{root.rstrip('/')}/{posixpath.join(*parts)}"


def placeholders(executor_input: Mapping) -> Dict[str, str]:
    """launcher_v2.go `getPlaceholders`, for the URI and parameter-value placeholders."""
    values = {}
    for direction in ("inputs", "outputs"):
        for name, listed in executor_input[direction].get("artifacts", {}).items():
            values[f"{{{{$.{direction}.artifacts['{name}'].uri}}}}"] = listed["artifacts"][0]["uri"]
    for name, value in executor_input["inputs"].get("parameterValues", {}).items():
        values[f"{{{{$.inputs.parameters['{name}']}}}}"] = value if isinstance(value, str) else json.dumps(value)
    return values


def compile_command(container: Mapping, executor_input: Mapping) -> List[str]:
    executor_input_json = json.dumps(executor_input)
    substitutions = placeholders(executor_input)
    compiled = []
    for part in [*container.get("command", []), *container.get("args", [])]:
        part = part.replace(EXECUTOR_INPUT_PLACEHOLDER, executor_input_json)
        for placeholder, value in substitutions.items():
            part = part.replace(placeholder, value)
        compiled.append(part)
    return compiled


def _merge_executor_output(outputs: Dict, output_file: Path) -> Dict[str, Dict]:
    """launcher_v2.go `mergeRuntimeArtifacts`: the executor's uri and metadata fields win."""
    merged = {name: copy.deepcopy(listed["artifacts"][0]) for name, listed in outputs.items()}
    if not output_file.exists():
        return merged
    written = json.loads(output_file.read_text() or "{}")
    for name, listed in written.get("artifacts", {}).items():
        if name not in merged or not listed.get("artifacts"):
            continue
        source = listed["artifacts"][0]
        if source.get("uri"):
            merged[name]["uri"] = source["uri"]
        if source.get("metadata"):
            merged[name].setdefault("metadata", {}).update(source["metadata"])
    return merged


class _ArtifactIds:
    """Stands in for ML Metadata's artifact ids, which the driver passes as RuntimeArtifact.name."""

    def __init__(self):
        self._next = itertools.count(1)

    def assign(self, outputs: Dict[str, Dict]) -> None:
        for artifact in outputs.values():
            artifact["name"] = str(next(self._next))


def run_pipeline_job(job: Mapping, scratch_dir: Path, parameters: Optional[Mapping[str, str]] = None,
                     env: Optional[Mapping[str, str]] = None, run_id: Optional[str] = None,
                     stop_before: Optional[str] = None, python_bin_dir: Optional[str] = None,
                     task_timeout_s: float = 1800, kill: Optional[Mapping[str, str]] = None) -> RunResult:
    """Executes every task of the compiled PipelineJob `job` as KFP OSS would (see the module docstring).

    `scratch_dir` holds what lives on a pod's own disk (/tmp, /gcs), and each task's log. `env` is added to
    this process's environment for the tasks. `python_bin_dir` goes first on PATH, so the tasks' `python`
    is this venv's, as the image's is in a pod. `stop_before` ends the run before that task (for tests that
    then run it themselves). `kill` maps a task name to a log line: once the task logs it, its processes are
    SIGKILLed, as a lost pod's are."""
    spec = job["pipelineSpec"]
    check_backend_accepts(spec)
    values = run_parameters(job, parameters or {})
    run_id = run_id or str(uuid.uuid4())
    pipeline_root = job["runtimeConfig"]["gcsOutputDirectory"]
    run_root = generate_output_uri(pipeline_root, spec["pipelineInfo"]["name"], run_id)
    process_env = {**os.environ, **(env or {})}
    process_env["PATH"] = os.pathsep.join([python_bin_dir or os.path.dirname(sys.executable),
                                           process_env.get("PATH", "")])
    ids, records = _ArtifactIds(), {}
    tasks = spec["root"]["dag"]["tasks"]
    for task_name in task_order(tasks):
        if task_name == stop_before:
            break
        task = tasks[task_name]
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        task_root = generate_output_uri(run_root, task_name, str(uuid.uuid4()))
        pod_root = scratch_dir / run_id / task_name
        output_file = (local_path_for_uri(task_root, pod_root) or pod_root / LEGACY_OUTPUT_DIR) / OUTPUT_METADATA_FILE
        executor_input = {
            "inputs": {"parameterValues": _input_parameters(task, values),
                       "artifacts": _input_artifacts(task, component, records)},
            "outputs": {"artifacts": _output_artifacts(task_root, component), "outputFile": str(output_file)},
        }
        records[task_name] = _execute(task_name, container, executor_input, output_file, pod_root, process_env,
                                      task_timeout_s, (kill or {}).get(task_name))
        ids.assign(records[task_name].outputs)
    return RunResult(run_id=run_id, run_root=run_root, tasks=records)


def _execute(task_name: str, container: Mapping, executor_input: Dict, output_file: Path, pod_root: Path,
             env: Mapping[str, str], timeout_s: float, kill_on_line: Optional[str] = None) -> TaskRecord:
    pod_root.mkdir(parents=True, exist_ok=True)
    log_path = pod_root / "log.txt"
    started = time.monotonic()
    with open(log_path, "w") as log:
        # Its own process group, as a pod's processes are: a kill reaches every process of the task.
        process = subprocess.Popen(compile_command(container, executor_input), stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(env), cwd=pod_root, start_new_session=True)
    try:
        returncode = _wait(process, log_path, started + timeout_s, kill_on_line)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if returncode != 0:
        raise TaskFailed(task_name, returncode, log_path)
    outputs = _merge_executor_output(executor_input["outputs"]["artifacts"], output_file)
    return TaskRecord(task_name, executor_input, outputs, log_path, time.monotonic() - started)


def _wait(process: subprocess.Popen, log_path: Path, deadline: float, kill_on_line: Optional[str]) -> int:
    """The task's exit code; SIGKILLs its process group when the log shows `kill_on_line` or time is up."""
    while process.poll() is None:
        if kill_on_line and kill_on_line in log_path.read_text(errors="replace"):
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(process.args, timeout=0)
        time.sleep(0.5)
    return process.returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline_job", help="compiled PipelineJob JSON (imagepipe compile --output)")
    parser.add_argument("--scratch", required=True, help="local folder for the pods' own disks and task logs")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    overrides = dict(text.split("=", 1) for text in args.param)
    result = run_pipeline_job(json.loads(Path(args.pipeline_job).read_text()), Path(args.scratch), overrides)
    for name, record in result.tasks.items():
        print(f"{name:<24} {record.seconds:7.1f} s  {sorted(o['uri'] for o in record.outputs.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
