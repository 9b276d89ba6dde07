"""preprocessing_fn, run through tf.Transform on real encoded images (the session's transform_output_dir)."""
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer.serving import read_class_names
from components.transform.preprocessing import decode_and_scale, preprocessing_fn
from tests.conftest import encode


def test_vocabulary_orders_class_names_by_frequency(transform_output_dir):
    assert read_class_names(tft.TFTransformOutput(transform_output_dir)) == ["red apple", "grün", "blue sky"]


def test_transform_graph_decodes_scales_and_maps_labels(transform_output_dir):
    output = tft.TFTransformOutput(transform_output_dir)
    white = np.full((10, 20, 3), 255, np.uint8)
    black = np.zeros((50, 30, 3), np.uint8)
    raw = {
        features.IMAGE_KEY: tf.constant([[encode(white, "PNG")], [encode(black, "JPEG")]]),
        features.LABEL_KEY: tf.constant([["grün".encode()], [b"red apple"]]),
    }
    transformed = output.transform_features_layer()(raw)
    images = transformed[features.TRANSFORMED_IMAGE_KEY].numpy()
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.float32
    # MobileNetV2's scaling: 255 -> 1.0 and 0 -> -1.0 (not the [0, 1] of the classic recipe).
    np.testing.assert_allclose(images[0], 1.0, atol=1e-5)
    np.testing.assert_allclose(images[1], -1.0, atol=0.02)  # JPEG may shift black by a level or two.
    assert transformed[features.TRANSFORMED_LABEL_KEY].numpy().tolist() == [1, 0]


def test_serving_without_label_still_transforms_images(transform_output_dir):
    layer = tft.TFTransformOutput(transform_output_dir).transform_features_layer()
    transformed = layer({features.IMAGE_KEY: tf.constant([[encode(np.zeros((8, 8, 3), np.uint8), "PNG")]])})
    assert transformed[features.TRANSFORMED_IMAGE_KEY].shape == (1, 32, 32, 3)
    assert features.TRANSFORMED_LABEL_KEY not in transformed


def test_grayscale_and_gif_become_three_channels():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for data in (encode(gray, "PNG"), encode(np.stack([gray] * 3, -1), "GIF")):
        image = decode_and_scale(tf.constant(data), 16).numpy()
        assert image.shape == (16, 16, 3)
        assert -1.0 <= image.min() and image.max() <= 1.0


def test_tracing_preprocessing_fn_transpiles_none_of_the_decoding_with_autograph(monkeypatch):
    """tf.map_fn ran decode_and_scale through AutoGraph, which rewrote every decoding function from source on a
    trace (2.6-2.8 s of CPU in Transform's executor) though all their branches are tf.cond/tf.while_loop."""
    from tensorflow.python.autograph.impl import api as autograph_api

    transpiled = []
    original = autograph_api._convert_actual
    monkeypatch.setattr(autograph_api, "_convert_actual",
                        lambda entity, context: transpiled.append(entity) or original(entity, context))
    with tf.Graph().as_default():
        preprocessing_fn({features.IMAGE_KEY: tf.compat.v1.placeholder(tf.string, [None, 1]),
                          features.LABEL_KEY: tf.compat.v1.placeholder(tf.string, [None, 1])}, {"image_size": 16})
    decoding = [entity for entity in transpiled
                if entity.__module__ == "components.transform.image_decoding"
                or entity is getattr(decode_and_scale, "__wrapped__", decode_and_scale)]
    assert decoding == []


def test_decoding_without_autograph_gives_the_same_pixels_as_with_it():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    images = tf.constant([encode(rgb, "PNG"), encode(rgb, "JPEG"), encode(rgb, "BMP"), encode(gray, "PNG"),
                          encode(rgb, "GIF"), encode(np.dstack([rgb, gray]), "PNG")])

    def decoded(decode):
        spec = tf.TensorSpec([16, 16, 3], tf.float32)
        return tf.function(lambda encoded: tf.map_fn(lambda one: decode(one, 16), encoded,
                                                     fn_output_signature=spec))(images).numpy()

    np.testing.assert_array_equal(decoded(decode_and_scale), decoded(decode_and_scale.__wrapped__))
