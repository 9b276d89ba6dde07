"""Where C++ libraries' own stderr lines go in a quiet run (see pipeline/console.py).

The TFLite converter and interpreter log through absl's and TFLite's C++ loggers (the converter's "Ignored
output_format", the interpreter's "Created TensorFlow Lite XNNPACK delegate"), which neither
TF_CPP_MIN_LOG_LEVEL nor anything reachable from Python sets in TF 2.16 (tensorflow/lite/minimal_logging.cc
keeps its minimum severity in a C++ static). While such a call runs, file descriptor 2 can point at a file.
"""
import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator, Optional

# Set (to 1) by the `imagepipe` entry point when the console is quiet (no -v); inherited by child processes.
QUIET_ENV_VAR = "IMAGEPIPE_QUIET_CONSOLE"


def native_log_path(name: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"imagepipe-{name}-{os.getpid()}.log")


@contextlib.contextmanager
def native_stderr_to(path: str) -> Iterator[Optional[str]]:
    """In a quiet run, what native code writes to stderr goes to `path` (appended) while the block runs, and
    the path is logged if the block fails. Elsewhere (-v, tests, a cluster's container logs) nothing changes."""
    if not os.environ.get(QUIET_ENV_VAR):
        yield None
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as target:
            os.dup2(target.fileno(), 2)
            try:
                yield path
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    except BaseException:
        logging.error("The native libraries' own log of the failed step: %s", path)
        raise
    finally:
        os.close(saved)
