"""TFLite export beside the SavedModel: float16 and int8 conversions evaluated on eval images, with
accuracy next to the Keras model's on the same images (a small trained classifier; fast)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.pusher.component import tflite_within_tolerance
from components.trainer.hparams import TrainingConfig
from components.trainer.serving import convert_to_tflite, export_tflite, sampled, tflite_probabilities
from components.transform.preprocessing import decode_and_scale
from tests.serving_fixtures import labelled_images, small_classifier

CLASSES = ["red apple", "grün", "blue sky"]


def _examples(seed):
    data = labelled_images(5, seed=seed)
    images = np.stack([decode_and_scale(tf.constant(image), 32).numpy() for image, _ in data])
    labels = tf.one_hot([CLASSES.index(name) for _, name in data], len(CLASSES)).numpy()
    return tf.data.Dataset.from_tensor_slices((images, labels))


def test_tflite_accuracy_is_within_tolerance_of_the_savedmodel(tmp_path):
    model = small_classifier(CLASSES, 60)
    evaluation = export_tflite(model, 32, str(tmp_path), _examples(seed=30), representative_examples=_examples(31),
                               quantizations=("float16", "int8"))
    assert evaluation["eval_examples"] == 15 and evaluation["savedmodel_accuracy"] == 1.0
    for quantization in ("float16", "int8"):
        result = evaluation["tflite"][quantization]
        assert abs(result["accuracy"] - evaluation["savedmodel_accuracy"]) <= 0.02
        assert os.path.getsize(tmp_path / features.TFLITE_DIR / result["file"]) == result["bytes"]
    with open(tmp_path / features.TFLITE_DIR / features.TFLITE_EVALUATION_FILE_NAME) as handle:
        assert json.load(handle) == evaluation
    assert tflite_within_tolerance(evaluation, 0.02) == {"float16": True, "int8": True}


def test_conversion_freezes_the_function_without_saving_the_keras_model(tmp_path, monkeypatch):
    """The converter's default lowering saved the whole Keras model to a temporary SavedModel and loaded it back:
    52 of 57 s of a MobileNetV2 conversion on 2 cores. The frozen conversion writes no SavedModel at all."""
    from tensorflow.lite.python import lite

    saved = []
    original_save = lite._save.save
    monkeypatch.setattr(lite._save, "save",
                        lambda *args, **kwargs: saved.append(args) or original_save(*args, **kwargs))
    model = small_classifier(CLASSES, 60)
    images = np.stack([image.numpy() for image, _ in _examples(seed=32)])
    content = convert_to_tflite(model, 32, "float16")
    assert saved == []
    np.testing.assert_allclose(tflite_probabilities(content, images), model.predict(images, verbose=0), atol=5e-3)


def test_a_sample_is_seeded_random_in_order_and_the_whole_dataset_when_small():
    """Not the first N: a split is written in file order, often class by class, and its head is one class."""
    numbers = tf.data.Dataset.range(1000)
    first = list(sampled(numbers, 50, seed=7).as_numpy_iterator())
    assert first == list(sampled(numbers, 50, seed=7).as_numpy_iterator())  # Fixed by the seed.
    assert first != list(sampled(numbers, 50, seed=8).as_numpy_iterator())
    assert len(set(first)) == 50 and first == sorted(first) and max(first) > 500
    assert list(sampled(numbers, 1000, seed=7).as_numpy_iterator()) == list(range(1000))
    assert list(sampled(numbers, None, seed=7).as_numpy_iterator()) == list(range(1000))
    unknown_size = numbers.filter(lambda number: number % 2 == 0)  # Cardinality unknown: counted first.
    assert len(list(sampled(unknown_size, 30, seed=7).as_numpy_iterator())) == 30
    with pytest.raises(ValueError, match="infinite"):
        sampled(numbers.repeat(), 30, seed=7)


def test_tflite_scoring_is_bounded_to_a_sample_of_a_large_eval_split(tmp_path):
    """Scoring every eval image (interpreter and Keras reference) grew with the split: 15.1 s at 8x the demo."""
    model = small_classifier(CLASSES, 60)
    images, labels = zip(*_examples(seed=33).as_numpy_iterator())
    large = tf.data.Dataset.from_tensor_slices((np.tile(np.stack(images), (41, 1, 1, 1)),
                                                np.tile(np.stack(labels), (41, 1))))  # 615 examples.
    evaluation = export_tflite(model, 32, str(tmp_path), large)
    assert evaluation["eval_examples"] == TrainingConfig().tflite_eval_examples == 512
    assert evaluation["savedmodel_accuracy"] == 1.0 and evaluation["tflite"]["float16"]["accuracy"] == 1.0
    assert export_tflite(model, 32, str(tmp_path), large, max_eval_examples=20)["eval_examples"] == 20
