"""The in-graph decoder of the Transform graph (components/transform/image_decoding.py) against Pillow."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from components.transform import image_decoding
from tests import corpus


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_as_pillow_applies_it(orientation, big_endian):
    data = corpus.with_exif_orientation(_jpeg(corpus._photo(orientation, 24, 16)), orientation, big_endian)
    assert int(image_decoding.exif_orientation(tf.constant(data))) == orientation
    with Image.open(io.BytesIO(data)) as image:
        upright = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(image_decoding.decode_upright_rgb(tf.constant(data)).numpy(), upright)


def test_files_without_a_usable_orientation_read_as_upright():
    plain = _jpeg(corpus._photo(1, 24, 16))
    rotated = corpus.with_exif_orientation(plain, 6)
    png = io.BytesIO()
    Image.fromarray(corpus._photo(1, 24, 16)).save(png, format="PNG")
    for data in (plain, png.getvalue(), corpus.with_exif_orientation(plain, 9), b"\xff\xd8\xff",
                 *[rotated[:cut] for cut in range(2, 60, 3)]):  # Cut inside the EXIF segment: no error.
        assert int(image_decoding.exif_orientation(tf.constant(data))) in (1, 6)
    assert int(image_decoding.exif_orientation(tf.constant(corpus.with_exif_orientation(plain, 9)))) == 1
