"""Plain logic of a push: claim the next version number, copy the model so TF Serving never sees it
half-written, and never overwrite a version.

How a partial copy stays invisible (TF Serving loads <serving dir>/<integer>/ once saved_model.pb is there):
- Local or mounted filesystem (the PVC): the version is staged in a hidden, non-numeric folder
  (`.staging-<version>-<host>-<pid>`, which TF Serving ignores) and renamed to `<version>` in one atomic rename.
  A staging folder left by a killed push (its process on this host is gone) is removed by the next push.
- Object stores (gs://, s3://), which have no directory rename: files are copied straight into
  `<version>/`, everything else first and saved_model.pb last, so the version is loadable only once complete.
In both cases saved_model.pb is the last file written. A push that fails midway leaves the previous
versions untouched; its version number stays claimed and is never reused.

At most once per model: each version holds a push record (PUSH_RECORD_FILE) with the fingerprint of the model
it was copied from. A model whose fingerprint is the newest version's is not pushed again: a re-run whose
Trainer was cached re-evaluates the same model (a baseline exists now) and would otherwise serve it twice.
"""
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from components.baseline.latest_pushed import latest_version_dir

SAVED_MODEL_FILE = "saved_model.pb"
PUSH_RECORD_FILE = "push_record.json"
METHOD_ALREADY_PUSHED = "already-pushed"
_CLAIM = re.compile(r"^\.version-(\d+)\.claim$")
_STAGING_PREFIX = ".staging-"
_STAGING = re.compile(r"^\.staging-\d+-(?P<host>.+)-(?P<pid>\d+)$")

CopyFile = Callable[[str, str], None]


def _gfile_copy(source: str, destination: str) -> None:
    tf.io.gfile.copy(source, destination, overwrite=False)


def is_local(path: str) -> bool:
    return "://" not in path


def taken_versions(serving_dir: str) -> List[int]:
    """Every version number in use: version folders (complete or not) and claims of unfinished pushes."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    taken = []
    for entry in tf.io.gfile.listdir(serving_dir):
        name = entry.rstrip("/")
        claim = _CLAIM.match(name)
        if name.isdigit():
            taken.append(int(name))
        elif claim:
            taken.append(int(claim.group(1)))
    return taken


def _claim(serving_dir: str, version: int) -> bool:
    """Reserves a version number. Locally O_EXCL makes two concurrent pushers get different numbers."""
    path = os.path.join(serving_dir, f".version-{version}.claim")
    if is_local(serving_dir):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True
    # Object stores: no exclusive create through gfile; pushes of one pipeline run one at a time.
    if tf.io.gfile.exists(path):
        return False
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("")
    return True


def claim_next_version(serving_dir: str) -> int:
    """The smallest integer above every version in use (monotonic, never reused), reserved for this push."""
    tf.io.gfile.makedirs(serving_dir)
    while True:
        version = max(taken_versions(serving_dir), default=0) + 1
        if _claim(serving_dir, version):
            return version


def files_in_copy_order(model_dir: str, exclude: Sequence[str] = ()) -> List[str]:
    """Paths relative to model_dir, saved_model.pb last; `exclude` holds relative paths left out."""
    relative = []
    for directory, _, file_names in tf.io.gfile.walk(model_dir):
        for file_name in file_names:
            path = os.path.relpath(os.path.join(directory, file_name), model_dir)
            if path not in exclude:
                relative.append(path)
    return sorted(relative, key=lambda path: (path == SAVED_MODEL_FILE, path))


def _write_tree(model_dir: str, target_dir: str, exclude: Sequence[str], extra_files: Dict[str, str],
                copy_file: CopyFile) -> None:
    files = files_in_copy_order(model_dir, exclude)
    if SAVED_MODEL_FILE not in files:
        raise ValueError(f"{model_dir!r} holds no {SAVED_MODEL_FILE}: not a SavedModel.")
    tf.io.gfile.makedirs(target_dir)  # Extra files may come before any sub-folder was made.
    for relative in files:
        if relative == SAVED_MODEL_FILE:
            # Extra files (the model card) go in before the file that makes the version visible.
            for extra_name, content in extra_files.items():
                with tf.io.gfile.GFile(os.path.join(target_dir, extra_name), "w") as handle:
                    handle.write(content)
        destination = os.path.join(target_dir, relative)
        tf.io.gfile.makedirs(os.path.dirname(destination))
        copy_file(os.path.join(model_dir, relative), destination)


def model_fingerprint(model_dir: str) -> str:
    """sha256 over every file of a model directory (relative path and bytes): equal only for the same model."""
    digest = hashlib.sha256()
    for relative in sorted(files_in_copy_order(model_dir)):
        digest.update(relative.encode() + b"\0")
        with tf.io.gfile.GFile(os.path.join(model_dir, relative), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def push_record(model_dir: str, fingerprint: str, version: int) -> str:
    return json.dumps({"version": version, "source_model": model_dir, "model_fingerprint": fingerprint,
                       "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2)


def read_push_record(version_dir: str) -> Optional[Dict]:
    path = os.path.join(version_dir, PUSH_RECORD_FILE)
    if not tf.io.gfile.exists(path):
        return None  # Pushed before records existed, or by another tool.
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # Alive, someone else's.
    return False


def remove_abandoned_staging(serving_dir: str) -> None:
    """Removes staging folders of pushes killed midway. Only this host's, and only when their process is gone:
    a serving directory on shared storage may have pushes in flight from other machines."""
    for name in os.listdir(serving_dir):
        match = _STAGING.match(name)
        if match and match["host"] == socket.gethostname() and _process_is_gone(int(match["pid"])):
            logging.warning("Removing %s, left by a push that was killed midway.", name)
            shutil.rmtree(os.path.join(serving_dir, name), ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class PushResult:
    version: int
    version_dir: str
    method: str  # "stage-and-rename", "saved_model.pb-last" or METHOD_ALREADY_PUSHED
    fingerprint: str = ""

    @property
    def already_pushed(self) -> bool:
        return self.method == METHOD_ALREADY_PUSHED


def find_already_pushed(serving_dir: str, fingerprint: str) -> Optional[PushResult]:
    """The newest version when it was pushed from the model with this fingerprint; None otherwise.

    Only the newest: an older version holding the model is not what is served, so pushing it again (as a
    new newest version) is a real change.
    """
    version_dir = latest_version_dir(serving_dir)  # What TF Serving serves by default.
    if version_dir is None:
        return None
    record = read_push_record(version_dir)
    if not record or record.get("model_fingerprint") != fingerprint:
        return None
    return PushResult(int(os.path.basename(version_dir)), version_dir, METHOD_ALREADY_PUSHED, fingerprint)


def push_model(model_dir: str, serving_dir: str, exclude: Sequence[str] = (),
               extra_files: Optional[Callable[[int], Dict[str, str]]] = None,
               copy_file: CopyFile = _gfile_copy) -> PushResult:
    """Copies a SavedModel into the next free version of serving_dir. Never overwrites a version, and does
    not push a model that already is the newest version (returns that version, method METHOD_ALREADY_PUSHED).

    `extra_files(version)` returns files (relative path -> text) written beside the model, e.g. its card.
    """
    fingerprint = model_fingerprint(model_dir)
    already = find_already_pushed(serving_dir, fingerprint)
    if already is not None:
        logging.info("The model is already served as version %d (same fingerprint): not pushed again.",
                     already.version)
        return already
    version = claim_next_version(serving_dir)
    version_dir = os.path.join(serving_dir, str(version))
    extra_files = dict(extra_files(version) if extra_files else {},
                       **{PUSH_RECORD_FILE: push_record(model_dir, fingerprint, version)})
    if not is_local(serving_dir):
        if tf.io.gfile.exists(version_dir):
            raise FileExistsError(f"Version {version_dir} exists although its number was free; not overwritten.")
        _write_tree(model_dir, version_dir, exclude, extra_files, copy_file)
        return PushResult(version, version_dir, "saved_model.pb-last", fingerprint)
    remove_abandoned_staging(serving_dir)
    staging_dir = os.path.join(serving_dir, f"{_STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}")
    try:
        _write_tree(model_dir, staging_dir, exclude, extra_files, copy_file)
        if os.path.exists(version_dir):
            raise FileExistsError(f"Version {version_dir} exists although its number was claimed; not overwritten.")
        os.rename(staging_dir, version_dir)  # Atomic: TF Serving sees no version, or a complete one.
    except BaseException:
        logging.error("Push of version %d failed; the previous versions are untouched.", version)
        if tf.io.gfile.exists(staging_dir):
            tf.io.gfile.rmtree(staging_dir)
        raise
    return PushResult(version, version_dir, "stage-and-rename", fingerprint)
