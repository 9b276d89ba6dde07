"""The console of `imagepipe`: quiet without -v (set before TensorFlow loads), everything with -v.

Real processes started the way the `imagepipe` script starts them (`pipeline.console:main`), since what is
tested happens at interpreter start and at TensorFlow's import; tests/test_pipeline_e2e.py checks the
console of a whole real run the same way.
"""
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components import native_stderr
from pipeline import console

REPO = Path(__file__).resolve().parent.parent
# What a newcomer should not see without -v, each with a pattern that finds it in a console.
NOISE = {
    "TensorFlow C++ log line": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}: [IWEF] ", re.MULTILINE),
    "absl C++ log line": re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ", re.MULTILINE),
    "absl pre-init notice": re.compile(r"All log messages before absl::InitializeLog"),
    "FutureWarning": re.compile(r"FutureWarning"),
    "deprecation notice": re.compile(r"is deprecated|Instructions for updating"),
    "TensorFlow's own log handler": re.compile(r"^(INFO|WARNING):tensorflow:", re.MULTILINE),
    "Local rendezvous": re.compile(r"Local rendezvous is aborting"),
    "TFLite converter or interpreter line": re.compile(r"Ignored output_format|XNNPACK delegate"),
}


def noise_in(text: str) -> dict:
    """Each kind of noise found, with its first line."""
    found = {}
    for kind, pattern in NOISE.items():
        match = pattern.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            found[kind] = text[start:text.find("\n", match.start())]
    return found


def clean_environment() -> dict:
    """The caller's environment without the settings the entry point is expected to make itself."""
    return {name: value for name, value in os.environ.items()
            if name not in console.QUIET_ENVIRONMENT}


def run_entry_point(args, extra_env=None, code=None, timeout=600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "pipeline.console", *args]
    return subprocess.run(command, cwd=REPO, env={**clean_environment(), **(extra_env or {})},
                          capture_output=True, text=True, timeout=timeout)


def record(path: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("root", level, path, 1, msg, ("Trainer",) if "%s" in msg else None, None)


def test_quiet_filter_keeps_our_records_and_tfx_stages_and_drops_libraries_below_error():
    keep = console.QuietFilter()
    ours = str(REPO / "components" / "trainer" / "training.py")
    library = "/venv/lib/python3.10/site-packages/tensorflow_model_analysis/writers/writer.py"
    tfx_runner = "/venv/lib/python3.10/site-packages/tfx/orchestration/local/local_dag_runner.py"
    assert keep.filter(record(ours, logging.INFO, "Phase 1: head only"))
    assert keep.filter(record(ours, logging.WARNING, "a warning of ours"))
    assert keep.filter(record(tfx_runner, logging.INFO, "Component %s is running."))
    assert not keep.filter(record(tfx_runner, logging.INFO, "Using deployment config:\n %s"))
    assert not keep.filter(record(library, logging.WARNING, "From %s: tf_record_iterator is deprecated"))
    assert not keep.filter(record(library, logging.INFO, "Reading from pattern %s for split %s"))
    assert keep.filter(record(library, logging.ERROR, "a library's error"))
    assert not keep.filter(record(ours, logging.DEBUG, "details"))


@pytest.mark.parametrize("argv, verbose", [(["-v", "run", "--data", "x"], True), (["--verbose", "demo"], True),
                                           (["run", "--data", "-v"], False), (["demo"], False)])
def test_verbose_is_read_from_the_options_before_the_command(argv, verbose):
    assert console.verbose_requested(argv) is verbose


def test_native_stderr_goes_to_a_file_only_in_a_quiet_run(tmp_path, monkeypatch):
    path = str(tmp_path / "native.log")
    monkeypatch.delenv(native_stderr.QUIET_ENV_VAR, raising=False)
    with native_stderr.native_stderr_to(path) as redirected:
        assert redirected is None
    monkeypatch.setenv(native_stderr.QUIET_ENV_VAR, "1")
    with native_stderr.native_stderr_to(path) as redirected:
        os.write(2, b"W0000 a native line\n")
    assert redirected == path and Path(path).read_bytes() == b"W0000 a native line\n"
    with pytest.raises(RuntimeError), native_stderr.native_stderr_to(path):
        raise RuntimeError("the step failed")  # fd 2 is restored, and the file's path logged.


@pytest.mark.slow  # Two processes that import TensorFlow and TFX (about 30 s).
def test_start_up_prints_no_tensorflow_or_warning_noise_without_v_and_everything_with_v(tmp_path):
    # `runs` imports the whole CLI (TensorFlow, TFDV, TFX's google-cloud dependencies) and reads no store.
    args = ["runs", "--workdir", str(tmp_path)]
    quiet = run_entry_point(args)
    assert quiet.returncode == 2 and "No metadata store" in quiet.stderr
    assert noise_in(quiet.stdout + quiet.stderr) == {}
    verbose = run_entry_point(["-v", *args])
    assert {"TensorFlow C++ log line", "FutureWarning"} <= set(noise_in(verbose.stderr))


TFLITE_SCRIPT = """
from pipeline import console
console.quiet_environment()  # As the entry point does, before TensorFlow loads.
console.configure_logging(verbose=False)
import numpy as np, tf_keras
from components.trainer import serving
model = tf_keras.Sequential([tf_keras.Input((8, 8, 3)), tf_keras.layers.GlobalAveragePooling2D(),
                             tf_keras.layers.Dense(2, activation="softmax")])
content = serving.convert_to_tflite(model, 8, "float16")
print(serving.tflite_probabilities(content, np.zeros((1, 8, 8, 3), np.float32)).shape)
"""


@pytest.mark.slow  # A process that converts a small model (about 30 s).
def test_tflite_conversion_and_scoring_print_nothing_in_a_quiet_run():
    result = run_entry_point([], code=TFLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("(1, 2)")
    assert noise_in(result.stdout + result.stderr) == {}


BEAM_EXECUTOR_AFTER_V = """
import sys
from pipeline import console
workdir = sys.argv[1]
sys.argv[:] = ["imagepipe", "-v", "runs", "--workdir", workdir]
assert console.main() == 2  # No metadata store there.
from tfx.dsl.components.base import base_beam_executor
class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        pass
Executor(Executor.Context(beam_pipeline_args=["--runner=FnApiRunner"]))
print("Beam executor built")
"""


@pytest.mark.slow  # A process that imports TFX (about 20 s).
def test_v_does_not_reach_the_absl_flags_of_tfx_beam_executors(tmp_path):
    result = subprocess.run([sys.executable, "-c", BEAM_EXECUTOR_AFTER_V, str(tmp_path)], cwd=REPO,
                            env=clean_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "Beam executor built" in result.stdout, result.stderr[-3000:]
