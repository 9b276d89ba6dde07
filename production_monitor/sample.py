"""A sample of recent production images: the newest files under a folder or bucket (tf.io.gfile), each read
and checked as ingestion checks training images (components/ingestion/image_tree.py). Files that are not
usable images are counted by ingestion's reason, never dropped silently."""
import collections
import dataclasses
import posixpath
from typing import Counter, List, Tuple

import tensorflow as tf

from components.ingestion import image_tree

# Listing more files than this per run is refused: the sample is of *recent* images, see --since-hours.
MAX_FILES_LISTED = 1_000_000


@dataclasses.dataclass(frozen=True)
class SampledImage:
    path: str
    data: bytes  # The file's bytes, as the application sent them to TF Serving.
    checked: image_tree.CheckedImage


@dataclasses.dataclass
class Sample:
    images: List[SampledImage]
    rejected: Counter[str]  # Ingestion's reasons (empty_file, undecodable, ...) -> files.
    files_listed: int


def _image_files(root: str) -> List[str]:
    """Every visible image file under root, at any depth."""
    if not tf.io.gfile.isdir(root):
        raise ValueError(f"--data {root!r} is not a folder or bucket prefix that exists.")
    found = []
    for directory, sub_directories, file_names in tf.io.gfile.walk(root):
        sub_directories[:] = [name for name in sub_directories if not image_tree.is_hidden(name.rstrip("/"))]
        found += [posixpath.join(directory, name) for name in file_names
                  if not image_tree.is_hidden(name) and image_tree.has_image_extension(name)]
        if len(found) > MAX_FILES_LISTED:
            raise ValueError(f"Over {MAX_FILES_LISTED} images under {root}: point --data at recent images only.")
    return found


def newest_files(root: str, count: int, since_seconds: float = 0) -> Tuple[List[str], int]:
    """The `count` most recently modified image files under root (modified after since_seconds, epoch)."""
    stamped = []
    for path in _image_files(root):
        modified = tf.io.gfile.stat(path).mtime_nsec / 1e9
        if modified >= since_seconds:
            stamped.append((modified, path))
    stamped.sort(reverse=True)
    return [path for _, path in stamped[:count]], len(stamped)


def read_sample(root: str, count: int, since_seconds: float = 0,
                limits: image_tree.Limits = image_tree.Limits()) -> Sample:
    paths, listed = newest_files(root, count, since_seconds)
    images, rejected = [], collections.Counter()
    for path in paths:
        try:
            data = image_tree.read_file(path, limits)
            images.append(SampledImage(path, data, image_tree.check_image(data, limits)))
        except image_tree.RejectedImage as error:
            rejected[error.reason] += 1
    return Sample(images, rejected, listed)
