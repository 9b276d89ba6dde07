"""Decoding an encoded image to upright 8-bit RGB with TensorFlow ops only, as ingestion's Pillow code does.

Part of the Transform graph (preprocessing.py), so training and both serving signatures run exactly these
ops: the file a phone sends (a JPEG stored sideways with an EXIF orientation tag, a PNG with transparency)
becomes the tensor that training saw for the same picture. Only core TF ops (strings, decode, cond,
while_loop): TF Serving runs the graph without Python.

What ingestion (components/ingestion/image_tree.py) does with Pillow, and how it is matched here:
- EXIF orientation, from a JPEG's APP1 segment or a PNG's eXIf chunk (whose data is the TIFF header itself;
  Pillow reads it wherever it sits, PIL/PngImagePlugin.py chunk_eXIf and getexif): parsed from the bytes below,
  then the same transpose Pillow's `ImageOps.exif_transpose` applies (PIL/ImageOps.py: 2 FLIP_LEFT_RIGHT,
  3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90).
- GIF transparency: TF's GIF decoder paints the transparent colour index black on the first frame
  (tensorflow/core/lib/gif/gif_io.cc, `color_index == gcb.TransparentColor`), where Pillow composites it onto
  white. So the graph rewrites the bytes before decoding: that index's palette entry becomes white and the
  Graphic Control Extension's transparency flag is cleared, which decodes those pixels as white.
- WebP: TensorFlow 2.16 has no WebP decoder (decode_image reads BMP, GIF, JPEG, PNG), so neither this graph nor
  TF Serving can read one; the serving signatures refuse it (components/trainer/serving.py), and ingestion
  stores WebP files as PNG.
- JPEG: `dct_method="INTEGER_ACCURATE"`, libjpeg's JDCT_ISLOW, which is what Pillow decodes with; TF's default
  (INTEGER_FAST) differs from Pillow by up to 4 levels. CMYK JPEGs then match Pillow's `convert("RGB")`.
- Alpha (RGBA, LA, palette with tRNS): composited onto white with Pillow's rounding
  (libImaging/AlphaComposite.c with an opaque white background: round((c * a + 255 * (255 - a)) / 255)).
- 16-bit PNG: TF's uint8 decode keeps the high byte, as ingestion does.
"""
import tensorflow as tf

_JPEG_SOI = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GIF_SIGNATURE = b"GIF8"  # GIF87a or GIF89a
_EXIF_HEADER = b"Exif\x00\x00"
_PNG_EXIF_CHUNK = b"eXIf"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_PNG_CHUNK_CRC_BYTES = 4
_MAX_PNG_EXIF_CANDIDATES = 16  # "eXIf" inside compressed data is rare (2^-32 a byte); the chunk check rejects it.
# GIF layout (GIF89a specification): 6-byte signature, 7-byte logical screen descriptor (its packed byte at 10)
# and the global colour table; then extension blocks (0x21, label, data sub-blocks) before each image descriptor
# (0x2C, 10 bytes, packed byte at 9, then its local colour table).
_GIF_SCREEN_PACKED, _GIF_SCREEN_END = 10, 13
_GIF_EXTENSION, _GIF_IMAGE, _GIF_CONTROL_LABEL = 0x21, 0x2C, 0xF9
_GIF_IMAGE_PACKED, _GIF_IMAGE_HEADER_BYTES = 9, 10
# Graphic Control Extension: 21 F9 04 <packed> <delay, 2 bytes> <transparent index> 00.
_GIF_CONTROL_PACKED, _GIF_CONTROL_TRANSPARENT_INDEX = 3, 6
_MAX_GIF_BLOCKS = 4096  # Sub-blocks of 255 bytes included: ~1 MB of metadata before the first image.
_BYTE_STRINGS = tuple(bytes([value]) for value in range(256))
_WHITE_RGB = b"\xff\xff\xff"
_ORIENTATION_TAG = 0x0112
# The EXIF segment comes early (cameras write it first); a few segments are enough to find it.
_MAX_SEGMENTS_BEFORE_EXIF = 16
_MAX_IFD_ENTRIES = 256  # IFD0 of camera files holds a few dozen entries; more is a corrupt count.
_IFD_ENTRY_BYTES = 12
_WHITE = 255.0


def _bytes_at(encoded: tf.Tensor, position: tf.Tensor, count: int) -> tf.Tensor:
    """`count` bytes from `position` as int32, zero-padded past the end (never an out-of-range error)."""
    length = tf.strings.length(encoded)
    position = tf.clip_by_value(position, 0, length)
    window = tf.strings.join([tf.strings.substr(encoded, position, count), b"\0" * count])
    return tf.cast(tf.reshape(tf.io.decode_raw(tf.strings.substr(window, 0, count), tf.uint8), [count]), tf.int32)


def _unsigned(digits: tf.Tensor, little_endian: tf.Tensor) -> tf.Tensor:
    """Unsigned integer of the last axis of `digits` (bytes), in either byte order."""
    count = digits.shape[-1]
    big = tf.constant([256 ** (count - 1 - i) for i in range(count)], tf.int32)
    little = tf.constant([256 ** i for i in range(count)], tf.int32)
    return tf.where(little_endian, tf.reduce_sum(digits * little, -1), tf.reduce_sum(digits * big, -1))


def _find_exif_tiff_header(encoded: tf.Tensor) -> tf.Tensor:
    """Offset of the TIFF header inside a JPEG's APP1 "Exif" segment, or -1 when there is none.

    Walks the marker segments after SOI (FFxx, 2-byte big-endian length) up to the start of scan.
    """
    length = tf.strings.length(encoded)
    big_endian = tf.constant(False)

    def keep_walking(position, found, segments):
        return tf.logical_and(tf.logical_and(found < 0, segments < _MAX_SEGMENTS_BEFORE_EXIF), position + 4 <= length)

    def next_segment(position, found, segments):
        marker = _unsigned(_bytes_at(encoded, position, 2), big_endian)
        segment_length = _unsigned(_bytes_at(encoded, position + 2, 2), big_endian)
        is_exif = tf.logical_and(tf.equal(marker, 0xFFE1),
                                 tf.equal(tf.strings.substr(encoded, tf.minimum(position + 4, length), 6),
                                          _EXIF_HEADER))
        # Not a marker, start of scan, end of image, or a broken length: stop looking.
        stop = tf.logical_or(tf.logical_or(marker < 0xFF00, tf.equal(marker, 0xFFDA)), segment_length < 2)
        found = tf.where(is_exif, position + 10, found)
        segments = tf.where(stop, _MAX_SEGMENTS_BEFORE_EXIF, segments + 1)
        return position + 2 + segment_length, found, segments

    _, found, _ = tf.while_loop(keep_walking, next_segment, [tf.constant(2), tf.constant(-1), tf.constant(0)])
    return found


def _find_png_exif_tiff_header(encoded: tf.Tensor) -> tf.Tensor:
    """Offset of the TIFF header in a PNG's eXIf chunk (the chunk's data), or -1 when there is none.

    Found by its type name rather than by walking every chunk (a 12-Mpx PNG holds thousands of IDAT chunks),
    then checked as a chunk: a TIFF header right after the name, and a length that fits in the file."""
    length = tf.strings.length(encoded)
    pieces = tf.strings.split(encoded, sep=_PNG_EXIF_CHUNK)
    # Where the data after each occurrence of the name starts.
    starts = tf.cumsum(tf.strings.length(pieces[:-1]) + len(_PNG_EXIF_CHUNK))
    candidates = tf.minimum(tf.size(starts), _MAX_PNG_EXIF_CANDIDATES)
    big_endian = tf.constant(False)

    def is_chunk(start):
        chunk_length = _unsigned(_bytes_at(encoded, start - 8, 4), big_endian)
        header = tf.strings.substr(encoded, start, 4)
        is_tiff = tf.logical_or(tf.equal(header, _TIFF_HEADERS[0]), tf.equal(header, _TIFF_HEADERS[1]))
        fits = tf.logical_and(chunk_length >= 8, start + chunk_length + _PNG_CHUNK_CRC_BYTES <= length)
        return tf.logical_and(tf.logical_and(is_tiff, fits), start >= len(_PNG_SIGNATURE) + 8)

    def next_candidate(index, found):
        start = starts[index]
        return index + 1, tf.where(is_chunk(start), start, found)

    _, found = tf.while_loop(lambda index, found: tf.logical_and(found < 0, index < candidates), next_candidate,
                             [tf.constant(0), tf.constant(-1)])
    return found


def _exif_tiff_header(encoded: tf.Tensor) -> tf.Tensor:
    """Offset of the EXIF TIFF header of a JPEG (APP1) or PNG (eXIf), or -1."""
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, len(_JPEG_SOI)), _JPEG_SOI)
    is_png = tf.equal(tf.strings.substr(encoded, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)
    return tf.cond(is_jpeg, lambda: _find_exif_tiff_header(encoded),
                   lambda: tf.cond(is_png, lambda: _find_png_exif_tiff_header(encoded), lambda: tf.constant(-1)))


def _orientation_in_tiff(encoded: tf.Tensor, tiff: tf.Tensor) -> tf.Tensor:
    """The orientation tag (1-8) of IFD0 of the TIFF structure at `tiff`; 1 when absent or out of range."""
    little_endian = tf.equal(tf.strings.substr(encoded, tf.minimum(tiff, tf.strings.length(encoded)), 2), b"II")
    ifd = tiff + _unsigned(_bytes_at(encoded, tiff + 4, 4), little_endian)
    entry_count = tf.minimum(_unsigned(_bytes_at(encoded, ifd, 2), little_endian), _MAX_IFD_ENTRIES)
    entries = tf.reshape(_bytes_at(encoded, ifd + 2, _MAX_IFD_ENTRIES * _IFD_ENTRY_BYTES),
                         [_MAX_IFD_ENTRIES, _IFD_ENTRY_BYTES])
    tags = _unsigned(entries[:, 0:2], little_endian)
    values = _unsigned(entries[:, 8:10], little_endian)  # A SHORT value sits in the first 2 value bytes.
    matches = tf.logical_and(tf.equal(tags, _ORIENTATION_TAG), tf.range(_MAX_IFD_ENTRIES) < entry_count)
    value = tf.reduce_max(tf.where(matches, values, 0))
    return tf.where(tf.logical_and(value >= 1, value <= 8), value, 1)


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of one encoded image; 1 for anything but a JPEG or PNG with a valid tag."""
    tiff = _exif_tiff_header(encoded)
    return tf.cond(tiff >= 0, lambda: _orientation_in_tiff(encoded, tiff), lambda: tf.constant(1))


def _gif_colour_table_bytes(packed: tf.Tensor) -> tf.Tensor:
    """Size of the colour table a GIF descriptor's packed byte announces (flag 0x80, size 3 * 2^(n+1))."""
    present = tf.bitwise.bitwise_and(packed, 0x80) > 0
    return tf.where(present, 3 * tf.bitwise.left_shift(1, tf.bitwise.bitwise_and(packed, 7) + 1), 0)


def _gif_first_image_blocks(encoded: tf.Tensor):
    """Positions of the last Graphic Control Extension before the first image and of that image's descriptor
    (-1 when absent): the extension that applies to the first frame (giflib DGifSavedExtensionToGCB and
    Pillow's GifImagePlugin both let the last one win)."""
    length = tf.strings.length(encoded)
    screen_packed = _bytes_at(encoded, tf.constant(_GIF_SCREEN_PACKED), 1)[0]
    start = _GIF_SCREEN_END + _gif_colour_table_bytes(screen_packed)

    def keep_walking(position, in_sub_blocks, control, image, steps):
        return tf.logical_and(tf.logical_and(image < 0, steps < _MAX_GIF_BLOCKS), position < length)

    def next_block(position, in_sub_blocks, control, image, steps):
        introducer, label = tf.unstack(_bytes_at(encoded, position, 2))
        is_extension = tf.logical_and(tf.logical_not(in_sub_blocks), tf.equal(introducer, _GIF_EXTENSION))
        is_image = tf.logical_and(tf.logical_not(in_sub_blocks), tf.equal(introducer, _GIF_IMAGE))
        is_control = tf.logical_and(is_extension, tf.equal(label, _GIF_CONTROL_LABEL))
        # In sub-blocks, `introducer` is the next sub-block's size; 0 ends the extension.
        next_position = tf.where(in_sub_blocks, position + 1 + introducer,
                                 tf.where(is_extension, position + 2, position))
        # Neither an extension nor an image outside sub-blocks: the trailer or a broken file; stop.
        broken = tf.logical_not(tf.logical_or(tf.logical_or(in_sub_blocks, is_extension), is_image))
        return (next_position, tf.logical_or(tf.logical_and(in_sub_blocks, introducer > 0), is_extension),
                tf.where(is_control, position, control), tf.where(is_image, position, image),
                tf.where(broken, _MAX_GIF_BLOCKS, steps + 1))

    _, _, control, image, _ = tf.while_loop(
        keep_walking, next_block, [start, tf.constant(False), tf.constant(-1), tf.constant(-1), tf.constant(0)])
    return control, image, screen_packed


def _replace_bytes(encoded: tf.Tensor, position: tf.Tensor, replacement, count: int) -> tf.Tensor:
    """`encoded` with the `count` bytes at `position` replaced by `replacement` (as many bytes)."""
    length = tf.strings.length(encoded)
    return tf.strings.join([tf.strings.substr(encoded, 0, position), replacement,
                            tf.strings.substr(encoded, position + count, length - position - count)])


def _gif_transparency_on_white(encoded: tf.Tensor) -> tf.Tensor:
    """A GIF whose first frame's transparent colour index is white and no longer transparent: TF then decodes
    the transparent pixels as white, which is what compositing them onto white gives (alpha is 0 or 255)."""
    control, image, screen_packed = _gif_first_image_blocks(encoded)
    control_packed = _bytes_at(encoded, control + _GIF_CONTROL_PACKED, 1)[0]
    index = _bytes_at(encoded, control + _GIF_CONTROL_TRANSPARENT_INDEX, 1)[0]
    local_table = _gif_colour_table_bytes(_bytes_at(encoded, image + _GIF_IMAGE_PACKED, 1)[0])
    table = tf.where(local_table > 0, image + _GIF_IMAGE_HEADER_BYTES, _GIF_SCREEN_END)
    table_bytes = tf.where(local_table > 0, local_table, _gif_colour_table_bytes(screen_packed))
    whole_control = control + _GIF_CONTROL_TRANSPARENT_INDEX < tf.strings.length(encoded)
    transparent = tf.logical_and(tf.logical_and(control >= 0, image >= 0),
                                 tf.logical_and(whole_control, tf.bitwise.bitwise_and(control_packed, 1) > 0))
    in_table = tf.logical_and(3 * index + 3 <= table_bytes, table + 3 * index + 3 <= tf.strings.length(encoded))

    def on_white():
        opaque = tf.gather(tf.constant(_BYTE_STRINGS), tf.bitwise.bitwise_and(control_packed, 0xFE))
        flag_cleared = _replace_bytes(encoded, control + _GIF_CONTROL_PACKED, opaque, 1)
        return _replace_bytes(flag_cleared, table + 3 * index, _WHITE_RGB, len(_WHITE_RGB))

    return tf.cond(tf.logical_and(transparent, in_table), on_white, lambda: encoded)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """[height, width, channels] turned upright for EXIF orientation 1-8, as Pillow's exif_transpose does.

    Plain reverse/transpose, not tf.image.rot90 or flip_*: those add Assert ops, which are stateful, so TF
    would no longer prune the image branch from a signature that asks only for the label (transform_features)."""
    def transposed():  # Inside the branches: built outside, every upright image paid a full transpose.
        return tf.transpose(image, [1, 0, 2])

    return tf.switch_case(orientation - 1, [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # FLIP_LEFT_RIGHT
        lambda: tf.reverse(image, [0, 1]),  # ROTATE_180
        lambda: tf.reverse(image, [0]),  # FLIP_TOP_BOTTOM
        transposed,  # TRANSPOSE
        lambda: tf.reverse(transposed(), [1]),  # ROTATE_270 (90 degrees clockwise)
        lambda: tf.reverse(transposed(), [0, 1]),  # TRANSVERSE
        lambda: tf.reverse(transposed(), [0]),  # ROTATE_90 (90 degrees counter-clockwise)
    ])


def _composite_on_white(pixels: tf.Tensor) -> tf.Tensor:
    """[h, w, 2 or 4] (gray or RGB, then alpha) onto white, rounded back to 8 bits like Pillow."""
    values = tf.cast(pixels, tf.float32)
    color, alpha = values[..., :-1], values[..., -1:]
    composited = tf.round((color * alpha + _WHITE * (_WHITE - alpha)) / _WHITE)
    return tf.cast(composited, tf.uint8)


def _to_rgb(pixels: tf.Tensor) -> tf.Tensor:
    """Any decoded channel count (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as RGB without alpha."""
    channels = tf.shape(pixels)[-1]
    opaque = tf.cond(tf.equal(channels % 2, 0), lambda: _composite_on_white(pixels), lambda: pixels)
    # tf.tile, not tf.image.grayscale_to_rgb, which adds a (stateful) Assert op; see apply_orientation.
    return tf.cond(tf.equal(tf.shape(opaque)[-1], 1), lambda: tf.tile(opaque, [1, 1, 3]), lambda: opaque)


def decode_upright_rgb(encoded: tf.Tensor) -> tf.Tensor:
    """One encoded JPEG, PNG, GIF (first frame) or BMP as upright uint8 [height, width, 3]."""
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, len(_JPEG_SOI)), _JPEG_SOI)
    is_gif = tf.equal(tf.strings.substr(encoded, 0, len(_GIF_SIGNATURE)), _GIF_SIGNATURE)

    def decode_jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def decode_other():
        readable = tf.cond(is_gif, lambda: _gif_transparency_on_white(encoded), lambda: encoded)
        return _to_rgb(tf.io.decode_image(readable, channels=0, expand_animations=False))

    image = apply_orientation(tf.cond(is_jpeg, decode_jpeg, decode_other), exif_orientation(encoded))
    image.set_shape([None, None, 3])
    return image
