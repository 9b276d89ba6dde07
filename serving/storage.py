"""Where a serving directory lives, behind one small interface: a local or mounted filesystem (the PVC), or a
Google Cloud Storage bucket (`gs://`).

The bucket backend does everything through google-cloud-storage (listing, exclusive creates with
ifGenerationMatch=0, uploads, server-side copies, reads), not through TensorFlow's gs:// filesystem: the
client is the well-kept one for GCS, it exposes the generation preconditions that make a claim exclusive, and
it honours STORAGE_EMULATOR_HOST, so the same code runs against the local emulator in tests.
Paths are strings; folders are joined with posixpath, which keeps a URI's scheme (os.path.normpath does not).
"""
import abc
import os
import posixpath
import shutil
import tempfile
from typing import List, Sequence, Tuple

GCS_SCHEME = "gs://"


class Storage(abc.ABC):
    """Files and folders under one root. A folder exists as long as something is in it."""

    is_local = True

    @abc.abstractmethod
    def list_names(self, folder: str) -> List[str]:
        """Names of the direct children (files and folders) of `folder`; [] when it does not exist."""

    @abc.abstractmethod
    def is_file(self, path: str) -> bool:
        ...

    @abc.abstractmethod
    def read_bytes(self, path: str) -> bytes:
        ...

    @abc.abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Replaces the file in one step: a reader sees the old content or the new, never a part."""

    @abc.abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Creates the file only if nothing is there; False when it exists. Two callers never both win."""

    @abc.abstractmethod
    def put_file(self, source: str, path: str, overwrite: bool = False) -> None:
        """Copies one file from `source` (a local path, a gs:// URI or any tf.io.gfile URI) to `path`; refuses an
        existing `path` unless `overwrite`."""

    @abc.abstractmethod
    def files_under(self, folder: str) -> List[str]:
        """Relative paths (posix) of every file below `folder`, at any depth."""

    @abc.abstractmethod
    def remove_tree(self, folder: str) -> None:
        ...

    @abc.abstractmethod
    def publish(self, staging: str, target: str, ordered_files: Sequence[str]) -> None:
        """Moves a staged folder to `target`, creating the files in `ordered_files` order (the last one is what
        makes `target` loadable). Refuses an existing target."""

    @abc.abstractmethod
    def modified_at(self, path: str) -> float:
        """Seconds since the epoch of the file's last change."""

    def download(self, path: str, local_path: str) -> None:
        os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
        with open(local_path, "wb") as handle:
            handle.write(self.read_bytes(path))


class LocalStorage(Storage):
    """A local or mounted (NFS, PVC) filesystem: exclusive creates with O_EXCL, moves with rename(2)."""

    def list_names(self, folder: str) -> List[str]:
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    def is_file(self, path: str) -> bool:
        return os.path.isfile(path)

    def read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o644)  # mkstemp makes 0600; TF Serving may run as another user.
            os.replace(temporary, path)  # Atomic on POSIX filesystems.
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise

    def create_exclusive(self, path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return True

    def put_file(self, source: str, path: str, overwrite: bool = False) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; not overwritten.")
        if source.startswith(GCS_SCHEME):
            GcsStorage().download(source, path)
        elif "://" not in source:
            shutil.copyfile(source, path)
        else:
            import tensorflow as tf  # Reads any other URI a model may come from; imported only when needed.

            tf.io.gfile.copy(source, path, overwrite=overwrite)

    def files_under(self, folder: str) -> List[str]:
        found = []
        for directory, _, names in os.walk(folder):
            found += [posixpath.relpath(posixpath.join(directory, name), folder) for name in names]
        return sorted(found)

    def remove_tree(self, folder: str) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staging: str, target: str, ordered_files: Sequence[str]) -> None:
        # The files were written in order into the staging folder; one rename makes all of them visible at once.
        if os.path.exists(target):
            raise FileExistsError(f"{target} exists; not overwritten.")
        os.rename(staging, target)

    def modified_at(self, path: str) -> float:
        return os.path.getmtime(path)


def split_gcs_uri(uri: str) -> Tuple[str, str]:
    """gs://bucket/a/b -> ("bucket", "a/b")."""
    if not uri.startswith(GCS_SCHEME):
        raise ValueError(f"Not a gs:// URI: {uri!r}")
    bucket, _, name = uri[len(GCS_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"No bucket in {uri!r}")
    return bucket, name.strip("/")


class GcsStorage(Storage):
    """A Google Cloud Storage bucket through google-cloud-storage. Objects are immutable and a single object's
    upload is atomic; exclusivity comes from the `ifGenerationMatch=0` precondition (create only if no live
    object has that name); there is no folder rename, so `publish` copies object by object, server side."""

    is_local = False

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                # An emulator takes no credentials; looking for them would probe the GCE metadata server first.
                from google.auth.credentials import AnonymousCredentials

                self._client = storage.Client(credentials=AnonymousCredentials(),
                                              project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"))
            else:
                self._client = storage.Client()  # Application default credentials (Workload Identity on GKE).
        return self._client

    def _blob(self, uri: str):
        bucket, name = split_gcs_uri(uri)
        return self.client.bucket(bucket).blob(name)

    @staticmethod
    def _prefix(name: str) -> str:
        return f"{name}/" if name else ""

    def list_names(self, folder: str) -> List[str]:
        bucket, name = split_gcs_uri(folder)
        prefix = self._prefix(name)
        listing = self.client.list_blobs(bucket, prefix=prefix, delimiter="/")
        files = [blob.name[len(prefix):] for blob in listing]  # Consumes the pages, which fills .prefixes.
        folders = [sub[len(prefix):].rstrip("/") for sub in listing.prefixes]
        return sorted(name for name in set(files + folders) if name)

    def is_file(self, path: str) -> bool:
        return self._blob(path).exists()

    def read_bytes(self, path: str) -> bytes:
        return self._blob(path).download_as_bytes()

    def download(self, path: str, local_path: str) -> None:
        os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
        self._blob(path).download_to_filename(local_path)  # Streamed: a model's variables need not fit in memory.

    def write_bytes(self, path: str, data: bytes) -> None:
        self._blob(path).upload_from_string(data)  # One object, uploaded in one request: atomic for readers.

    def create_exclusive(self, path: str, data: bytes) -> bool:
        from google.api_core import exceptions

        try:
            self._blob(path).upload_from_string(data, if_generation_match=0)
        except exceptions.PreconditionFailed:
            return False
        return True

    def put_file(self, source: str, path: str, overwrite: bool = False) -> None:
        blob = self._blob(path)
        precondition = {} if overwrite else {"if_generation_match": 0}  # 0: only if no live object has the name.
        if source.startswith(GCS_SCHEME):
            source_blob = self._blob(source)
            source_blob.bucket.copy_blob(source_blob, blob.bucket, blob.name, **precondition)
        elif "://" not in source:
            blob.upload_from_filename(source, **precondition)
        else:
            import tensorflow as tf

            with tf.io.gfile.GFile(source, "rb") as handle:
                blob.upload_from_string(handle.read(), **precondition)

    def files_under(self, folder: str) -> List[str]:
        bucket, name = split_gcs_uri(folder)
        prefix = self._prefix(name)
        # Names ending in "/" are folders: tf.io.gfile.makedirs writes one empty object per folder on GCS
        # (tsl/platform/cloud/gcs_file_system.cc, CreateDir), so the Trainer's model has them.
        return sorted(blob.name[len(prefix):] for blob in self.client.list_blobs(bucket, prefix=prefix)
                      if not blob.name.endswith("/"))

    def remove_tree(self, folder: str) -> None:
        from google.api_core import exceptions

        bucket, name = split_gcs_uri(folder)
        for blob in self.client.list_blobs(bucket, prefix=self._prefix(name)):
            try:
                blob.delete()
            except exceptions.NotFound:
                pass  # Removed by another cleaner meanwhile.

    def publish(self, staging: str, target: str, ordered_files: Sequence[str]) -> None:
        # Server-side copies (no bytes through this process), each refused if the object exists, in order;
        # then the staging objects go. The claim made `target` ours; the listing guards against a foreign writer
        # where a copy's precondition is not enforced (fake-gcs-server ignores it on copies; GCS does not).
        if self.files_under(target):
            raise FileExistsError(f"{target} exists; not overwritten.")
        for relative in ordered_files:
            self.put_file(posixpath.join(staging, relative), posixpath.join(target, relative))
        self.remove_tree(staging)

    def modified_at(self, path: str) -> float:
        blob = self._blob(path)
        blob.reload()
        return blob.updated.timestamp()


def storage_for(path: str) -> Storage:
    """The backend of a path: gs:// is a bucket, a path without a scheme is a local or mounted filesystem."""
    if path.startswith(GCS_SCHEME):
        return GcsStorage()
    if "://" in path:
        raise ValueError(f"Unsupported serving storage {path!r}: use a local or mounted path, or gs://bucket/path.")
    return LocalStorage()


def copy_tree(source_folder: str, destination_folder: str, overwrite: bool = True) -> None:
    """Copies every file of a folder, between any two backends (local <-> gs://); posix joins keep the scheme."""
    destination = storage_for(destination_folder)
    for relative in storage_for(source_folder).files_under(source_folder):
        destination.put_file(posixpath.join(source_folder, relative), posixpath.join(destination_folder, relative),
                             overwrite=overwrite)
