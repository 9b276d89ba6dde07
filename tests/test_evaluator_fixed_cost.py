"""The Evaluator's fixed cost: TFMA loads our exported model once, by its signatures, never through Keras.

Without a stated model type TFMA's get_model_type loaded the whole SavedModel with Keras to detect whether it is a
Keras model, and then loaded it again as one (tensorflow_model_analysis/utils/model_util.py): 20-26 s per model
under load for a small MobileNetV2, where the signatures are all the gate calls.
"""

import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft

from components import features
from components.evaluation.eval_config import build_eval_config
from components.trainer.serving import export_serving_model, read_class_names, tf_example
from tests.serving_fixtures import labelled_images, serving_transform_output_dir, small_classifier  # noqa: F401

def test_tfma_loads_the_exported_model_by_its_signatures_without_keras(serving_transform_output_dir, tmp_path,
                                                                       monkeypatch):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    export_dir = str(tmp_path / "model")
    export_serving_model(small_classifier(class_names, 0), tft_output, class_names, export_dir, top_k=2)
    keras_loads = []
    monkeypatch.setattr(tf.keras.models, "load_model", lambda *args, **kwargs: keras_loads.append(args))

    eval_config = build_eval_config(0.5, None, class_names=class_names)
    shared = tfma.default_eval_shared_model(eval_saved_model_path=export_dir, eval_config=eval_config)
    model = shared.model_loader.construct_fn()

    assert keras_loads == [] and shared.model_type == tfma.TF_GENERIC
    image, _ = labelled_images(1, seed=3)[0]
    outputs = model.signatures[features.TF_EXAMPLE_SIGNATURE](tf.constant([tf_example(image)]))
    assert outputs[features.PROBABILITIES_KEY].shape == (1, len(class_names))
