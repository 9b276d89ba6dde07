"""The latest-pushed baseline: which version is picked, and what the Evaluator then reads."""
from pathlib import Path

from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.baseline import executor, latest_pushed


def write_version(serving_dir: Path, version: str, complete: bool = True) -> Path:
    version_dir = serving_dir / version
    (version_dir / "variables").mkdir(parents=True)
    (version_dir / "variables" / "variables.index").write_text(f"weights of {version}")
    if complete:
        (version_dir / "saved_model.pb").write_text(f"graph of {version}")
    return version_dir


def model_artifact(uri: Path) -> standard_artifacts.Model:
    artifact = standard_artifacts.Model()
    artifact.uri = str(uri)
    return artifact


def run_executor(serving_dir: Path, candidate_uri: Path, baseline_uri: Path) -> standard_artifacts.Model:
    baseline = model_artifact(baseline_uri)
    executor.Executor().Do({executor.CANDIDATE_MODEL_KEY: [model_artifact(candidate_uri)]},
                           {executor.BASELINE_MODEL_KEY: [baseline]},
                           {executor.SERVING_DIR_KEY: str(serving_dir)})
    return baseline


def test_highest_complete_numeric_version_is_the_latest(tmp_path):
    write_version(tmp_path, "9")
    write_version(tmp_path, "10")  # Numeric order: 10 > 9, though "10" < "9" as text.
    write_version(tmp_path, "11", complete=False)  # Still being pushed.
    write_version(tmp_path, "tmp-12")
    assert latest_pushed.latest_version_dir(str(tmp_path)) == str(tmp_path / "10")


def test_nothing_pushed_means_no_latest_version(tmp_path):
    assert latest_pushed.latest_version_dir(str(tmp_path / "missing")) is None
    write_version(tmp_path, "1", complete=False)
    assert latest_pushed.latest_version_dir(str(tmp_path)) is None


def test_latest_pushed_version_becomes_the_baseline_model(tmp_path):
    serving_dir = tmp_path / "serving"
    write_version(serving_dir, "3")
    write_version(serving_dir, "7")
    baseline = run_executor(serving_dir, tmp_path / "candidate", tmp_path / "baseline")
    model_dir = Path(path_utils.serving_model_path(baseline.uri))
    assert (model_dir / "saved_model.pb").read_text() == "graph of 7"
    assert (model_dir / "variables" / "variables.index").read_text() == "weights of 7"
    assert baseline.get_int_custom_property(executor.VERSION_PROPERTY) == 7


def test_before_the_first_push_the_candidate_is_its_own_baseline(tmp_path):
    candidate_uri = tmp_path / "candidate"
    candidate_model_dir = Path(path_utils.serving_model_dir(str(candidate_uri)))
    candidate_model_dir.mkdir(parents=True)
    (candidate_model_dir / "saved_model.pb").write_text("candidate graph")
    baseline = run_executor(tmp_path / "empty serving", candidate_uri, tmp_path / "baseline")
    assert (Path(path_utils.serving_model_path(baseline.uri)) / "saved_model.pb").read_text() == "candidate graph"
    assert baseline.get_int_custom_property(executor.VERSION_PROPERTY) == 0
