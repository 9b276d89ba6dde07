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

PHOTOS = corpus.odd_photos()
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


@pytest.mark.parametrize("orientation", [6, 8])
def test_downscaled_photo_reaches_the_model_as_the_served_original_does(transform_layer, orientation):
    # Detail a camera records at 600x400 (not pixel-level noise, which a 32x32 input cannot show anyway).
    photo = Image.fromarray(corpus._photo(7, 120, 80)).resize((600, 400), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=92)
    original = corpus.with_exif_orientation(buffer.getvalue(), orientation)
    checked = image_tree.check_image(original, image_tree.Limits(max_stored_side=128))
    with Image.open(io.BytesIO(checked.encoded)) as stored:
        assert (stored.format, stored.size) == ("JPEG", (85, 128))  # Upright, long side 128.
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
