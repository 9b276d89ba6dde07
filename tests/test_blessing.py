"""The gate: TFX's real Evaluator executor (TFMA on Beam) with our config, then our Pusher executor.

Models are small Keras classifiers behind the real export (Transform graph, signatures, limits): the
gate and the push are what is tested here, not MobileNetV2 (tests/test_pipeline_e2e.py runs that).
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from components import features
from components.evaluation import eval_config as eval_config_lib
from components.evaluation.component import Executor as EvaluatorExecutor
from components.evaluation.component import REASONS_PROPERTY
from components.pusher.component import Executor as PusherExecutor
from components.trainer.serving import export_serving_model, read_class_names, tf_example
from pipeline.local_runner import LOCAL_BEAM_ARGS
from serving.serving_dir import MODEL_CONFIG_FILE
from tests.conftest import COLORS
from tests.serving_fixtures import labelled_images, serving_transform_output_dir, small_classifier  # noqa: F401

LOW_BAR = dict(min_accuracy=0.5, max_accuracy_drop=0.01, min_class_recall=0.5)


@pytest.fixture(scope="module")
def models(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    artifacts = {}
    for name, steps in (("trained", 60), ("zero_steps", 0)):
        model = standard_artifacts.Model()
        model.uri = str(tmp_path_factory.mktemp(name))
        export_serving_model(small_classifier(class_names, steps), tft_output, class_names,
                             os.path.join(model.uri, "Format-Serving"), top_k=2)
        artifacts[name] = model
    return artifacts


def write_eval_examples(directory, classes):
    examples = standard_artifacts.Examples()
    examples.uri = str(directory)
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    os.makedirs(os.path.join(examples.uri, "Split-eval"))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-eval", "data.gz"), "GZIP") as writer:
        for image, label in labelled_images(5, seed=20):
            if label not in classes:
                continue
            example = tf.train.Example.FromString(tf_example(image))
            example.features.feature[features.LABEL_KEY].bytes_list.value.append(label.encode())
            writer.write(example.SerializeToString())
    return examples


@pytest.fixture(scope="module")
def eval_examples(tmp_path_factory):
    return write_eval_examples(tmp_path_factory.mktemp("examples"), list(COLORS))


def evaluate(tmp_path, examples, model, baseline, eval_config):
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(tmp_path / "evaluation"), str(tmp_path / "blessing")
    inputs = {"examples": [examples], "model": [model]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    EvaluatorExecutor(EvaluatorExecutor.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS))).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, {
        "eval_config": proto_utils.proto_to_json(eval_config), "example_splits": json.dumps(["eval"])})
    return blessing


def push(tmp_path, model, blessing, serving_dir):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = json.dumps({"filesystem": {"base_directory": serving_dir}})
    PusherExecutor().Do({"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                        {"push_destination": destination, "custom_config": "null"})
    return pushed


def reasons(blessing):
    return json.loads(blessing.get_string_custom_property(REASONS_PROPERTY))


@pytest.mark.slow  # Two TFMA runs on Beam (about 40 s).
def test_first_model_is_blessed_then_a_zero_step_model_is_refused_and_not_pushed(tmp_path, models, eval_examples):
    serving_dir = str(tmp_path / "serving")
    config = eval_config_lib.build_eval_config(**LOW_BAR, class_names=list(COLORS))
    first = evaluate(tmp_path / "first", eval_examples, models["trained"], None, config)
    assert reasons(first) == [] and first.get_int_custom_property("blessed") == 1
    pushed = push(tmp_path / "first", models["trained"], first, serving_dir)
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_version") == "1"
    with open(os.path.join(serving_dir, "1", features.MODEL_CARD_FILE_NAME)) as handle:
        card = handle.read()
    assert "| grün |" in card and "no baseline yet" in card
    report = json.load(open(os.path.join(first.uri, "blessing_report.json")))
    assert report["per_class"]["grün"] == {"examples": 5, "precision": 1.0, "recall": 1.0}
    assert 0 <= report["expected_calibration_error"] < 0.5

    second = evaluate(tmp_path / "second", eval_examples, models["zero_steps"], models["trained"], config)
    assert second.get_int_custom_property("blessed") == 0
    why = " | ".join(reasons(second))
    assert "label=grün" in why and "label=blue sky" in why and "below the floor 0.5000" in why
    assert "change vs. baseline" in why
    assert push(tmp_path / "second", models["zero_steps"], second, serving_dir).get_int_custom_property("pushed") == 0
    assert sorted(os.listdir(serving_dir)) == [".version-1.claim", "1", MODEL_CONFIG_FILE]  # + TF Serving's config


@pytest.mark.slow  # One TFMA run on Beam (about 20 s).
def test_a_class_without_eval_examples_blocks_blessing(tmp_path, models):
    without_blue_sky = write_eval_examples(tmp_path / "examples", ["red apple", "grün"])
    config = eval_config_lib.build_eval_config(**LOW_BAR, class_names=list(COLORS))
    blessing = evaluate(tmp_path, without_blue_sky, models["trained"], None, config)
    assert blessing.get_int_custom_property("blessed") == 0
    assert reasons(blessing) == ["no eval examples in slice label=blue sky: the class cannot be checked"]


def write_eval_examples_with_an_untrained_class(directory, untrained_class):
    """The eval split of every class the models know, plus 5 examples of a class they never saw in training."""
    examples = write_eval_examples(directory, list(COLORS))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-eval", "untrained.gz"), "GZIP") as writer:
        for image, _ in labelled_images(5, seed=30)[:5]:
            example = tf.train.Example.FromString(tf_example(image))
            example.features.feature[features.LABEL_KEY].bytes_list.value.append(untrained_class.encode())
            writer.write(example.SerializeToString())
    return examples


@pytest.mark.slow  # One TFMA run on Beam (about 20 s).
def test_a_class_with_no_training_examples_ends_not_blessed_with_the_reason(tmp_path, models):
    # As when a class folder has eval images only: the class names of the run know it, the model does not.
    examples = write_eval_examples_with_an_untrained_class(tmp_path / "examples", "violet")
    config = eval_config_lib.build_eval_config(**LOW_BAR, class_names=[*COLORS, "violet"])
    blessing = evaluate(tmp_path, examples, models["trained"], None, config)
    assert blessing.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    assert not os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    assert "class 'violet' has no training examples: the model cannot predict it" in reasons(blessing)

    # With --span-folder the run names no class: ingestion's counts show the class in the eval split only.
    examples.set_string_custom_property("examples_per_class_and_split", json.dumps(
        {**{name: {"train": 6, "eval": 5} for name in COLORS}, "violet": {"eval": 5}}))
    unnamed = evaluate(tmp_path / "unnamed", examples, models["trained"], None,
                       eval_config_lib.build_eval_config(**LOW_BAR))
    assert unnamed.get_int_custom_property("blessed") == 0
    assert reasons(unnamed) == ["class 'violet' has no training examples: the model cannot predict it"]
