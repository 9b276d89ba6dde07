"""Plain logic of image ingestion: walk a class-per-folder tree, check each file, build tf.Example records.

Nothing here knows about TFX or Beam, so it is tested directly; executor.py wires it into a Beam pipeline.
The layout is the one Keras `flow_from_directory` reads: `<root>/<class name>/**/<image file>`.
"""
import dataclasses
import hashlib
import io
import os
import posixpath
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from components import features

# Extensions are matched case-insensitively. These are the formats Pillow decodes for the check below.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
# The formats the schema's format domain lists; a file of another format behind an image extension (a TIFF
# named .jpg) is still ingested, and the validation gate counts the fraction of such files.
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
PASSTHROUGH_FORMATS = frozenset({"JPEG", "PNG"})
# 8-bit modes the in-graph decoder reads with the meaning the file has; grayscale becomes RGB in Transform
# (decode_image(channels=3) repeats the channel), identically at training and serving time.
PASSTHROUGH_MODES = frozenset({"RGB", "L"})
_EXIF_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Transparent pixels are composited onto white: dropping alpha would expose whatever colour the encoder
# left under them (often black), which changes what the image shows.
_ALPHA_BACKGROUND = (255, 255, 255)

# Decompression-bomb guard: the pixel count is read from the header and checked before any decoding.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Stored-size policy: an example keeps at most this many pixels on its long side, enough for any input size
# MobileNetV2 is trained at (up to 224, with room for larger models) without re-ingesting; 0 keeps originals.
DEFAULT_MAX_STORED_SIDE = 1024
# Downscaled images are stored as JPEG at this quality: a lossy generation far below the change the resize
# to the model's input size makes, at a fraction of a lossless copy's bytes and encoding time.
STORED_JPEG_QUALITY = 90
# Downscaling is by an integer factor where it can be: libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 scale
# (Pillow's `draft`), and other images are box-reduced by the largest integer factor (Image.reduce). Either
# may leave the long side down to this share of max_stored_side (a 4032-pixel photo is stored at 1008 from a
# JPEG, 807 from a PNG, for 1024), still far above any input size the model is trained at; only what remains
# above max_stored_side is resized with Lanczos. A box reduction of a 4032x3024 PNG takes about 10 ms against
# 60 ms for Lanczos to 1024 (one core), and after the model's own resize to 160 the two differ by
# about 1 of 255 levels on average (JPEG q90's order).
DRAFT_MIN_SHARE = 0.75
# zlib level of re-encoded PNGs: photos barely compress better at the default 6, which is several times slower.
_PNG_COMPRESS_LEVEL = 1
# zlib's run-length strategy on the PNG-filtered rows (libpng's own choice for fast filtered writes): a sideways
# 800x600 camera JPEG stored upright took 33.5 ms and 759 KB against 41.5 ms and 776 KB with the default
# strategy (mean of 4 interleaved rounds over 13 photos, one core, loaded machine); scikit-image's logo, text,
# coffee and horse images were smaller too (175 vs 195, 43 vs 49, 451 vs 483, 2 vs 4 KB).
_PNG_COMPRESS_TYPE = zlib.Z_RLE
DOWNSCALED_STEP = "downscaled"

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)


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
    # Not a refusal limit: larger images are downscaled to it (0 keeps originals). See check_image.
    max_stored_side: int = DEFAULT_MAX_STORED_SIDE


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    encoded: bytes  # JPEG or PNG bytes of an 8-bit RGB or grayscale image, ready for the in-graph decoder.
    source_format: str  # Format of the file as read ("JPEG", "PNG", "GIF", ...).
    width: int  # Of the file as read, after EXIF orientation (the stored copy may be downscaled).
    height: int
    channels: int  # Bands of the file as read: 1 grayscale/palette, 3 RGB, 4 RGBA/CMYK.
    byte_size: int  # Of the file as read.
    sha256: str  # Hex digest of the file as read: duplicate detection and the split key.
    normalizations: Tuple[str, ...] = ()  # What ingestion changed, e.g. ("exif_orientation", "cmyk_to_rgb").


# The split pattern of ImageExampleGen names the class folders' files; the input fingerprint walks the whole
# tree beneath them (fingerprint.py).
IMAGE_FILES_PATTERN = "*/*"


def tree_root(input_base: str, pattern: str) -> str:
    """The folder holding the class folders, which IMAGE_FILES_PATTERN's files are in.

    After the FileBasedDriver has resolved a span, a pattern such as "span-3/*/*" roots the tree at span-3.
    """
    prefix = pattern[: -len(IMAGE_FILES_PATTERN)] if pattern.endswith(IMAGE_FILES_PATTERN) else pattern
    return posixpath.join(input_base, prefix).rstrip("/")


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
    """Yields (path, is_image_candidate) for every file under `<root>/<class_name>`; see walk_folder."""
    return walk_folder(posixpath.join(root, class_name))


def walk_folder(class_dir: str) -> Iterator[Tuple[str, bool]]:
    """Yields (path, is_image_candidate) for every file under one class folder, sub-folders included.

    Hidden files and everything under hidden folders yield False, as do files whose extension is not an
    image's: the caller reports them as ignored instead of losing them silently.
    """
    for directory, subdirs, files in tf.io.gfile.walk(class_dir):
        relative_dir = posixpath.relpath(directory, class_dir)
        in_hidden_dir = any(is_hidden(part) for part in relative_dir.split("/") if part != ".")
        for name in sorted(files):
            path = posixpath.join(directory, name)
            yield path, not in_hidden_dir and not is_hidden(name) and has_image_extension(name)
        subdirs.sort()


@dataclasses.dataclass(frozen=True)
class ClassFolder:
    class_name: str
    path: str
    split: Optional[str] = None  # Set when the tree has explicit train/ and eval/ folders.


def class_folders(root: str) -> List[ClassFolder]:
    """Every class folder of a tree, `<root>/<class>` or, with explicit splits, `<root>/<split>/<class>`."""
    explicit = explicit_split_folders(root)
    if explicit is None:
        return [ClassFolder(name, posixpath.join(root, name)) for name in list_class_names(root)]
    return [ClassFolder(name, posixpath.join(folder, name), split)
            for split, folder in explicit.items() for name in list_class_names(folder)]


def class_names_of_tree(root: str) -> List[str]:
    return sorted({folder.class_name for folder in class_folders(root)})


def explicit_split_folders(root: str) -> Optional[Dict[str, str]]:
    """{split: folder} when the tree's only visible folders are `train/` and `eval/`, else None.

    Such a tree is `<root>/<split>/<class name>/**/<image>`: the user chose each file's split.
    """
    if not tf.io.gfile.isdir(root):
        return None
    folders = {entry.rstrip("/") for entry in tf.io.gfile.listdir(root)
               if not is_hidden(entry) and tf.io.gfile.isdir(posixpath.join(root, entry.rstrip("/")))}
    if folders != set(SPLITS):
        return None
    return {split: posixpath.join(root, split) for split in SPLITS}


def assign_split(key: str, eval_buckets: int, total_buckets: int) -> str:
    """Deterministic split by a hash of `key`. Ingestion's key is the file's content hash (CheckedImage.sha256),
    so a renamed or moved file keeps its split and identical files always land in the same split."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % total_buckets
    return EVAL_SPLIT if bucket < eval_buckets else TRAIN_SPLIT


def check_image(data: bytes, limits: Limits) -> CheckedImage:
    """Decodes the file fully (a truncated file fails here, not in training) and returns JPEG/PNG bytes of
    an 8-bit RGB or grayscale image with its metadata.

    JPEG/PNG files that are already 8-bit RGB or grayscale, upright and within `limits.max_stored_side`
    pass through byte for byte. All else is re-encoded after these steps: EXIF orientation applied; first
    frame of an animation; palette expanded; CMYK converted to RGB; alpha composited onto white; 16-bit
    samples scaled to 8 bits; downscaled (integer box reduction, then Lanczos for the rest) to at most
    `max_stored_side` on the long side. A downscaled image is stored as JPEG, everything else as PNG (lossless).
    The served model's Transform graph does the same to the files clients send
    (components/transform/image_decoding.py).

    A JPEG larger than needed is decoded at a reduced scale by libjpeg (Pillow's `draft`: 1/2, 1/4 or 1/8,
    never below DRAFT_MIN_SHARE of the stored size), which is several times faster; libjpeg still reads the
    whole entropy-coded stream, so a truncated or corrupt file is refused all the same.
    """
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
            channels = len(image.getbands())
            stored_size = _stored_size((width, height), limits.max_stored_side)
            downscale = stored_size != (width, height)
            if downscale and source_format == "JPEG":
                # Pillow picks the largest scale that keeps both sides at least the size asked
                # (PIL/JpegImagePlugin.py, JpegImageFile.draft).
                image.draft(image.mode, tuple(max(1, int(side * DRAFT_MIN_SHARE)) for side in stored_size))
            image.load()  # The first frame of an animation.
            normalized, steps = _normalize(image, source_format, _png_bit_depth(data))
            width, height = (height, width) if _swaps_sides(image) else (width, height)
            if downscale:
                normalized = _downscale(normalized, limits.max_stored_side)
                steps.append(DOWNSCALED_STEP)
            encoded = data if not steps else _encode(normalized, DOWNSCALED_STEP in steps)
    except RejectedImage:
        raise
    except UnidentifiedImageError as error:
        raise RejectedImage("not_an_image", f"no image format recognized: {error}") from error
    except Image.DecompressionBombError as error:
        raise RejectedImage("too_many_pixels", str(error)) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise RejectedImage("undecodable", f"{type(error).__name__}: {error}") from error
    return CheckedImage(encoded=encoded, source_format=source_format, width=width, height=height,
                        channels=channels, byte_size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        normalizations=tuple(steps))


def _stored_size(size: Tuple[int, int], max_stored_side: int) -> Tuple[int, int]:
    """(width, height) scaled so that the long side is at most `max_stored_side` (0: unchanged)."""
    width, height = size
    long_side = max(width, height)
    if not max_stored_side or long_side <= max_stored_side:
        return size
    scale = max_stored_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downscale(image: Image.Image, max_stored_side: int) -> Image.Image:
    """At most `max_stored_side` on the long side: a box reduction by the largest integer factor that keeps
    DRAFT_MIN_SHARE of it (none after a JPEG's draft decoding), then Lanczos for what remains above it."""
    factor = int(max(image.size) / (DRAFT_MIN_SHARE * max_stored_side))
    if factor > 1:
        image = image.reduce(factor)
    target = _stored_size(image.size, max_stored_side)
    return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)


def _swaps_sides(image: Image.Image) -> bool:
    """EXIF orientations 5-8 turn the stored image by 90 degrees."""
    return image.getexif().get(_EXIF_ORIENTATION_TAG, 1) in (5, 6, 7, 8)


def _png_bit_depth(data: bytes) -> Optional[int]:
    # IHDR is always the first chunk: 8-byte signature, 8-byte chunk header, width, height, bit depth.
    return data[24] if data.startswith(_PNG_SIGNATURE) and len(data) > 24 else None


def _normalize(image: Image.Image, source_format: str, png_bit_depth: Optional[int]
               ) -> Tuple[Image.Image, List[str]]:
    """The image as 8-bit RGB (or untouched grayscale), and the names of the steps that changed it."""
    steps: List[str] = []
    if getattr(image, "n_frames", 1) > 1:
        steps.append("first_frame_of_animation")
    if image.getexif().get(_EXIF_ORIENTATION_TAG, 1) != 1:
        image = ImageOps.exif_transpose(image)
        steps.append("exif_orientation")
    if png_bit_depth == 16 or image.mode.startswith("I"):
        image = _scale_16_bit_to_8_bit(image)
        steps.append("16_bit_to_8_bit")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        steps.append("palette_to_rgb")
    if image.mode == "CMYK":
        image = image.convert("RGB")
        steps.append("cmyk_to_rgb")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = _composite_on_white(image)
        steps.append("alpha_composited_on_white")
    if image.mode not in PASSTHROUGH_MODES:
        steps.append(f"{image.mode.lower()}_to_rgb")
        image = image.convert("RGB")
    if source_format not in PASSTHROUGH_FORMATS:
        steps.append(f"{source_format.lower()}_to_png")
    return image, steps


def _scale_16_bit_to_8_bit(image: Image.Image) -> Image.Image:
    """Pillow's own conversion of 16-bit grayscale clips at 255; this keeps the high byte (0..65535 onto
    0..255), as Pillow does for 16-bit RGB(A) and TensorFlow's uint8 decode_png does for every 16-bit PNG
    (libpng's png_set_strip_16), so the served model sees the same 8 bits for the original file."""
    if not image.mode.startswith("I"):
        return image  # 16-bit RGB(A) PNGs are already read as 8-bit by Pillow (high byte).
    samples = np.asarray(image, dtype=np.uint32)
    return Image.fromarray((samples >> 8).clip(0, 255).astype(np.uint8), mode="L")


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _ALPHA_BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _encode(image: Image.Image, downscaled: bool) -> bytes:
    """A downscaled image is stored as JPEG (the resize changed every pixel already); the rest losslessly."""
    buffer = io.BytesIO()
    if downscaled:
        image.save(buffer, format="JPEG", quality=STORED_JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL,
                   compress_type=_PNG_COMPRESS_TYPE)
    return buffer.getvalue()


def make_example(checked: CheckedImage, label: str, source_uri: str) -> tf.train.Example:
    # Filled in place: nesting tf.train.Feature constructors copies every sub-message again (about 2x the time).
    example = tf.train.Example()
    feature = example.features.feature
    for key, value in ((features.IMAGE_KEY, checked.encoded), (features.LABEL_KEY, label.encode("utf-8")),
                       (features.SOURCE_URI_KEY, source_uri.encode("utf-8")),
                       (features.FORMAT_KEY, checked.source_format.encode("ascii")),
                       (features.SHA256_KEY, checked.sha256.encode("ascii"))):
        feature[key].bytes_list.value.append(value)
    for key, number in ((features.HEIGHT_KEY, checked.height), (features.WIDTH_KEY, checked.width),
                        (features.CHANNELS_KEY, checked.channels), (features.BYTE_SIZE_KEY, checked.byte_size)):
        feature[key].int64_list.value.append(number)
    return example


def read_file(path: str, limits: Limits) -> bytes:
    """Reads a local or remote (tf.io.gfile) file, refusing one over the byte limit before reading it.

    A local path (no scheme) is read with Python's own file objects: tf.io.gfile's stat and read cost about
    3 ms of CPU per camera photo against 0.5 ms (bench/.data/photos-160-x1, one thread)."""
    local = "://" not in path
    size: Optional[int] = os.stat(path).st_size if local else tf.io.gfile.stat(path).length
    if size is not None and size > limits.max_bytes:
        raise RejectedImage("too_many_bytes", f"{size} bytes > limit {limits.max_bytes}")
    with open(path, "rb") if local else tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()
