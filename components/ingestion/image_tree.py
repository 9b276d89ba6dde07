"""Plain logic of image ingestion: walk a class-per-folder tree, check each file, build tf.Example records.

Nothing here knows about TFX or Beam, so it is tested directly; executor.py wires it into a Beam pipeline.
The layout is the one Keras `flow_from_directory` reads: `<root>/<class name>/**/<image file>`.
"""
import dataclasses
import hashlib
import io
import os
import posixpath
from typing import Iterator, List, Optional, Tuple

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from components import features

# Extensions are matched case-insensitively. These are the formats Pillow decodes for the check below;
# JPEG and PNG pass through unchanged, the others are re-encoded as PNG (lossless) so that the in-graph
# decoder of Transform and serving, which reads JPEG/PNG/GIF/BMP, never meets a format it cannot read.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
PASSTHROUGH_FORMATS = frozenset({"JPEG", "PNG"})

# Decompression-bomb guard: the pixel count is read from the header and checked before any decoding.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"


class RejectedImage(Exception):
    """A file that looked like an image but is not a usable one; `reason` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    encoded: bytes  # JPEG or PNG bytes, ready for the in-graph decoder.
    source_format: str  # Format of the file as read ("JPEG", "PNG", "GIF", ...).
    width: int
    height: int


def is_hidden(name: str) -> bool:
    """Hidden files and folders (.DS_Store, .ipynb_checkpoints) are never data."""
    return name.startswith(".")


def has_image_extension(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def list_class_names(root: str) -> List[str]:
    """The class names of a tree: its visible sub-folders, sorted. Raises ValueError when there are none."""
    if not tf.io.gfile.isdir(root):
        raise ValueError(f"Image folder {root!r} does not exist or is not a folder.")
    names = sorted(
        entry.rstrip("/")
        for entry in tf.io.gfile.listdir(root)
        if not is_hidden(entry) and tf.io.gfile.isdir(posixpath.join(root, entry.rstrip("/")))
    )
    if not names:
        raise ValueError(
            f"Image folder {root!r} has no class folders: expected one sub-folder per class "
            "with the images of that class beneath it (the layout of Keras flow_from_directory)."
        )
    return names


def walk_class_folder(root: str, class_name: str) -> Iterator[Tuple[str, bool]]:
    """Yields (path, is_image_candidate) for every file under one class folder, sub-folders included.

    Hidden files and everything under hidden folders yield False, as do files whose extension is not an
    image's: the caller reports them as ignored instead of losing them silently.
    """
    class_dir = posixpath.join(root, class_name)
    for directory, subdirs, files in tf.io.gfile.walk(class_dir):
        relative_dir = posixpath.relpath(directory, class_dir)
        in_hidden_dir = any(is_hidden(part) for part in relative_dir.split("/") if part != ".")
        for name in sorted(files):
            path = posixpath.join(directory, name)
            yield path, not in_hidden_dir and not is_hidden(name) and has_image_extension(name)
        subdirs.sort()


def assign_split(relative_path: str, eval_buckets: int, total_buckets: int) -> str:
    """Deterministic split by a hash of the path relative to the root: re-runs and moves of the root agree."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % total_buckets
    return EVAL_SPLIT if bucket < eval_buckets else TRAIN_SPLIT


def check_image(data: bytes, limits: Limits) -> CheckedImage:
    """Decodes the file fully (a truncated file fails here, not in training) and returns JPEG/PNG bytes."""
    if not data:
        raise RejectedImage("empty_file", "the file has no bytes")
    if len(data) > limits.max_bytes:
        raise RejectedImage("too_many_bytes", f"{len(data)} bytes > limit {limits.max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            # Checked from the header, before the pixels are decoded and allocated.
            if width * height > limits.max_pixels:
                raise RejectedImage("too_many_pixels", f"{width}x{height} > limit {limits.max_pixels} pixels")
            source_format = image.format or "UNKNOWN"
            image.load()
            encoded = data if source_format in PASSTHROUGH_FORMATS else _encode_png(image)
    except RejectedImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise RejectedImage("undecodable", f"{type(error).__name__}: {error}") from error
    return CheckedImage(encoded=encoded, source_format=source_format, width=width, height=height)


def _encode_png(image: Image.Image) -> bytes:
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_example(checked: CheckedImage, label: str, source_uri: str) -> tf.train.Example:
    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE_KEY: _bytes(checked.encoded),
                features.LABEL_KEY: _bytes(label.encode("utf-8")),
                features.SOURCE_URI_KEY: _bytes(source_uri.encode("utf-8")),
            }
        )
    )


def read_file(path: str, limits: Limits) -> bytes:
    """Reads a local or remote (tf.io.gfile) file, refusing one over the byte limit before reading it."""
    size: Optional[int] = tf.io.gfile.stat(path).length
    if size is not None and size > limits.max_bytes:
        raise RejectedImage("too_many_bytes", f"{size} bytes > limit {limits.max_bytes}")
    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()
