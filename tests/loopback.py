"""Servers the tests start on 127.0.0.1: a free port for them, and stopping them."""
import socket
import subprocess


def free_port() -> int:
    """A port nothing listens on now. Another process may still take it before the server binds it: servers
    started on it check that what answers is theirs where that matters (tests/prometheus_servers.py)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def stop(process: subprocess.Popen, timeout_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within timeout_s."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
