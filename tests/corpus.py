"""Generator of a bad-input image corpus: what people's hand-filled folders contain, written with Pillow.

Nothing binary is committed: `write_corpus(root)` writes the files and returns, per file (path relative to
root), what ingestion must do with it. Also usable by hand: `python -m tests.corpus /tmp/corpus`.
"""
import dataclasses
import io
import struct
import sys
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

EXAMPLE, QUARANTINED, IGNORED = "example", "quarantined", "ignored"
EMPTY_CLASS = "empty class"
ONE_IMAGE_CLASS = "café solo"


@dataclasses.dataclass(frozen=True)
class Expected:
    outcome: str  # EXAMPLE, QUARANTINED or IGNORED.
    reason: Optional[str] = None  # Quarantine reason.
    steps: Tuple[str, ...] = ()  # Normalization steps of an example ingestion re-encoded.
    size: Optional[Tuple[int, int]] = None  # (width, height) of the stored example.


def _pixels(seed: int, width: int = 24, height: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def header_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims width x height pixels (2.7 GB of RGB) but holds almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def exif_rotated_jpeg(seed: int) -> bytes:
    """Stored 32 wide x 16 high with EXIF orientation 6 (rotate 90° clockwise to view): upright it is 16x32."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(Image.fromarray(_pixels(seed, 32, 16)), "JPEG", exif=exif.tobytes())


def animated_gif(seed: int) -> bytes:
    frames = [Image.fromarray(_pixels(seed + index)).convert("P") for index in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def write_corpus(root: Path) -> Dict[str, Expected]:
    """Writes the corpus under root (classes 'cat', 'dog', a one-image class, an empty class)."""
    files: Dict[str, Tuple[bytes, Expected]] = {
        # Plain files of every supported format; extensions in any case; spaces and non-ASCII names.
        "cat/plain.jpg": (_save(Image.fromarray(_pixels(1)), "JPEG"), Expected(EXAMPLE)),
        "cat/UPPER CASE.PNG": (_save(Image.fromarray(_pixels(2)), "PNG"), Expected(EXAMPLE)),
        "cat/kätzchen 猫.png": (_save(Image.fromarray(_pixels(3)), "PNG"), Expected(EXAMPLE)),
        "cat/deep/deeper/nested.jpeg": (_save(Image.fromarray(_pixels(4)), "JPEG"), Expected(EXAMPLE)),
        "cat/gray.jpg": (_save(Image.fromarray(_pixels(5)).convert("L"), "JPEG"), Expected(EXAMPLE)),
        "cat/bitmap.bmp": (_save(Image.fromarray(_pixels(6)), "BMP"), Expected(EXAMPLE, steps=("bmp_to_png",))),
        "cat/web.WebP": (_save(Image.fromarray(_pixels(7)), "WEBP", lossless=True),
                         Expected(EXAMPLE, steps=("webp_to_png",))),
        # Normalized at ingestion.
        "cat/cmyk.jpg": (_save(Image.fromarray(_pixels(8)).convert("CMYK"), "JPEG"),
                         Expected(EXAMPLE, steps=("cmyk_to_rgb",))),
        "cat/sixteen bit.png": (_save(Image.fromarray(
            (np.random.default_rng(9).integers(0, 65536, (24, 24))).astype(np.uint16)), "PNG"),
            Expected(EXAMPLE, steps=("16_bit_to_8_bit",))),
        "cat/transparent.png": (_save(Image.fromarray(np.dstack([_pixels(10), np.full((24, 24), 128, np.uint8)]),
                                                      "RGBA"), "PNG"),
                                Expected(EXAMPLE, steps=("alpha_composited_on_white",))),
        "cat/palette.png": (_save(Image.fromarray(_pixels(11)).convert("P"), "PNG"),
                            Expected(EXAMPLE, steps=("palette_to_rgb",))),
        "cat/animated.gif": (animated_gif(12), Expected(
            EXAMPLE, steps=("first_frame_of_animation", "palette_to_rgb", "gif_to_png"))),
        "cat/rotated.jpg": (exif_rotated_jpeg(13), Expected(EXAMPLE, steps=("exif_orientation",), size=(16, 32))),
        # Quarantined.
        "cat/truncated.jpg": (_save(Image.fromarray(_pixels(14, 64, 64)), "JPEG")[:400],
                              Expected(QUARANTINED, "undecodable")),
        "cat/zero bytes.jpg": (b"", Expected(QUARANTINED, "empty_file")),
        "cat/actually text.jpg": (b"name,label\nphoto,cat\n", Expected(QUARANTINED, "not_an_image")),
        "cat/bomb.png": (header_bomb_png(), Expected(QUARANTINED, "too_many_pixels")),
        # Ignored.
        "cat/.DS_Store": (b"\0\0\0\1Bud1", Expected(IGNORED)),
        "cat/.ipynb_checkpoints/plain-checkpoint.png": (_save(Image.fromarray(_pixels(1)), "PNG"), Expected(IGNORED)),
        "cat/notes.txt": (b"these are cats", Expected(IGNORED)),
        "dog/plain.png": (_save(Image.fromarray(_pixels(20)), "PNG"), Expected(EXAMPLE)),
        # Same content twice in one class: the first path (sorted) is kept, the copy quarantined.
        "dog/copy a.png": (_save(Image.fromarray(_pixels(21)), "PNG"), Expected(EXAMPLE)),
        "dog/sub/copy b.png": (_save(Image.fromarray(_pixels(21)), "PNG"), Expected(QUARANTINED, "duplicate")),
        # Same content in two classes: the label is contradictory, every copy is quarantined.
        "dog/both.jpg": (_save(Image.fromarray(_pixels(22)), "JPEG"), Expected(QUARANTINED, "conflicting_labels")),
        "cat/both.jpg": (_save(Image.fromarray(_pixels(22)), "JPEG"), Expected(QUARANTINED, "conflicting_labels")),
        f"{ONE_IMAGE_CLASS}/only one.png": (_save(Image.fromarray(_pixels(30)), "PNG"), Expected(EXAMPLE)),
    }
    (root / EMPTY_CLASS).mkdir(parents=True, exist_ok=True)
    for relative, (data, _) in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


def write_explicit_split_corpus(root: Path) -> Dict[str, Expected]:
    """train/ and eval/ folders chosen by the user; one image is in both (a leak): the train copy is kept."""
    leaked = _save(Image.fromarray(_pixels(40)), "PNG")
    files = {
        "train/cat/a.png": (_save(Image.fromarray(_pixels(41)), "PNG"), Expected(EXAMPLE)),
        "train/cat/leaked.png": (leaked, Expected(EXAMPLE)),
        "train/dog/b.png": (_save(Image.fromarray(_pixels(42)), "PNG"), Expected(EXAMPLE)),
        "eval/cat/leaked copy.png": (leaked, Expected(QUARANTINED, "duplicate")),
        "eval/dog/c.png": (_save(Image.fromarray(_pixels(43)), "PNG"), Expected(EXAMPLE)),
    }
    for relative, (data, _) in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


def exif_app1(orientation: int, big_endian: bool) -> bytes:
    """An APP1 "Exif" segment holding only IFD0 with the orientation tag (SHORT), in either byte order."""
    order = ">" if big_endian else "<"
    value = struct.pack(order + "HH", orientation, 0)  # A SHORT sits in the first 2 of the 4 value bytes.
    tiff = ((b"MM\0*" if big_endian else b"II*\0") + struct.pack(order + "IH", 8, 1)
            + struct.pack(order + "HHI", 0x0112, 3, 1) + value + struct.pack(order + "I", 0))
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_exif_orientation(jpeg: bytes, orientation: int, big_endian: bool = False, after_app0: bool = False) -> bytes:
    """The JPEG with an EXIF orientation segment, right after SOI (as cameras write it) or after JFIF's APP0."""
    position = 2
    if after_app0 and jpeg[2:4] == b"\xff\xe0":
        position = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:position] + exif_app1(orientation, big_endian) + jpeg[position:]


def _photo(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth image with structure in both directions (a flip or a turn changes it), unlike noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, 3)
    channels = [127 + 100 * np.sin(x / (7 + 3 * i) + phases[i]) * np.cos(y / (11 + 2 * i)) + 0.4 * (x - y)
                for i in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def _upright_on_white(data: bytes) -> Image.Image:
    """What the file shows, as Pillow sees it: EXIF orientation applied, transparency composited onto white."""
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode == "I;16":
            return Image.fromarray((np.asarray(image, np.uint32) >> 8).astype(np.uint8))
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        return image.convert("RGB") if image.mode == "CMYK" else image.copy()


def odd_photos(seed: int = 50, width: int = 40, height: int = 24) -> Dict[str, Tuple[bytes, bytes]]:
    """{name: (file, twin)}: files phones and editors write, and for each its upright, white-composited twin
    (a lossless PNG of what the file shows). A served model must answer the same for both."""
    pixels = _photo(seed, width, height)
    rgb = Image.fromarray(pixels)
    alpha = np.clip(np.mgrid[0:height, 0:width][1] * 255 // max(width - 1, 1), 0, 255).astype(np.uint8)
    plain_jpeg = _save(rgb, "JPEG", quality=92)
    files = {f"exif orientation {o}.jpg": with_exif_orientation(plain_jpeg, o, big_endian=o % 2 == 0,
                                                                after_app0=o in (3, 6))
             for o in range(1, 9)}
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    files.update({
        "progressive exif 6.jpg": with_exif_orientation(_save(rgb, "JPEG", progressive=True), 6),
        "progressive.jpg": _save(rgb, "JPEG", progressive=True),
        "rgba.png": _save(Image.fromarray(np.dstack([pixels, alpha]), "RGBA"), "PNG"),
        "la.png": _save(Image.fromarray(np.dstack([pixels[..., 0], alpha]), "LA"), "PNG"),
        "palette with transparency.png": _save(palette, "PNG", transparency=3),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "sixteen bit gray.png": _save(Image.fromarray(pixels[..., 1].astype(np.uint16) * 257 + 99), "PNG"),
        "grayscale.jpg": _save(rgb.convert("L"), "JPEG"),
        "grayscale.png": _save(rgb.convert("L"), "PNG"),
    })
    return {name: (data, _save(_upright_on_white(data), "PNG")) for name, data in files.items()}


def camera_photo(seed: int, width: int, height: int) -> Image.Image:
    """A photo-like picture of camera size: smooth structure drawn small, scaled up (cheap to generate)."""
    return Image.fromarray(_photo(seed, max(width // 10, 1), max(height // 10, 1))).resize(
        (width, height), Image.Resampling.BICUBIC)


def write_camera_corpus(root: Path, side: int = 1200) -> Dict[str, Expected]:
    """Larger-than-stored photos beside bad ones of the same size: with `max_stored_side` below `side`, the
    good ones are stored downscaled (sizes given as the original's, upright) and the truncated and corrupt
    ones, which the reduced-scale JPEG decoding reads too, are still quarantined."""
    width, height = side, side * 3 // 4
    photo = camera_photo(60, width, height)
    baseline = _save(photo, "JPEG", quality=90)
    progressive = _save(photo, "JPEG", quality=90, progressive=True)
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    files = {
        "cat/camera.jpg": (baseline, Expected(EXAMPLE, steps=("downscaled",), size=(width, height))),
        "cat/camera sideways.jpg": (with_exif_orientation(_save(camera_photo(61, width, height), "JPEG"), 6),
                                    Expected(EXAMPLE, steps=("exif_orientation", "downscaled"), size=(height, width))),
        "cat/camera progressive.jpg": (_save(camera_photo(62, width, height), "JPEG", progressive=True),
                                       Expected(EXAMPLE, steps=("downscaled",), size=(width, height))),
        "dog/camera transparent.png": (_save(rgba, "PNG"), Expected(
            EXAMPLE, steps=("alpha_composited_on_white", "downscaled"), size=(width, height))),
        "dog/camera.png": (_save(camera_photo(63, width, height), "PNG"),
                           Expected(EXAMPLE, steps=("downscaled",), size=(width, height))),
        "dog/camera truncated.jpg": (baseline[: len(baseline) * 2 // 3], Expected(QUARANTINED, "undecodable")),
        "dog/camera progressive truncated.jpg": (progressive[: len(progressive) // 2],
                                                 Expected(QUARANTINED, "undecodable")),
        "dog/camera truncated.png": (_save(photo, "PNG")[:-5000], Expected(QUARANTINED, "undecodable")),
    }
    for relative, (data, _) in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return {relative: expected for relative, (_, expected) in files.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_input_corpus")
    for relative, expected in sorted(write_corpus(target).items()):
        print(f"{expected.outcome:<12} {expected.reason or ','.join(expected.steps):<40} {relative}")
