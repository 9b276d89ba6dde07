"""What `imagepipe` shows: without -v the stages, progress, results and where they went; with -v everything.

Quiet is set where each kind of line comes from, before TensorFlow loads (`main` runs before the CLI
imports anything heavy), and the environment carries it into every process started from this one:
- TensorFlow's C++ lines (oneDNN, CUDA stubs, "Local rendezvous is aborting", the SavedModel reader under
  the TFLite converter): TF_CPP_MIN_LOG_LEVEL, which TensorFlow reads once, at its first C++ log line,
  i.e. at import (tsl/platform/default/logging.cc `MinLogLevelFromEnv`). Level 3 also hides the CUDA
  plugin's "Unable to register cuDNN factory" ERROR lines printed at import; a C++ error that matters
  reaches Python as an exception with its message.
- Python warnings (google.api_core's FutureWarning on Python 3.10, deprecations): warning filters here,
  and PYTHONWARNINGS for child processes.
- Log records: our own code (components/, pipeline/) at INFO; other libraries (TFX, TFT, TFMA, Beam,
  TensorFlow's Python deprecation notices) only from ERROR, except TFX's stage lines "Component X is
  running/finished". TensorFlow adds a handler of its own to its logger only when the root logger has
  none (tensorflow/python/platform/tf_logging.py `get_logger`), so configuring logging first also ends
  its duplicate "INFO:tensorflow:" lines.
- The TFLite converter and interpreter log through absl's and TFLite's C++ loggers, which no setting
  reaches from Python in TF 2.16: while they run, their stderr goes to a file when QUIET_ENV_VAR is set
  (components/native_stderr.py).
"""
import logging
import os
import sys
import warnings
from typing import List, Optional

from components.native_stderr import QUIET_ENV_VAR

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning",
    QUIET_ENV_VAR: "1",
}
QUIET_WARNING_CATEGORIES = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)
# The stage lines of TFX's LocalDagRunner, by their format (tfx/orchestration/local/local_dag_runner.py).
STAGE_MESSAGES = ("Component %s is running.", "Component %s is finished.")
VERBOSE_FLAGS = ("-v", "--verbose")


def verbose_requested(argv: List[str]) -> bool:
    """-v/--verbose among the options before the command (where the parser accepts it)."""
    for arg in argv:
        if not arg.startswith("-"):
            return False
        if arg in VERBOSE_FLAGS:
            return True
    return False


def quiet_environment() -> None:
    """Before TensorFlow loads, in the process's entry point: what TensorFlow and child processes read from
    the environment. A value the user set stays."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def _own_source_dirs() -> tuple:
    import components

    here = os.path.dirname(os.path.abspath(__file__))
    return tuple(os.path.join(path, "") for path in (here, os.path.dirname(os.path.abspath(components.__file__))))


class QuietFilter(logging.Filter):
    """Passes our own records from INFO, TFX's stage lines, and any library's from ERROR."""

    def __init__(self):
        super().__init__()
        self._own_dirs = _own_source_dirs()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.msg in STAGE_MESSAGES:
            return True
        return record.levelno >= logging.INFO and record.pathname.startswith(self._own_dirs)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record, not the one it was created with: a
    caller that swaps stderr (pytest's capture, a notebook) must not leave log calls on a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def configure_logging(verbose: bool) -> None:
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s" if verbose
                                           else "%(asctime)s %(levelname)s %(message)s"))
    if not verbose:
        handler.addFilter(QuietFilter())
        for category in QUIET_WARNING_CATEGORIES:
            warnings.filterwarnings("ignore", category=category)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)  # TFX's stage lines are absl INFO records.


def main(argv: Optional[List[str]] = None) -> int:
    """The `imagepipe` entry point: the console is set up before the CLI (and TensorFlow) is imported."""
    argv = sys.argv[1:] if argv is None else argv
    # TFX's Beam executors parse sys.argv with absl's flags (tfx/dsl/components/base/base_beam_executor.py
    # `flags.FLAGS(sys.argv + beam_pipeline_args, known_only=True)`), where -v is absl's --verbosity: with
    # `imagepipe -v demo` every Beam component failed on "flag --verbosity=demo". The CLI reads argv itself.
    sys.argv[1:] = []
    verbose = verbose_requested(argv)
    if not verbose:
        quiet_environment()
    configure_logging(verbose)  # Before TensorFlow's logger exists (see the module's docstring).
    from pipeline import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
