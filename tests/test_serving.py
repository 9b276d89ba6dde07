"""The exported SavedModel: raw image bytes in, named classes out, through the real Transform graph."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import model as model_lib
from components.trainer.hparams import TrainingConfig
from components.trainer.serving import export_serving_model, read_class_names
from tests.conftest import COLORS, encode, noisy_color


@pytest.fixture(scope="module")
def exported(transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(transform_output_dir)
    class_names = read_class_names(tft_output)
    model = model_lib.build_model(len(class_names), TrainingConfig(image_size=32, alpha=0.35, weights="none")).model
    export_dir = str(tmp_path_factory.mktemp("export") / "1")
    export_serving_model(model, tft_output, class_names, export_dir, top_k=2)
    return tf.saved_model.load(export_dir), class_names


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
