"""The compiled PipelineJob executed as the open-source KFP v2 backend executes it (tests/kfp_v2_launcher.py):
no TFX driver, KFP's output URI layout, the backend's refusals."""
import json
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.pipeline import SCHEMA_IMPORT_ID
from tests import kfp_v2_launcher
from tests.conftest import write_color_tree

REPO = Path(__file__).resolve().parent.parent
PIPELINE_NAME = "imagepipe"
SMALL_TRAINING = ["--image-size", "32", "--alpha", "0.35", "--phase1-epochs", "1", "--phase2-epochs", "1",
                  "--batch-size", "8", "--no-export-tflite", "--min-examples-per-class", "3"]


def compile_for(tmp_path: Path, data: str, pipeline_root: str, serving_dir: str, *extra: str) -> dict:
    output = tmp_path / "pipeline.json"
    assert main(["compile", "--output", str(output), "--data", data, "--pipeline-root", pipeline_root,
                 "--serving-dir", serving_dir, "--schema-dir", str(REPO / "schemas"), "--weights", "none",
                 *SMALL_TRAINING, *extra]) == 0
    return json.loads(output.read_text())


def test_a_resolver_is_refused_with_the_backends_own_message(tmp_path):
    job = compile_for(tmp_path, "gs://b/images", "gs://b/root", "gs://b/serving", "--baseline", "resolver")
    with pytest.raises(kfp_v2_launcher.RefusedByBackend, match="resolver executors not implemented"):
        kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch")


def test_unknown_parameters_are_refused_before_any_task_runs(tmp_path):
    job = compile_for(tmp_path, "gs://b/images", "gs://b/root", "gs://b/serving")
    with pytest.raises(ValueError, match=r"Unknown pipeline parameter\(s\) \['epochs'\]"):
        kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch", parameters={"epochs": "3"})


def test_without_a_driver_ingestion_still_reads_the_newest_span_and_fingerprints_it(tmp_path):
    """KFP OSS never runs the ExampleGen driver TFX compiles as lifecycle.preCacheCheck."""
    data = tmp_path / "images"
    for span in (1, 2):
        write_color_tree(data / f"span-{span}", per_class=4, seed=span)
    root = tmp_path / "root"
    job = compile_for(tmp_path, str(data), str(root), str(tmp_path / "serving"), "--span-folder", "span-{SPAN}")
    assert "preCacheCheck" in json.dumps(job), "TFX compiles its driver as a lifecycle hook"

    result = kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch", stop_before="StatisticsGen")

    assert set(result.tasks) == {"ImageExampleGen", SCHEMA_IMPORT_ID}
    examples = result.tasks["ImageExampleGen"].outputs["examples"]
    # KFP's layout: <root>/<pipeline name>/<run id>/<task>/<uuid>/<output key>.
    assert re.fullmatch(rf"{re.escape(str(root))}/{PIPELINE_NAME}/{result.run_id}/ImageExampleGen/[0-9a-f-]{{36}}/examples",
                        examples["uri"])
    assert examples["metadata"]["span"] == 2
    # TFX's fingerprint of the files the pattern matches (the driver's, computed here by the executor).
    assert examples["metadata"]["input_fingerprint"].startswith("split:images,num_files:")
    report = json.loads((Path(examples["uri"]) / "ingestion_report.json").read_text())
    assert report["root"] == str(data / "span-2") and report["examples_written"] == 12
    schema = result.tasks[SCHEMA_IMPORT_ID].outputs["schema"]["uri"]
    assert (Path(schema) / "schema.pbtxt").read_text() == (REPO / "schemas" / "schema.pbtxt").read_text()


def upload_tree(client, bucket: str, local_root: Path, prefix: str) -> str:
    for path in sorted(p for p in local_root.rglob("*") if p.is_file()):
        client.bucket(bucket).blob(f"{prefix}/{path.relative_to(local_root).as_posix()}").upload_from_filename(str(path))
    return f"gs://{bucket}/{prefix}"


def test_on_object_storage_the_first_tasks_read_and_write_the_bucket(tmp_path, gcs_emulator):
    """Data and pipeline root on gs:// (the project's GCS emulator), tasks as subprocesses with its env."""
    local = tmp_path / "images"
    for span in (1, 2):
        write_color_tree(local / f"span-{span}", per_class=4, seed=span)
    bucket = gcs_emulator.new_bucket("kfp")
    data = upload_tree(gcs_emulator.client(), bucket, local, "images")
    job = compile_for(tmp_path, data, f"gs://{bucket}/root", f"gs://{bucket}/serving", "--span-folder", "span-{SPAN}")

    result = kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch", env=gcs_emulator.env,
                                              stop_before="StatisticsGen")

    examples = result.tasks["ImageExampleGen"].outputs["examples"]
    assert examples["uri"].startswith(f"gs://{bucket}/root/{PIPELINE_NAME}/{result.run_id}/ImageExampleGen/")
    assert examples["metadata"]["span"] == 2
    # The launcher's outputFile for gs:// is LocalPathForURI(task root): the pod's /gcs/<bucket>/... .
    assert "/gcs/" + bucket + "/root/" in result.tasks["ImageExampleGen"].executor_input["outputs"]["outputFile"]
    prefix = examples["uri"][len(f"gs://{bucket}/"):]
    report = json.loads(gcs_emulator.client().bucket(bucket).blob(f"{prefix}/ingestion_report.json").download_as_bytes())
    assert report["root"] == f"{data}/span-2" and report["examples_written"] == 12
    names = [blob.name for blob in gcs_emulator.client().list_blobs(bucket, prefix=f"{prefix}/Split-train/")]
    assert names, "the train split was written into the bucket"


def one_task_job(command: list, pipeline_root: str) -> dict:
    """The smallest PipelineJob the stand-in runs: one container task with no inputs or outputs."""
    return {"runtimeConfig": {"gcsOutputDirectory": pipeline_root},
            "pipelineSpec": {"pipelineInfo": {"name": "p"},
                             "root": {"dag": {"tasks": {"only": {"componentRef": {"name": "comp-only"}}}}},
                             "components": {"comp-only": {"executorLabel": "exec-only"}},
                             "deploymentSpec": {"executors": {"exec-only": {"container": {"command": command}}}}}}


def test_a_task_killed_at_a_log_line_fails_by_the_signal_and_stops_the_run(tmp_path):
    """What the end-to-end test uses to kill a Trainer midway, as a lost pod: its whole process group."""
    script = "import subprocess, sys, time; subprocess.Popen(['sleep', '300']); print('ready', flush=True); time.sleep(300)"
    job = one_task_job([sys.executable, "-c", script], str(tmp_path / "root"))
    started = time.monotonic()
    with pytest.raises(kfp_v2_launcher.TaskFailed) as failure:
        kfp_v2_launcher.run_pipeline_job(job, tmp_path / "scratch", kill={"only": "ready"})
    assert failure.value.returncode == -signal.SIGKILL and time.monotonic() - started < 60
    assert "ready" in failure.value.log_path.read_text()
