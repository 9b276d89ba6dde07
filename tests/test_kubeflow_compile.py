"""Compiling for Kubeflow Pipelines v2 offline, and what the compiled JSON holds."""
import json

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.cli import main

EXPECTED_TASKS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform",
                  "Trainer", "Evaluator", "Pusher"}


def test_compile_writes_a_kfp_v2_pipeline_with_every_component(tmp_path):
    output = tmp_path / "pipeline.json"
    code = main(["compile", "--output", str(output), "--data", "gs://bucket/images",
                 "--pipeline-root", "gs://bucket/root", "--serving-dir", "gs://bucket/serving",
                 "--image", "registry.example/imagepipe:test", "--weights", "none"])
    assert code == 0
    job = json.loads(output.read_text())
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], spec)  # Strict: unknown fields fail.
    assert spec.schema_version == "2.0.0"
    tasks = set(spec.root.dag.tasks)
    assert EXPECTED_TASKS <= tasks
    assert any("resolver" in task for task in tasks - EXPECTED_TASKS), tasks
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"].values()
    images = {executor["container"]["image"] for executor in executors if "container" in executor}
    assert images == {"registry.example/imagepipe:test"}
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    # Code is named by dotted path (installed in the image), so nothing was packaged or uploaded.
    compiled = json.dumps(job)
    assert "components.trainer.run.run_fn" in compiled and "_wheels" not in compiled
    # The schema is read inside the image on the cluster, not from the compiling machine's checkout.
    assert "/imagepipe/schemas/schema.pbtxt" in compiled
