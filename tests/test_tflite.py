"""TFLite export beside the SavedModel: float16 and int8 conversions evaluated on eval images, with
accuracy next to the Keras model's on the same images (a small trained classifier; fast)."""
import json
import os

import numpy as np
import tensorflow as tf

from components import features
from components.pusher.component import tflite_within_tolerance
from components.trainer.serving import convert_to_tflite, export_tflite, tflite_probabilities
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
