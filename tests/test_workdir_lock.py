"""The workdir lock (one local run at a time) and the test-only fault-injection setting, without a pipeline."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from components.trainer import fault_injection
from pipeline.workdir_lock import WorkdirBusyError, workdir_lock

HOLD_LOCK = """
import sys, time
from pipeline.workdir_lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder_process(tmp_path):
    """Another process holding the lock, as a concurrent `imagepipe run` would."""
    lock_path = str(tmp_path / "metadata.sqlite.lock")
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, lock_path], stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert process.stdout.readline().strip() == "locked"
    yield process, lock_path
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_second_run_is_refused_with_the_holders_pid(holder_process):
    process, lock_path = holder_process
    started = time.monotonic()
    with pytest.raises(WorkdirBusyError, match=rf"pid {process.pid} on .*--wait"):
        with workdir_lock(lock_path):
            pass
    assert time.monotonic() - started < 5


def test_a_killed_holder_leaves_no_stale_lock(holder_process):
    process, lock_path = holder_process
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with workdir_lock(lock_path):  # The kernel dropped the dead process's lock.
        pass


def test_wait_queues_behind_the_holder(tmp_path):
    lock_path = str(tmp_path / "lock")
    order = []

    def second_run():
        with workdir_lock(lock_path, wait=True):
            order.append("2")

    with workdir_lock(lock_path):
        waiter = threading.Thread(target=second_run)
        waiter.start()
        time.sleep(0.5)
        order.append("1")
    waiter.join(10)
    assert order == ["1", "2"]


def test_fault_injection_is_off_unless_the_variable_is_set(monkeypatch):
    monkeypatch.delenv(fault_injection.ENV_VAR, raising=False)
    assert fault_injection.callbacks_for("phase1") == [] and fault_injection.callbacks_for("phase2") == []
    monkeypatch.setenv(fault_injection.ENV_VAR, "Trainer:phase2:stall")
    assert fault_injection.callbacks_for("phase1") == [] and len(fault_injection.callbacks_for("phase2")) == 1


@pytest.mark.parametrize("spec", ["Trainer", "Evaluator:phase1", "Trainer:phase3", "Trainer:phase1:explode"])
def test_a_fault_spec_that_would_never_fire_is_refused(monkeypatch, spec):
    monkeypatch.setenv(fault_injection.ENV_VAR, spec)
    with pytest.raises(ValueError, match="IMAGEPIPE_FAULT_INJECT"):
        fault_injection.callbacks_for("phase1")


def test_an_injected_failure_fires_at_the_second_epoch():
    callback = fault_injection._FaultAtSecondEpoch("phase1", "fail")
    callback.on_epoch_begin(0)  # The first epoch runs (and is checkpointed) normally.
    with pytest.raises(fault_injection.InjectedFault, match="phase1, epoch 2"):
        callback.on_epoch_begin(1)
