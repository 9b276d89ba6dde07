"""The latest-pushed baseline: which version is picked, and what the Evaluator then reads, on a local folder
and on a bucket of the GCS emulator alike."""
import os
from pathlib import Path

import pytest
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.baseline import executor
from serving.serving_dir import ServingDir
from serving.storage import storage_for
from tests.serving_fixtures import all_files, serving_root  # noqa: F401


def write_version(serving_dir: str, version: str, complete: bool = True) -> None:
    storage = storage_for(serving_dir)
    storage.write_bytes(f"{serving_dir}/{version}/variables/variables.index", f"weights of {version}".encode())
    if complete:
        storage.write_bytes(f"{serving_dir}/{version}/saved_model.pb", f"graph of {version}".encode())


def model_artifact(uri: str) -> standard_artifacts.Model:
    artifact = standard_artifacts.Model()
    artifact.uri = uri
    return artifact


def run_executor(serving_dir: str, candidate_uri: str, baseline_uri: str) -> standard_artifacts.Model:
    baseline = model_artifact(baseline_uri)
    executor.Executor().Do({executor.CANDIDATE_MODEL_KEY: [model_artifact(candidate_uri)]},
                           {executor.BASELINE_MODEL_KEY: [baseline]},
                           {executor.SERVING_DIR_KEY: serving_dir})
    return baseline


def test_highest_complete_numeric_version_is_the_latest(serving_root):
    write_version(serving_root, "9")
    write_version(serving_root, "10")  # Numeric order: 10 > 9, though "10" < "9" as text.
    write_version(serving_root, "11", complete=False)  # Still being pushed.
    write_version(serving_root, "tmp-12")
    assert ServingDir(serving_root).latest_version_dir() == f"{serving_root}/10"


def test_nothing_pushed_means_no_latest_version(serving_root):
    assert ServingDir(serving_root + "/missing").latest_version_dir() is None
    write_version(serving_root, "1", complete=False)
    assert ServingDir(serving_root).latest_version_dir() is None


def test_latest_pushed_version_becomes_the_baseline_model(tmp_path):
    serving_dir = str(tmp_path / "serving")
    write_version(serving_dir, "3")
    write_version(serving_dir, "7")
    baseline = run_executor(serving_dir, str(tmp_path / "candidate"), str(tmp_path / "baseline"))
    model_dir = Path(path_utils.serving_model_path(baseline.uri))
    assert (model_dir / "saved_model.pb").read_text() == "graph of 7"
    assert (model_dir / "variables" / "variables.index").read_text() == "weights of 7"
    assert baseline.get_int_custom_property(executor.VERSION_PROPERTY) == 7


@pytest.mark.parametrize("serving_on_bucket", [False, True], ids=["local-serving-dir", "bucket-serving-dir"])
def test_a_baseline_on_a_bucket_is_written_to_the_bucket(serving_on_bucket, gcs_emulator, tmp_path, monkeypatch):
    """Issue 12: the copy's destination was built with os.path.normpath, which turns gs://bucket/x into the local
    path gs:/bucket/x: the baseline landed in a local folder named "gs:" and the Evaluator found nothing."""
    monkeypatch.chdir(tmp_path)  # Where a local "gs:" folder would appear.
    bucket = gcs_emulator.new_bucket("baseline")
    serving_dir = f"gs://{bucket}/serving" if serving_on_bucket else str(tmp_path / "serving")
    write_version(serving_dir, "4")
    baseline = run_executor(serving_dir, f"gs://{bucket}/candidate", f"gs://{bucket}/root/baseline/5")
    copied = all_files(f"gs://{bucket}/root/baseline/5")
    assert copied == {"Format-Serving/saved_model.pb": b"graph of 4",
                      "Format-Serving/variables/variables.index": b"weights of 4"}
    assert not os.path.exists(tmp_path / "gs:")
    assert baseline.get_int_custom_property(executor.VERSION_PROPERTY) == 4


def test_before_the_first_push_the_candidate_is_its_own_baseline(tmp_path):
    candidate_uri = tmp_path / "candidate"
    candidate_model_dir = Path(path_utils.serving_model_dir(str(candidate_uri)))
    candidate_model_dir.mkdir(parents=True)
    (candidate_model_dir / "saved_model.pb").write_text("candidate graph")
    baseline = run_executor(str(tmp_path / "empty serving"), str(candidate_uri), str(tmp_path / "baseline"))
    assert (Path(path_utils.serving_model_path(baseline.uri)) / "saved_model.pb").read_text() == "candidate graph"
    assert baseline.get_int_custom_property(executor.VERSION_PROPERTY) == 0


@pytest.mark.parametrize("uri", ["gs://bucket/root", "gs://bucket/root/"])
def test_storage_joins_keep_the_scheme(uri):
    assert ServingDir(uri).version_dir(3) == "gs://bucket/root/3"
