"""MobileNetV2 transfer-learning model and its two training phases, as plain Keras 2 (tf_keras) code.

tf_keras is imported explicitly: with TF 2.16, `tf.keras` is Keras 2 or Keras 3 depending on import
order (tensorflow_transform sets TF_USE_LEGACY_KERAS), and TFT's Keras layer is a tf_keras layer.
"""
import logging
from typing import Tuple

import tf_keras

from components import features
from components.trainer import weights as weights_lib
from components.trainer.hparams import LAST_BLOCK, TrainingConfig


def build_base(config: TrainingConfig) -> tf_keras.Model:
    input_shape = (config.image_size, config.image_size, 3)
    choice = config.weights.lower()
    if choice == weights_lib.IMAGENET:
        try:
            return tf_keras.applications.MobileNetV2(
                input_shape=input_shape, alpha=config.alpha, include_top=False, weights="imagenet")
        except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...") offline.
            raise weights_lib.WeightsUnavailableError(weights_lib.imagenet_unavailable_message(error)) from error
    base = tf_keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=config.alpha, include_top=False, weights=None)
    if choice != weights_lib.NO_WEIGHTS:
        weights_lib.load_backbone_weights(base, config.weights)
    return base


def build_model(num_classes: int, config: TrainingConfig) -> Tuple[tf_keras.Model, tf_keras.Model]:
    """Returns (model, base): base (frozen) -> global average pooling -> dropout -> softmax head."""
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, the data has {num_classes}.")
    tf_keras.utils.set_random_seed(config.seed)
    base = build_base(config)
    base.trainable = False
    inputs = tf_keras.Input(shape=(config.image_size, config.image_size, 3), name=features.TRANSFORMED_IMAGE_KEY)
    # training=False keeps every BatchNormalization layer of the base in inference mode, in both phases:
    # its moving statistics stay those of pretraining even once its layers are unfrozen. Letting a small
    # data set's batch statistics replace them is what collapses the seed recipe's fine-tuning.
    x = base(inputs, training=False)
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = tf_keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = tf_keras.layers.Dense(num_classes, activation="softmax", name=features.PROBABILITIES_KEY)(x)
    return tf_keras.Model(inputs, outputs, name="mobilenetv2_classifier"), base


def first_layer_of_block(base: tf_keras.Model, block: int) -> int:
    """Index of the first layer of MobileNetV2 block `block`; LAST_BLOCK + 1 means the final 1x1 conv."""
    prefix = f"block_{block}_" if block <= LAST_BLOCK else "Conv_1"
    for index, layer in enumerate(base.layers):
        if layer.name.startswith(prefix):
            return index
    raise ValueError(f"This base has no layer starting with {prefix!r}: is it a Keras MobileNetV2?")


def unfreeze_top(base: tf_keras.Model, from_block: int) -> int:
    """Makes the layers from block `from_block` to the top trainable; returns how many layers that is."""
    start = first_layer_of_block(base, from_block)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= start
    trainable = len(base.layers) - start
    logging.info("Phase 2 unfreezes %d of %d base layers, from %s", trainable, len(base.layers),
                 base.layers[start].name)
    return trainable


def compile_for_phase(model: tf_keras.Model, learning_rate: float) -> None:
    """Each phase gets a fresh optimizer: recompiling is what makes Keras see the new trainable set."""
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(),
        metrics=[tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
