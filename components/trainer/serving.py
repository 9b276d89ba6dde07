"""The exported SavedModel: the Transform graph and the model in one, behind three signatures.

- serving_default: a batch of encoded image bytes (what TF Serving's REST {"b64": ...} delivers) in;
  class probabilities and the top-k class ids, names and scores out.
- serving_tf_example: the same from serialized tf.Example records (what TFMA and InfraValidator send).
- transform_features: serialized tf.Example in, the transformed label out; TFMA uses it for labels.
"""
from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from components import features


def read_class_names(tft_output: tft.TFTransformOutput) -> List[str]:
    """Class names in id order: line i of the label vocabulary names class id i."""
    path = tft_output.vocabulary_file_by_name(features.LABEL_VOCABULARY_NAME)
    with tf.io.gfile.GFile(path, "rb") as handle:
        return [line.rstrip(b"\n").decode("utf-8") for line in handle if line.strip()]


def named_outputs(probabilities: tf.Tensor, class_names: tf.Tensor, top_k: int) -> Dict[str, tf.Tensor]:
    scores, ids = tf.math.top_k(probabilities, k=top_k)
    return {
        features.PROBABILITIES_KEY: probabilities,
        features.TOP_K_SCORES_KEY: scores,
        features.TOP_K_IDS_KEY: tf.cast(ids, tf.int64),
        features.TOP_K_NAMES_KEY: tf.gather(class_names, ids),
    }


def export_serving_model(model: tf_keras.Model, tft_output: tft.TFTransformOutput, class_names: List[str],
                         export_dir: str, top_k: int) -> None:
    # Attached to the model so that SavedModel tracks the Transform graph and its assets (the vocabulary).
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    names = tf.constant(class_names)
    k = min(top_k, len(class_names))

    def classify(raw_features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        transformed = model.tft_layer(raw_features)
        return named_outputs(model(transformed[features.TRANSFORMED_IMAGE_KEY], training=False), names, k)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.IMAGE_KEY)])
    def serve_image_bytes(image_bytes):
        # The raw feature spec holds one value per example: [batch] -> [batch, 1].
        return classify({features.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized):
        return classify(tf.io.parse_example(serialized, {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        # Only the label is fed: TFT prunes the image branch, so TFMA does not decode every image twice.
        raw = tf.io.parse_example(serialized, {features.LABEL_KEY: raw_spec[features.LABEL_KEY]})
        transformed = model.tft_layer(raw)
        return {features.TRANSFORMED_LABEL_KEY: transformed[features.TRANSFORMED_LABEL_KEY]}

    model.save(export_dir, save_format="tf", signatures={
        features.SERVING_SIGNATURE: serve_image_bytes.get_concrete_function(),
        features.TF_EXAMPLE_SIGNATURE: serve_tf_examples.get_concrete_function(),
        features.TRANSFORM_SIGNATURE: transform_features.get_concrete_function(),
    })
