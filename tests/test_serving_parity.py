"""Train/serve parity for photos: a file a phone or an editor writes (sideways with an EXIF orientation tag,
transparent, palette, CMYK, 16-bit, grayscale, progressive) reaches MobileNetV2 as the same tensor when it is
served as when ingestion stored it for training, and the exported model answers the same for it as for its
upright, white-composited twin.

Runs the real code on both sides: ingestion's check_image (Pillow), the Transform graph analyzed by
tf.Transform, and the SavedModel export_serving_model writes, called through its signatures as TF Serving
calls them (no TF Serving binary installs here; the signatures are the graph it would run).
"""
import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from PIL import Image

from components import features
from components.ingestion import image_tree
from components.trainer.serving import export_serving_model, read_class_names, tf_example
from tests import corpus
from tests.serving_fixtures import serving_transform_output_dir  # noqa: F401 (fixture)

_APP1_HEADER_BYTES = 10  # FFE1 marker, 2-byte length, "Exif\0\0": what a JPEG puts before the TIFF header.


def _png_with_exif(png: bytes, orientation: int, big_endian: bool, after_image_data: bool = False) -> bytes:
    """The PNG with an eXIf chunk (a TIFF header and IFD0, as in a JPEG's APP1 after "Exif\\0\\0") before its
    first IDAT, as PNG writers put it, or after its last IDAT, where Pillow reads it too (on load)."""
    tiff = corpus.exif_app1(orientation, big_endian)[_APP1_HEADER_BYTES:]
    chunk = corpus._png_chunk(b"eXIf", tiff)
    position = png.index(b"IEND") - 4 if after_image_data else png.index(b"IDAT") - 4
    return png[:position] + chunk + png[position:]


def _png_with_decoy_exif(png: bytes) -> bytes:
    """A text chunk whose words hold "eXIf" and a TIFF header: not an eXIf chunk, so no orientation (Pillow)."""
    text = b"Comment\0bytes eXIfMM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0"
    position = png.index(b"IDAT") - 4
    return png[:position] + corpus._png_chunk(b"tEXt", text) + png[position:]


def _transparent_gif(pixels: np.ndarray, with_comment: bool) -> bytes:
    """A palette GIF whose transparent index holds a dark colour (TF alone would paint it black, Pillow's
    composite makes it white), optionally with a comment extension (sub-blocks to walk) before the image."""
    palette = Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    options = {"comment": b"x" * 600} if with_comment else {}
    data = corpus._save(palette, "GIF", transparency=5, **options)
    assert palette.getpalette()[15:18] != [255, 255, 255]
    return data


def _with_local_colour_table(gif: bytes) -> bytes:
    """The GIF with its global colour table moved into the first image's local one (the table the decoder
    must use, and the one the graph must make the transparent entry white in)."""
    screen_packed = gif[10]
    table_bytes = 3 * 2 ** ((screen_packed & 7) + 1)
    table, rest = gif[13:13 + table_bytes], gif[13 + table_bytes:]
    image = rest.index(b"\x2c")
    assert rest[image - 8:image - 6] == b"\x21\xf9"  # Pillow writes only the control extension before it.
    descriptor = rest[image:image + 9] + bytes([0x80 | (screen_packed & 7)])
    return (gif[:10] + bytes([screen_packed & 0x7F]) + gif[11:13] + rest[:image] + descriptor + table
            + rest[image + 10:])


def _more_formats(seed: int = 51, width: int = 40, height: int = 24):
    """{name: (file, twin)} beyond JPEG: PNG with an eXIf orientation, transparent GIF."""
    pixels = corpus._photo(seed, width, height)
    png = corpus._save(Image.fromarray(pixels), "PNG")
    rgba = corpus._save(Image.fromarray(np.dstack([pixels, pixels[..., 0]]), "RGBA"), "PNG")
    files = {f"png exif orientation {o}.png": _png_with_exif(png, o, big_endian=o % 2 == 0) for o in range(1, 9)}
    files.update({
        "png exif 6 after the image data.png": _png_with_exif(png, 6, big_endian=False, after_image_data=True),
        "rgba png exif 8.png": _png_with_exif(rgba, 8, big_endian=True),
        "png with eXIf in a text chunk.png": _png_with_decoy_exif(png),
        "transparent.gif": _transparent_gif(pixels, with_comment=False),
        "transparent with comment.gif": _transparent_gif(pixels, with_comment=True),
        "transparent with local colour table.gif": _with_local_colour_table(_transparent_gif(pixels, False)),
    })
    return {name: (data, corpus._save(corpus._upright_on_white(data), "PNG")) for name, data in files.items()}


PHOTOS = {**corpus.odd_photos(), **_more_formats()}
# Lossless cases: the same 8-bit pixels on both sides, so the model inputs agree to float rounding.
EXACT_TOLERANCE = 1e-5
# A downscaled example went through Lanczos to the stored size and a JPEG re-encode before Transform's
# resize; served, the original is resized once. Measured on the 600x400 photo below at 32x32: mean 0.006,
# max 0.04 (on the [-1, 1] scale, where one 8-bit level is 0.008).
DOWNSCALED_MEAN_TOLERANCE = 0.01
DOWNSCALED_MAX_TOLERANCE = 0.08
# The target for the largest probability gap between a file and its upright twin.
MAX_PROBABILITY_GAP = 0.01


@pytest.fixture(scope="module")
def transform_layer(serving_transform_output_dir):
    return tft.TFTransformOutput(serving_transform_output_dir).transform_features_layer()


def _model_inputs(layer, images):
    """What MobileNetV2 is fed for each encoded image: the Transform graph's image output."""
    transformed = layer({features.IMAGE_KEY: tf.constant([[image] for image in images])})
    return transformed[features.TRANSFORMED_IMAGE_KEY].numpy()


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_served_model_input_equals_what_training_saw(transform_layer, name):
    original, twin = PHOTOS[name]
    stored = image_tree.check_image(original, image_tree.Limits()).encoded
    served, trained, upright = _model_inputs(transform_layer, [original, stored, twin])
    np.testing.assert_allclose(served, trained, atol=EXACT_TOLERANCE, err_msg=name)
    np.testing.assert_allclose(served, upright, atol=EXACT_TOLERANCE, err_msg=name)


@pytest.mark.parametrize("orientation,container", [(6, "JPEG"), (8, "JPEG"), (6, "PNG")])
def test_downscaled_photo_reaches_the_model_as_the_served_original_does(transform_layer, orientation, container):
    # Detail a camera records at 600x400 (not pixel-level noise, which a 32x32 input cannot show anyway).
    photo = Image.fromarray(corpus._photo(7, 120, 80)).resize((600, 400), Image.Resampling.BICUBIC)
    if container == "PNG":
        original = _png_with_exif(corpus._save(photo, "PNG"), orientation, big_endian=False)
    else:
        original = corpus.with_exif_orientation(corpus._save(photo, "JPEG", quality=92), orientation)
    checked = image_tree.check_image(original, image_tree.Limits(max_stored_side=128))
    with Image.open(io.BytesIO(checked.encoded)) as stored:
        # Upright, long side at most 128 (a JPEG draft or a box reduction may land below it).
        assert stored.format == "JPEG" and stored.height > stored.width and max(stored.size) <= 128, stored.size
    assert (checked.width, checked.height) == (400, 600)  # The original's upright size stays in the example.
    served, trained = _model_inputs(transform_layer, [original, checked.encoded])
    difference = np.abs(served - trained)
    assert difference.mean() < DOWNSCALED_MEAN_TOLERANCE and difference.max() < DOWNSCALED_MAX_TOLERANCE, \
        (difference.mean(), difference.max())


def _pixel_sensitive_classifier(class_count: int) -> tf_keras.Model:
    """Every input pixel weighs on the logits (random dense layer), so a turned or flipped image, or a
    transparent one composited on black instead of white, scores differently: the parity check has teeth."""
    return tf_keras.Sequential([
        tf_keras.layers.InputLayer((32, 32, 3)), tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(class_count, activation="softmax",
                              kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.05, seed=1))])


@pytest.fixture(scope="module")
def served(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    export_dir = str(tmp_path_factory.mktemp("parity_export") / "1")
    export_serving_model(_pixel_sensitive_classifier(len(class_names)), tft_output, class_names, export_dir,
                         top_k=1)
    return tf.saved_model.load(export_dir)


def _probabilities(loaded, images, signature):
    if signature == features.SERVING_SIGNATURE:
        outputs = loaded.signatures[signature](**{features.IMAGE_KEY: tf.constant(images)})
    else:
        outputs = loaded.signatures[signature](examples=tf.constant([tf_example(image) for image in images]))
    return outputs[features.PROBABILITIES_KEY].numpy()


@pytest.mark.parametrize("signature", [features.SERVING_SIGNATURE, features.TF_EXAMPLE_SIGNATURE])
def test_served_model_answers_the_same_for_a_file_and_its_upright_twin(served, signature):
    names = sorted(PHOTOS)
    files = _probabilities(served, [PHOTOS[name][0] for name in names], signature)
    twins = _probabilities(served, [PHOTOS[name][1] for name in names], signature)
    gaps = dict(zip(names, np.abs(files - twins).max(axis=1)))
    assert max(gaps.values()) < MAX_PROBABILITY_GAP, gaps


def test_the_classifier_tells_a_sideways_picture_from_an_upright_one(served):
    """Without the orientation applied, the same model's answers differ by far more than the gap allowed."""
    sideways = PHOTOS["exif orientation 1.jpg"][1]  # The pixels as stored, which orientation 6 turns.
    upright = PHOTOS["exif orientation 6.jpg"][1]
    gap = np.abs(np.subtract(*_probabilities(served, [sideways, upright], features.SERVING_SIGNATURE))).max()
    assert gap > 10 * MAX_PROBABILITY_GAP


def test_gif_transparency_and_png_orientation_change_the_picture():
    """The new cases are not trivially equal to what a plain decode gives: without the graph's handling, the
    transparent GIF's pixels and the turned PNG would differ from their twins."""
    for name in ("transparent.gif", "png exif orientation 6.png", "png exif 6 after the image data.png"):
        original, twin = PHOTOS[name]
        plain = tf.io.decode_image(original, channels=3, expand_animations=False).numpy()
        upright = tf.io.decode_image(twin, channels=3, expand_animations=False).numpy()
        assert plain.shape != upright.shape or np.abs(plain.astype(int) - upright).max() > 100, name


@pytest.mark.parametrize("signature", [features.SERVING_SIGNATURE, features.TF_EXAMPLE_SIGNATURE])
def test_served_model_refuses_webp_with_a_clear_error(served, signature):
    """TensorFlow 2.16, and so TF Serving 2.16, has no WebP decoder: the request fails with INVALID_ARGUMENT
    naming the formats it reads, and clients convert WebP first (README). Ingestion stores WebP as PNG."""
    webp = corpus._save(Image.fromarray(corpus._photo(3, 40, 24)), "WEBP", lossless=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG, GIF or BMP image"):
        _probabilities(served, [webp], signature)
