"""The exported SavedModel: raw image bytes in, named classes out, through the real Transform graph."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import model as model_lib
from components.trainer.hparams import TrainingConfig
from components.trainer.serving import (InputLimits, export_serving_model, image_dimensions, read_class_names,
                                        tf_example)
from tests.conftest import COLORS, encode, noisy_color
from tests.serving_fixtures import serving_transform_output_dir  # noqa: F401 (fixture)

# Small enough that a test image can exceed them: 40x40 test images pass, 80x80 do not.
SMALL_LIMITS = InputLimits(max_bytes=20_000, max_pixels=64 * 64)


@pytest.fixture(scope="module")
def exported_dir(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    model = model_lib.build_model(len(class_names), TrainingConfig(image_size=32, alpha=0.35, weights="none")).model
    export_dir = str(tmp_path_factory.mktemp("export") / "1")
    export_serving_model(model, tft_output, class_names, export_dir, top_k=2, limits=SMALL_LIMITS,
                         warmup_images=_images())
    return export_dir


@pytest.fixture(scope="module")
def exported(exported_dir):
    with open(f"{exported_dir}/{features.ASSETS_EXTRA_DIR}/{features.MODEL_INFO_FILE_NAME}", "rb") as handle:
        class_names = json.loads(handle.read())["class_names"]
    return tf.saved_model.load(exported_dir), class_names


def _images():
    rng = np.random.default_rng(3)
    return [encode(noisy_color(COLORS["grün"], rng), "PNG"), encode(noisy_color(COLORS["blue sky"], rng), "JPEG")]


def test_serving_default_takes_encoded_bytes_and_names_classes(exported):
    loaded, class_names = exported
    serve = loaded.signatures[features.SERVING_SIGNATURE]
    assert list(serve.structured_input_signature[1]) == [features.IMAGE_KEY]
    outputs = serve(**{features.IMAGE_KEY: tf.constant(_images())})
    probabilities = outputs[features.PROBABILITIES_KEY].numpy()
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    names = outputs[features.TOP_K_NAMES_KEY].numpy()
    ids = outputs[features.TOP_K_IDS_KEY].numpy()
    assert names.shape == (2, 2)
    assert [[n.decode() for n in row] for row in names] == [[class_names[i] for i in row] for row in ids]
    np.testing.assert_allclose(outputs[features.TOP_K_SCORES_KEY].numpy()[:, 0], probabilities.max(axis=1))


def test_tf_example_signature_agrees_with_bytes_signature(exported):
    loaded, _ = exported
    images = _images()
    serialized = [tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))})).SerializeToString()
        for image in images]
    from_examples = loaded.signatures[features.TF_EXAMPLE_SIGNATURE](examples=tf.constant(serialized))
    from_bytes = loaded.signatures[features.SERVING_SIGNATURE](**{features.IMAGE_KEY: tf.constant(images)})
    np.testing.assert_allclose(from_examples[features.PROBABILITIES_KEY], from_bytes[features.PROBABILITIES_KEY],
                               rtol=1e-5)


def test_transform_features_signature_gives_label_ids(exported):
    loaded, class_names = exported
    serialized = [tf.train.Example(features=tf.train.Features(feature={
        features.LABEL_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()]))}))
        .SerializeToString() for name in ("blue sky", "red apple")]
    labels = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant(serialized))
    assert labels[features.TRANSFORMED_LABEL_KEY].numpy().tolist() == [class_names.index("blue sky"),
                                                                       class_names.index("red apple")]


def test_undecodable_bytes_fail_the_request(exported):
    loaded, _ = exported
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures[features.SERVING_SIGNATURE](**{features.IMAGE_KEY: tf.constant([b"not an image"])})


def _serve(loaded, images):
    return loaded.signatures[features.SERVING_SIGNATURE](**{features.IMAGE_KEY: tf.constant(images)})


def _png_header(width, height):
    """A PNG signature and IHDR chunk that declare width x height, with no pixel data behind them."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_header_dimensions_match_the_decoded_image(fmt):
    array = noisy_color(COLORS["grün"], np.random.default_rng(0), size=40)[:, :27]
    assert image_dimensions(tf.constant(encode(array, fmt))).numpy().tolist() == [40, 27]


def test_unknown_format_has_no_dimensions():
    assert image_dimensions(tf.constant(b"RIFF....WEBPVP8 ")).numpy().tolist() == [-1, -1]


@pytest.mark.parametrize("image, message", [
    (b"", "empty"),
    (b"not an image at all", "not a JPEG, PNG, GIF or BMP"),
    (b"\xff\xd8\xff\xe0 truncated jpeg", ""),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "declares no pixels"),
])
def test_malformed_images_fail_the_request_cleanly(exported, image, message):
    loaded, _ = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _serve(loaded, [_images()[0], image])
    # The model still serves the next request.
    assert _serve(loaded, _images())[features.PROBABILITIES_KEY].shape == (2, 3)


def test_oversized_images_are_refused_before_decoding(exported):
    loaded, _ = exported
    big = encode(noisy_color(COLORS["grün"], np.random.default_rng(0), size=80), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"more than {SMALL_LIMITS.max_pixels} pixels"):
        _serve(loaded, [big])
    # A decompression bomb: 60 bytes that declare 100,000 x 100,000 pixels (30 GB decoded).
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixels"):
        _serve(loaded, [_png_header(100_000, 100_000)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"larger than {SMALL_LIMITS.max_bytes} bytes"):
        _serve(loaded, [b"\xff\xd8\xff" + b"\0" * SMALL_LIMITS.max_bytes])


def test_tf_example_signature_enforces_the_same_limits(exported):
    loaded, _ = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
        loaded.signatures[features.TF_EXAMPLE_SIGNATURE](examples=tf.constant([tf_example(b"")]))


def test_warmup_requests_hold_real_images_for_both_signatures(exported_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    path = f"{exported_dir}/{features.ASSETS_EXTRA_DIR}/{features.WARMUP_FILE_NAME}"
    loaded = tf.saved_model.load(exported_dir)
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        features.SERVING_SIGNATURE, features.TF_EXAMPLE_SIGNATURE]
    for log in logs:
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert outputs[features.TOP_K_NAMES_KEY].shape[0] == 2


def test_model_info_names_classes_and_limits(exported_dir, exported):
    import json

    with open(f"{exported_dir}/{features.ASSETS_EXTRA_DIR}/{features.MODEL_INFO_FILE_NAME}") as handle:
        info = json.load(handle)
    assert info["class_names"] == exported[1]
    assert info["input_limits"] == {"max_bytes": SMALL_LIMITS.max_bytes, "max_pixels": SMALL_LIMITS.max_pixels}
