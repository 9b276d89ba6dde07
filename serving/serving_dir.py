"""The serving directory: the one place that knows its layout and what each entry means.

    <serving dir>/
      1/ 2/ 3/ ...                 versions TF Serving loads (numeric names only)
        saved_model.pb             written last: its presence is what makes a version complete
        variables/ assets/ assets.extra/ fingerprint.pb tflite/ model_card.md push_record.json
      .version-<N>.claim           reserves number N for one push (exclusive create); kept, so N is never reused
      .staging-<N>-<host>-<pid>/   a push being written (or left by a killed one); never loaded
      models.config                the model config TF Serving polls (written by rollback/pin/unpin/promote)

What TF Serving loads, and so what "complete" means:
- tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc (PollFileSystemForServable):
  every poll (--file_system_poll_wait_seconds) lists the base path and keeps the children whose name parses
  as an integer (ParseVersionNumber, absl::SimpleAtoi); on GCS it keeps the first path component of each
  object. Any other name (".staging-...", ".version-N.claim", "models.config") is ignored. A numeric folder
  is aspired as soon as it is listed, complete or not.
- The SavedModel loader (tensorflow/cc/saved_model/reader.cc ReadSavedModel) fails at once with
  "Could not find SavedModel .pb or .pbtxt" when saved_model.pb is absent, before reading anything else;
  it then restores variables/ and reads assets/. A failed load is retried --max_num_load_retries times
  (default 5), --load_retry_interval_micros apart (default 1 min; tensorflow_serving/core/loader_harness.cc
  Load, util/retrier.cc), then the version stays in error; the versions already loaded keep serving
  (core/availability_preserving_policy.cc unloads a version only once an aspired one is ready).
So a version is complete when saved_model.pb is in it and every other file was in place before it: pushes
write saved_model.pb last. Locally the version is staged and renamed into place (atomic). A bucket has no
rename: the files are uploaded into a staging prefix first (the slow part, invisible to TF Serving), then
copied server side into <N>/ with saved_model.pb last; a poll that lands in that short window fails to
load N (saved_model.pb absent) and its retry loads the complete version.
"""
import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import re
import socket
import time
from typing import Callable, Dict, List, Optional, Sequence

from serving.storage import Storage, storage_for

SAVED_MODEL_FILE = "saved_model.pb"
# What the SavedModel reader accepts (tensorflow/python/saved_model/constants.py); ours always write the .pb.
SAVED_MODEL_FILES = (SAVED_MODEL_FILE, "saved_model.pbtxt")
PUSH_RECORD_FILE = "push_record.json"
MODEL_CONFIG_FILE = "models.config"
METHOD_ALREADY_PUSHED = "already-pushed"
METHOD_RENAME = "stage-and-rename"
METHOD_COPY = "stage-and-copy"
_CLAIM = re.compile(r"^\.version-(?P<version>\d+)\.claim$")
_STAGING = re.compile(r"^\.staging-(?P<version>\d+)-(?P<host>.+)-(?P<pid>\d+)$")
# A push that has not finished after this long is taken as killed on another machine (a pod that is gone):
# its staging and partial version are removed by the next push. Same-host pushes are checked by pid at once.
ABANDONED_AFTER_S = 6 * 3600

CopyFile = Callable[[str, str], None]


@dataclasses.dataclass(frozen=True)
class PushResult:
    version: int
    version_dir: str
    method: str  # METHOD_RENAME, METHOD_COPY or METHOD_ALREADY_PUSHED
    fingerprint: str = ""

    @property
    def already_pushed(self) -> bool:
        return self.method == METHOD_ALREADY_PUSHED


def claim_name(version: int) -> str:
    return f".version-{version}.claim"


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # Alive, someone else's.
    return False


def files_in_copy_order(storage: Storage, model_dir: str, exclude: Sequence[str] = ()) -> List[str]:
    """Relative paths of a model's files, saved_model.pb last; `exclude` holds relative paths left out."""
    files = [path for path in storage.files_under(model_dir) if path not in exclude]
    return sorted(files, key=lambda path: (path == SAVED_MODEL_FILE, path))


def model_fingerprint(model_dir: str) -> str:
    """sha256 over every file of a model directory (relative path and bytes): equal only for the same model."""
    storage = storage_for(model_dir)
    digest = hashlib.sha256()
    for relative in storage.files_under(model_dir):
        digest.update(relative.encode() + b"\0")
        digest.update(storage.read_bytes(posixpath.join(model_dir, relative)))
        digest.update(b"\0")
    return digest.hexdigest()


class ServingDir:
    """A TF Serving model base path, local/mounted or gs://."""

    def __init__(self, path: str, storage: Optional[Storage] = None):
        self.path = path.rstrip("/") if len(path) > 1 else path
        self.storage = storage or storage_for(path)

    def join(self, *parts: str) -> str:
        return posixpath.join(self.path, *parts)

    def version_dir(self, version: int) -> str:
        return self.join(str(version))

    @property
    def config_path(self) -> str:
        return self.join(MODEL_CONFIG_FILE)

    # Versions.

    def numbered_versions(self) -> List[int]:
        """Every numeric folder, complete or not (what TF Serving would try to load)."""
        return sorted(int(name) for name in self.storage.list_names(self.path) if name.isdigit())

    def is_complete(self, version: int) -> bool:
        return any(self.storage.is_file(self.join(str(version), name)) for name in SAVED_MODEL_FILES)

    def complete_versions(self) -> List[int]:
        return [version for version in self.numbered_versions() if self.is_complete(version)]

    def latest_version(self) -> Optional[int]:
        """The highest complete version (what TF Serving serves by default); None before the first push."""
        for version in reversed(self.numbered_versions()):
            if self.is_complete(version):
                return version
        return None

    def latest_version_dir(self) -> Optional[str]:
        version = self.latest_version()
        return None if version is None else self.version_dir(version)

    def require_complete(self, version: int) -> None:
        if not self.is_complete(version):
            raise ValueError(f"No complete version {version} under {self.path!r}; "
                             f"pushed versions: {self.complete_versions()}.")

    # Claims.

    def taken_versions(self) -> List[int]:
        """Every number in use: version folders (complete or not) and claims of pushes, finished or not."""
        taken = []
        for name in self.storage.list_names(self.path):
            claim = _CLAIM.match(name)
            if name.isdigit():
                taken.append(int(name))
            elif claim:
                taken.append(int(claim["version"]))
        return taken

    def claim_next_version(self) -> int:
        """The smallest integer above every number in use (monotonic, never reused), reserved for this push by an
        exclusive create: O_EXCL locally, ifGenerationMatch=0 on GCS, so two pushers never get the same one."""
        # The owner, for whoever looks at a claim whose push never finished.
        owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                            "claimed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        while True:
            version = max(self.taken_versions(), default=0) + 1
            if self.storage.create_exclusive(self.join(claim_name(version)), owner):
                return version

    def _is_abandoned(self, version: int, host: str, pid: int, now: float, stale_after_s: float) -> bool:
        if host == socket.gethostname() and _process_is_gone(pid):
            return True
        claim = self.join(claim_name(version))
        return self.storage.is_file(claim) and now - self.storage.modified_at(claim) > stale_after_s

    def remove_abandoned_pushes(self, stale_after_s: float = ABANDONED_AFTER_S) -> List[str]:
        """Removes what killed pushes left: their staging folders and, on a bucket, the version folder they were
        publishing (a push removes its staging only once its version is whole, so a partial version always has its
        staging beside it). A push is abandoned when its process on this host is gone, or when it claimed its
        number more than `stale_after_s` ago (another machine). Its claim stays: the number is not reused."""
        now, removed = time.time(), []
        names = self.storage.list_names(self.path)
        for name in names:
            staging = _STAGING.match(name)
            if not staging:
                continue
            version = int(staging["version"])
            if not self._is_abandoned(version, staging["host"], int(staging["pid"]), now, stale_after_s):
                continue
            removed.append(name)
            if str(version) in names and not self.is_complete(version):
                removed.append(str(version))
        for name in removed:
            logging.warning("Removing %s, left by a push that was killed midway.", self.join(name))
            self.storage.remove_tree(self.join(name))
        return removed

    # Push records.

    def read_push_record(self, version: int) -> Optional[Dict]:
        path = self.join(str(version), PUSH_RECORD_FILE)
        if not self.storage.is_file(path):
            return None  # Pushed before records existed, or by another tool.
        return json.loads(self.storage.read_bytes(path))

    def find_already_pushed(self, fingerprint: str) -> Optional[PushResult]:
        """The newest version when it was pushed from the model with this fingerprint; None otherwise.

        Only the newest: an older version holding the model is not what is served, so pushing it again (as a
        new newest version) is a real change."""
        version = self.latest_version()
        if version is None:
            return None
        record = self.read_push_record(version)
        if not record or record.get("model_fingerprint") != fingerprint:
            return None
        return PushResult(version, self.version_dir(version), METHOD_ALREADY_PUSHED, fingerprint)

    # Push.

    def push(self, model_dir: str, exclude: Sequence[str] = (),
             extra_files: Optional[Callable[[int], Dict[str, str]]] = None,
             copy_file: Optional[CopyFile] = None) -> PushResult:
        """Copies a SavedModel into the next free version. Never overwrites a version, and does not push a model
        that already is the newest version (returns that version, method METHOD_ALREADY_PUSHED).

        `extra_files(version)` returns files (relative path -> text) written beside the model, e.g. its card;
        `copy_file(source, destination)` copies one model file into staging (default: the backend's)."""
        source_files = files_in_copy_order(storage_for(model_dir), model_dir, exclude)
        if SAVED_MODEL_FILE not in source_files:
            raise ValueError(f"{model_dir!r} holds no {SAVED_MODEL_FILE}: not a SavedModel.")
        fingerprint = model_fingerprint(model_dir)
        already = self.find_already_pushed(fingerprint)
        if already is not None:
            logging.info("The model is already served as version %d (same fingerprint): not pushed again.",
                         already.version)
            return already
        self.remove_abandoned_pushes()
        version = self.claim_next_version()
        version_dir = self.version_dir(version)
        staging_dir = self.join(f".staging-{version}-{socket.gethostname()}-{os.getpid()}")
        extras = dict(extra_files(version) if extra_files else {},
                      **{PUSH_RECORD_FILE: push_record(model_dir, fingerprint, version)})
        order = [path for path in source_files if path != SAVED_MODEL_FILE] + sorted(extras) + [SAVED_MODEL_FILE]
        copy_file = copy_file or self.storage.put_file
        try:
            for relative in order:
                if relative in extras:
                    self.storage.write_bytes(posixpath.join(staging_dir, relative), extras[relative].encode())
                else:
                    copy_file(posixpath.join(model_dir, relative), posixpath.join(staging_dir, relative))
            self.storage.publish(staging_dir, version_dir, order)
        except BaseException:
            logging.error("Push of version %d failed; the previous versions are untouched.", version)
            self.storage.remove_tree(staging_dir)
            if not self.is_complete(version):
                self.storage.remove_tree(version_dir)  # Our claimed number: nobody else writes there.
            raise
        return PushResult(version, version_dir, METHOD_RENAME if self.storage.is_local else METHOD_COPY, fingerprint)


def push_record(model_dir: str, fingerprint: str, version: int) -> str:
    return json.dumps({"version": version, "source_model": model_dir, "model_fingerprint": fingerprint,
                       "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2)


def resolve_version_dir(model_dir: str) -> str:
    """A version directory as given, or the highest complete version under a serving directory."""
    storage = storage_for(model_dir)
    if any(storage.is_file(posixpath.join(model_dir, name)) for name in SAVED_MODEL_FILES):
        return model_dir
    if not storage.list_names(model_dir):
        raise FileNotFoundError(f"No model at {model_dir!r}.")
    version_dir = ServingDir(model_dir, storage).latest_version_dir()
    if version_dir is None:
        raise FileNotFoundError(f"{model_dir!r} holds no saved_model.pb and no numbered model versions.")
    return version_dir
