"""One local run per workdir at a time: an exclusive flock on a file next to the metadata DB, held for the run.

Two LocalDagRunner processes on one SQLite ML Metadata store and one serving directory would interleave their
executions, resolve each other's half-finished outputs as baselines, and both push. With the lock a second run
either refuses at once, naming the holder, or (wait=True) queues behind it. The kernel releases an flock when
its process dies, even by SIGKILL, so a killed run never leaves a stale lock behind; the file itself stays and
only tells who holds it. flock needs a local filesystem (or NFSv4 with lock support) under the workdir.
"""
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Iterator


class WorkdirBusyError(RuntimeError):
    """Another run holds the workdir's lock."""


def _describe_holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    try:
        holder = json.loads(text)
    except ValueError:
        return "a run that has not written its details yet"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
            f" ({holder.get('command')})")


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S%z"),
              "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


@contextlib.contextmanager
def workdir_lock(lock_path: str, wait: bool = False) -> Iterator[None]:
    """Holds the lock for the body. Raises WorkdirBusyError when it is taken and wait is False."""
    # Not inherited by child processes (PEP 446), so only this process's death releases it.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            if not wait:
                raise WorkdirBusyError(
                    f"Another pipeline run is using this workdir ({holder}); lock: {lock_path}. "
                    "Let it finish, or rerun with --wait to start when it ends.") from None
            logging.warning("Waiting for the workdir lock %s, held by %s", lock_path, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        _write_holder(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # Released: nobody to name any more.
    finally:
        os.close(fd)  # Closing the only descriptor releases the flock.
