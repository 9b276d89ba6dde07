"""Decoding an encoded image to upright 8-bit RGB with TensorFlow ops only, as ingestion's Pillow code does.

Part of the Transform graph (preprocessing.py), so training and both serving signatures run exactly these
ops: the file a phone sends (a JPEG stored sideways with an EXIF orientation tag, a PNG with transparency)
becomes the tensor that training saw for the same picture. Only core TF ops (strings, decode, cond,
while_loop): TF Serving runs the graph without Python.

What ingestion (components/ingestion/image_tree.py) does with Pillow, and how it is matched here:
- EXIF orientation (JPEG APP1): parsed from the bytes below, then the same transpose Pillow's
  `ImageOps.exif_transpose` applies (PIL/ImageOps.py: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
  5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90).
- JPEG: `dct_method="INTEGER_ACCURATE"`, libjpeg's JDCT_ISLOW, which is what Pillow decodes with; TF's default
  (INTEGER_FAST) differs from Pillow by up to 4 levels. CMYK JPEGs then match Pillow's `convert("RGB")`.
- Alpha (RGBA, LA, palette with tRNS): composited onto white with Pillow's rounding
  (libImaging/AlphaComposite.c with an opaque white background: round((c * a + 255 * (255 - a)) / 255)).
- 16-bit PNG: TF's uint8 decode keeps the high byte, as ingestion does.
"""
import tensorflow as tf

_JPEG_SOI = b"\xff\xd8\xff"
_EXIF_HEADER = b"Exif\x00\x00"
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


def exif_orientation(encoded: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of one encoded image; 1 for anything but a JPEG with a valid tag."""
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), _JPEG_SOI)
    tiff = tf.cond(is_jpeg, lambda: _find_exif_tiff_header(encoded), lambda: tf.constant(-1))

    def read_orientation():
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

    return tf.cond(tiff >= 0, read_orientation, lambda: tf.constant(1))


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """[height, width, channels] turned upright for EXIF orientation 1-8, as Pillow's exif_transpose does.

    Plain reverse/transpose, not tf.image.rot90 or flip_*: those add Assert ops, which are stateful, so TF
    would no longer prune the image branch from a signature that asks only for the label (transform_features)."""
    transposed = tf.transpose(image, [1, 0, 2])
    return tf.switch_case(orientation - 1, [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # FLIP_LEFT_RIGHT
        lambda: tf.reverse(image, [0, 1]),  # ROTATE_180
        lambda: tf.reverse(image, [0]),  # FLIP_TOP_BOTTOM
        lambda: transposed,  # TRANSPOSE
        lambda: tf.reverse(transposed, [1]),  # ROTATE_270 (90 degrees clockwise)
        lambda: tf.reverse(transposed, [0, 1]),  # TRANSVERSE
        lambda: tf.reverse(transposed, [0]),  # ROTATE_90 (90 degrees counter-clockwise)
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
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), _JPEG_SOI)

    def decode_jpeg():
        pixels = tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")
        return apply_orientation(pixels, exif_orientation(encoded))

    def decode_other():
        return _to_rgb(tf.io.decode_image(encoded, channels=0, expand_animations=False))

    image = tf.cond(is_jpeg, decode_jpeg, decode_other)
    image.set_shape([None, None, 3])
    return image
