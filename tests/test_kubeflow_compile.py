"""Compiling for Kubeflow Pipelines v2 offline, and what the compiled JSON holds."""
import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kubeflow_client, kubeflow_runner
from pipeline.cli import main

EXPECTED_TASKS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataValidationGate",
                  "PreviousSpanStatistics", "SpanWindow", "Transform", "DataQuality", "Trainer", "Evaluator", "Pusher"}
IMAGE = "registry.example/imagepipe:test"
COMPILE_ARGS = ["--data", "gs://bucket/images", "--pipeline-root", "gs://bucket/root",
                "--serving-dir", "gs://bucket/serving", "--image", IMAGE, "--weights", "none"]


def compile_job(tmp_path, *extra_args) -> dict:
    output = tmp_path / "pipeline.json"
    assert main(["compile", "--output", str(output), *COMPILE_ARGS, *extra_args]) == 0
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    """The default compile (latest-pushed baseline), with a GPU Trainer and a Dataflow Transform."""
    return compile_job(tmp_path_factory.mktemp("kfp"), "--resources", "Trainer:cpu=8,memory=32,gpu=1",
                       "--beam-arg=--direct_num_workers=0", "--component-beam-arg", "Transform=--runner=DataflowRunner")


def parse_job(job: dict) -> pipeline_spec_pb2.PipelineJob:
    """Strict parse into KFP's protos: an unknown or misspelled field fails."""
    parsed = pipeline_spec_pb2.PipelineJob()
    json_format.ParseDict({key: value for key, value in job.items() if key != "pipelineSpec"}, parsed)
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], spec)
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(job["pipelineSpec"]["deploymentSpec"], deployment)
    return parsed, spec, deployment


def container_of(spec, deployment, task_name: str):
    label = spec.components[spec.root.dag.tasks[task_name].component_ref.name].executor_label
    return deployment.executors[label].container


def test_compiled_job_parses_into_kfp_protos_with_every_component(job):
    parsed, spec, deployment = parse_job(job)
    assert spec.schema_version == "2.1.0"
    assert set(spec.root.dag.tasks) == EXPECTED_TASKS | {"latest_pushed_model"}
    assert parsed.runtime_config.gcs_output_directory == "gs://bucket/root"
    # KFP OSS cannot run resolver executors: the default compile has none.
    assert not [label for label, executor in deployment.executors.items() if executor.WhichOneof("spec") != "container"]


def test_task_graph_gates_the_push_on_the_evaluation(job):
    _, spec, _ = parse_job(job)
    tasks = spec.root.dag.tasks
    pusher_inputs = tasks["Pusher"].inputs.artifacts
    assert pusher_inputs["model"].task_output_artifact.producer_task == "Trainer"
    assert pusher_inputs["model_blessing"].task_output_artifact.producer_task == "Evaluator"
    assert set(tasks["Pusher"].dependent_tasks) == {"Evaluator", "Trainer"}
    evaluator_inputs = tasks["Evaluator"].inputs.artifacts
    assert evaluator_inputs["model"].task_output_artifact.producer_task == "Trainer"
    assert evaluator_inputs["baseline_model"].task_output_artifact.producer_task == "latest_pushed_model"
    assert tasks["latest_pushed_model"].inputs.artifacts["candidate_model"].task_output_artifact.producer_task == \
        "Trainer"
    assert set(tasks["ExampleValidator"].dependent_tasks) == {"StatisticsGen", "ImportSchemaGen"}
    # Nothing is analyzed before the gate passed (Transform reads the window SpanWindow records after the gate);
    # the gate's drift baseline comes from the span history, no Resolver.
    assert "SpanWindow" in tasks["Transform"].dependent_tasks
    assert set(tasks["DataValidationGate"].dependent_tasks) == {
        "StatisticsGen", "ImportSchemaGen", "ImageExampleGen", "ExampleValidator", "PreviousSpanStatistics"}
    assert tasks["DataValidationGate"].inputs.artifacts["previous_statistics"].task_output_artifact.producer_task == \
        "PreviousSpanStatistics"
    # Transform and DataQuality read the window of validated spans, recorded after the gate.
    assert set(tasks["SpanWindow"].dependent_tasks) == {"ImageExampleGen", "StatisticsGen", "DataValidationGate"}
    for task_name in ("Transform", "DataQuality"):
        assert tasks[task_name].inputs.artifacts["examples"].task_output_artifact.producer_task == "SpanWindow"
    # Training and evaluation read the data-quality stage's filtered examples (leaking eval copies dropped).
    assert {"DataQuality", "Transform"} <= set(tasks["Trainer"].dependent_tasks)
    assert tasks["Evaluator"].inputs.artifacts["examples"].task_output_artifact.producer_task == "DataQuality"
    assert {"SpanWindow", "Transform"} <= set(tasks["DataQuality"].dependent_tasks)


def test_every_task_runs_the_image_with_its_resources(job):
    _, spec, deployment = parse_job(job)
    for task_name in spec.root.dag.tasks:
        container = container_of(spec, deployment, task_name)
        assert container.image == IMAGE
        assert container.resources.cpu_limit > 0 and container.resources.memory_limit > 0, task_name
        assert container.resources.cpu_request == container.resources.cpu_limit
    trainer = container_of(spec, deployment, "Trainer").resources
    assert (trainer.cpu_limit, trainer.memory_limit) == (8, 32)
    assert (trainer.accelerator.type, trainer.accelerator.count) == ("nvidia.com/gpu", 1)
    # TFX drops platform_config for FileBasedExampleGen; the compiled spec is patched instead.
    assert container_of(spec, deployment, "ImageExampleGen").resources.memory_limit == \
        kubeflow_runner.DEFAULT_RESOURCES["ImageExampleGen"].memory_gb


def test_beam_args_reach_every_beam_task_and_component_args_only_theirs(job):
    _, spec, deployment = parse_job(job)
    transform_args = list(container_of(spec, deployment, "Transform").args)
    assert "--direct_num_workers=0" in transform_args and "--runner=DataflowRunner" in transform_args
    assert "--runner=DataflowRunner" not in container_of(spec, deployment, "StatisticsGen").args
    assert "--direct_num_workers=0" in container_of(spec, deployment, "StatisticsGen").args


def test_beam_workers_get_the_pipeline_image_unless_a_dependency_option_is_given(job):
    _, spec, deployment = parse_job(job)
    assert f"--sdk_container_image={IMAGE}" in container_of(spec, deployment, "StatisticsGen").args
    own = ("--setup_file=/src/setup.py", "--extra_packages=/pkg.tar.gz", "--sdk_container_image=other:1")
    for option in own:
        assert kubeflow_runner.with_worker_image(("--runner=DataflowRunner", option), IMAGE) == \
            ("--runner=DataflowRunner", option)


def test_data_location_and_hyperparameters_are_pipeline_parameters(job):
    parsed, spec, _ = parse_job(job)
    declared = spec.root.input_definitions.parameters
    assert set(declared) == {"data_root", "training_config"}
    values = parsed.runtime_config.parameter_values
    assert values["data_root"].string_value == "gs://bucket/images"
    assert json.loads(values["training_config"].string_value)["training"]["weights"] == "none"
    assert declared["data_root"].default_value.string_value == "gs://bucket/images"
    tasks = spec.root.dag.tasks
    assert tasks["ImageExampleGen"].inputs.parameters["input_base"].component_input_parameter == "data_root"
    assert tasks["Trainer"].inputs.parameters["custom_config"].component_input_parameter == "training_config"


def test_cache_is_off_only_where_kfps_cache_key_cannot_see_what_the_task_reads(job):
    # KFP's key is the task's parameters, inputs and container: it cannot see new images under the same
    # data_root (TFX's fingerprinting driver never runs on KFP OSS), an edited schema file, or a new pushed
    # version in the serving dir, or the span history. Everything downstream is keyed on those tasks' fresh outputs.
    _, spec, _ = parse_job(job)
    caching = {name: task.caching_options.enable_cache for name, task in spec.root.dag.tasks.items()}
    for task_name in ("latest_pushed_model", "ImageExampleGen", "ImportSchemaGen", "PreviousSpanStatistics",
                      "SpanWindow"):
        assert caching.pop(task_name) is False, task_name
    assert all(caching.values()), caching


def test_code_and_schema_come_from_the_image_so_nothing_is_uploaded(job):
    compiled = json.dumps(job)
    assert "components.trainer.run.run_fn" in compiled and "_wheels" not in compiled
    assert "/imagepipe/schemas/schema.pbtxt" in compiled


def test_resolver_baseline_compiles_to_resolver_tasks_for_vertex(tmp_path):
    _, spec, deployment = parse_job(compile_job(tmp_path, "--baseline", "resolver"))
    resolvers = {label for label, executor in deployment.executors.items() if executor.WhichOneof("spec") == "resolver"}
    assert resolvers, "the Resolver should compile to resolver executors (run by Vertex AI)"
    assert "latest_pushed_model" not in spec.root.dag.tasks


@pytest.mark.parametrize("option, message", [
    (["--resources", "Trainr:cpu=4"], "Unknown component"),
    (["--resources", "Trainer:disk=4"], "Unknown or empty resource"),
    (["--component-beam-arg", "Trainer=--runner=DataflowRunner"], "does not run Beam"),
    (["--component-beam-arg", "Transform"], "COMPONENT=--beam_option"),
])
def test_bad_kubeflow_options_are_refused_with_a_message(tmp_path, capsys, option, message):
    assert main(["compile", "--output", str(tmp_path / "p.json"), *COMPILE_ARGS, *option]) == 2
    assert message in capsys.readouterr().err


def test_submit_without_a_reachable_endpoint_fails_clearly(job, tmp_path, capsys):
    job_file = tmp_path / "pipeline.json"
    job_file.write_text(json.dumps(job))
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    code = main(["submit", "--pipeline", str(job_file), "--endpoint", "http://127.0.0.1:9"])
    assert code == 2
    assert "Cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in capsys.readouterr().err


def test_submit_refuses_unknown_parameters_before_any_network_call(job, tmp_path, capsys):
    job_file = tmp_path / "pipeline.json"
    job_file.write_text(json.dumps(job))
    assert main(["submit", "--pipeline", str(job_file), "--endpoint", "http://127.0.0.1:9",
                 "--param", "epochs=3"]) == 2
    assert "Unknown pipeline parameter(s) ['epochs']" in capsys.readouterr().err


def test_submit_needs_an_endpoint(job, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(kubeflow_client.ENDPOINT_ENV, raising=False)
    job_file = tmp_path / "pipeline.json"
    job_file.write_text(json.dumps(job))
    assert main(["submit", "--pipeline", str(job_file)]) == 2
    assert "--endpoint" in capsys.readouterr().err


def test_pipeline_spec_file_is_what_kfp_client_reads(job):
    from kfp.client.client import _extract_pipeline_yaml

    with kubeflow_client.pipeline_spec_file(job) as spec_file:
        document = _extract_pipeline_yaml(spec_file)
    assert set(document.pipeline_spec.root.dag.tasks) >= EXPECTED_TASKS


@pytest.mark.parametrize("expression, expected", [("0 2 * * *", "0 0 2 * * *"), ("30 0 2 * * 1", "30 0 2 * * 1")])
def test_cron_gets_the_seconds_field_kfp_expects(expression, expected):
    assert kubeflow_client.to_kfp_cron(expression) == expected


def test_bad_cron_is_refused():
    with pytest.raises(ValueError, match="5 fields"):
        kubeflow_client.to_kfp_cron("daily")


def compiled_artifact_types(spec) -> set:
    """Every artifact type schema the compiled components declare, as the task containers receive them."""
    return {artifact.artifact_type.SerializeToString(deterministic=True)
            for component in spec.components.values()
            for definitions in (component.input_definitions, component.output_definitions)
            for artifact in definitions.artifacts.values()}


def test_every_artifact_type_imports_in_the_task_container_as_tfx_resolves_it(job, tmp_path):
    # TFX's v2 entrypoint imports a custom type's schema title as a class path (kubeflow_v2_entrypoint_utils.py,
    # _retrieve_class_path): before imagepipe.py, "imagepipe.DataValidationResult" failed to import and the gate
    # task stopped every KFP run. Resolved in a fresh process outside the checkout, as in the image.
    import subprocess
    import sys

    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint_utils

    _, spec, _ = parse_job(job)
    schemas = [pipeline_spec_pb2.ArtifactTypeSchema.FromString(raw) for raw in compiled_artifact_types(spec)]
    paths = sorted({entrypoint_utils._retrieve_class_path(schema) for schema in schemas})
    assert "imagepipe.DataValidationResult" in paths and "imagepipe.DataQualityReport" in paths
    check = ("import sys\nfrom tfx.utils import import_utils\n"
             "for path in sys.argv[1:]:\n"
             "    cls = import_utils.import_class_by_path(path)\n"
             "    assert cls.TYPE_NAME == path or path.startswith('tfx.'), (path, cls.TYPE_NAME)\n")
    result = subprocess.run([sys.executable, "-c", check, *paths], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
