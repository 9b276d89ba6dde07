"""`training_config` is a KFP pipeline parameter edited by hand per run: a typo must stop the run, not train
with the defaults."""
import json

import pytest

from components.trainer.hparams import TrainingConfig


def test_a_misspelled_training_key_is_an_error_naming_it_and_the_known_keys():
    with pytest.raises(ValueError, match=r"Unknown training setting\(s\) \['phase1_epoch'\]") as raised:
        TrainingConfig.from_json_dict({"phase1_epoch": 1, "weights": "none"})
    assert "'phase1_epochs'" in str(raised.value) and "'image_size'" in str(raised.value)


def test_a_parameter_value_with_only_some_keys_keeps_the_other_defaults():
    config = TrainingConfig.from_json_dict(json.loads('{"phase1_epochs": 1, "image_size": 32}'))
    assert (config.phase1_epochs, config.image_size, config.phase2_epochs) == (1, 32, TrainingConfig().phase2_epochs)
