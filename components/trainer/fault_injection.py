"""Test-only fault injection in the Trainer, so recovery tests can fail or kill a real run at a known point.

    IMAGEPIPE_FAULT_INJECT=Trainer:<phase1|phase2>[:fail|:stall]

Unset (the default, and the only setting outside tests) it does nothing. When set, the named phase's fit gets
a callback that fires at the start of its second epoch, i.e. once the first epoch has been checkpointed
(BackupAndRestore saves at each epoch's end), so a rerun has something to resume from:
- `fail` (default) raises, as a crashing Trainer would: TFX records the execution as FAILED.
- `stall` logs STALL_MESSAGE and sleeps, so a test can SIGKILL the process mid-training.
A phase of one epoch never reaches its second epoch, so nothing fires there. The variable is read where the
Trainer runs and is not part of its custom_config, so it changes neither the cache key nor the checkpoints.
"""
import logging
import os
import time
from typing import List

import tf_keras

ENV_VAR = "IMAGEPIPE_FAULT_INJECT"
COMPONENT = "Trainer"
PHASES = ("phase1", "phase2")
ACTIONS = ("fail", "stall")
STALL_MESSAGE = "Injected fault: Trainer stalled, waiting to be killed"
# A forgotten `stall` must not hang a machine forever: it fails after this long.
MAX_STALL_SECONDS = 900


class InjectedFault(RuntimeError):
    """The failure a test asked for; never raised unless IMAGEPIPE_FAULT_INJECT is set."""


class _FaultAtSecondEpoch(tf_keras.callbacks.Callback):
    def __init__(self, phase: str, action: str):
        super().__init__()
        self.phase, self.action = phase, action

    def on_epoch_begin(self, epoch, logs=None):
        if epoch < 1:
            return
        if self.action == "stall":
            logging.warning("%s (%s, epoch %d; pid %d)", STALL_MESSAGE, self.phase, epoch + 1, os.getpid())
            deadline = time.monotonic() + MAX_STALL_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.5)
        raise InjectedFault(f"{ENV_VAR}: injected {self.action} in the Trainer's {self.phase}, epoch {epoch + 1}")


def parse(spec: str):
    """'Trainer:phase2:stall' -> ('phase2', 'stall'); a spec that would silently never fire is refused."""
    parts = spec.split(":")
    if len(parts) == 2:
        parts.append("fail")
    if len(parts) != 3 or parts[0] != COMPONENT or parts[1] not in PHASES or parts[2] not in ACTIONS:
        raise ValueError(f"{ENV_VAR}={spec!r}: expected {COMPONENT}:<{'|'.join(PHASES)}>[:{'|'.join(ACTIONS)}]")
    return parts[1], parts[2]


def callbacks_for(phase: str) -> List[tf_keras.callbacks.Callback]:
    """The fault callback for `phase` when the environment asks for one there; [] otherwise."""
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return []
    fault_phase, action = parse(spec)
    if fault_phase != phase:
        return []
    logging.warning("%s=%s: this Trainer will %s in %s (test-only setting)", ENV_VAR, spec, action, phase)
    return [_FaultAtSecondEpoch(phase, action)]
