"""run_fn measures its own steps: what the Trainer spends besides its two phases is written down, not guessed."""
import json
import logging

from tfx import v1 as tfx

from components import features
from components.trainer import run
from tests.test_kfp_multiworker import write_examples

TINY = {"image_size": 32, "alpha": 0.35, "weights": "none", "batch_size": 4, "phase1_epochs": 1, "phase2_epochs": 1,
        "max_steps_per_epoch": 2, "early_stopping_patience": 0}


def test_run_fn_writes_the_seconds_of_each_step_beside_a_history_of_phases_only(tmp_path, transform_output_dir,
                                                                                caplog):
    examples = write_examples(tmp_path / "examples.gz", per_class=3)
    model_run = tmp_path / "model_run"
    with caplog.at_level(logging.INFO):
        run.run_fn(tfx.components.FnArgs(
            train_files=[examples], eval_files=[examples], transform_output=transform_output_dir,
            serving_model_dir=str(tmp_path / "serving"), model_run_dir=str(model_run),
            custom_config={run.TRAINING_CONFIG_KEY: {**TINY, "tflite_eval_examples": 4},
                           run.CHECKPOINT_ROOT_KEY: str(tmp_path / "checkpoints")}))

    steps = json.loads((model_run / run.STEP_SECONDS_FILE).read_text())
    assert list(steps) == ["read inputs", "model build (weights loaded)", "data-quality features read",
                           "training (both phases)", "warm-up requests sampled", "SavedModel export",
                           "TFLite conversion and scoring"]
    assert all(seconds >= 0 for seconds in steps.values())
    history = json.loads((model_run / "history.json").read_text())
    # The run report draws every key of history.json as a training phase (pipeline/report/html_page.py).
    assert set(history) == {"phase1", "phase2"}
    assert steps["training (both phases)"] >= history["phase1"]["seconds"] + history["phase2"]["seconds"]
    assert "Trainer step 'SavedModel export' took" in caplog.text
    # The TFLite model is scored on a sample of the eval split of the configured size, not on all of it.
    tflite = json.loads((tmp_path / "serving" / features.TFLITE_DIR / features.TFLITE_EVALUATION_FILE_NAME).read_text())
    assert tflite["eval_examples"] == 4
