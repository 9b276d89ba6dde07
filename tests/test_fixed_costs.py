"""Fixed costs of a run that do not grow with the data: the export and the Evaluator's model load.

- Keras' SavedModel export traced every layer's call functions so that the model could be revived as Keras
  layers; nothing loads it as Keras, and for MobileNetV2 the traces were 3/4 of the export's time.
- Without a stated model type TFMA's get_model_type loaded the whole SavedModel with Keras to detect whether it
  is a Keras model, and then loaded it again as one (tensorflow_model_analysis/utils/model_util.py): 20-26 s
  per model under load for a small MobileNetV2, where the signatures are all the gate calls.
"""
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2

from components import features
from components.evaluation.eval_config import build_eval_config
from components.trainer.serving import export_serving_model, read_class_names, tf_example
from tests.serving_fixtures import labelled_images, serving_transform_output_dir, small_classifier  # noqa: F401


@pytest.fixture(scope="module")
def exported(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    export_dir = str(tmp_path_factory.mktemp("model"))
    export_serving_model(small_classifier(class_names, 0), tft_output, class_names, export_dir, top_k=2)
    return export_dir, class_names


def _saved_function_names(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f"{export_dir}/saved_model.pb", "rb") as handle:
        saved_model.ParseFromString(handle.read())
    return [function.signature.name for function in saved_model.meta_graphs[0].graph_def.library.function]


def test_export_holds_the_signatures_but_no_keras_layer_traces(exported):
    export_dir, class_names = exported
    names = _saved_function_names(export_dir)
    assert not [name for name in names if "layer_call" in name]  # Keras' per-layer traces.
    served = tf.saved_model.load(export_dir).signatures[features.SERVING_SIGNATURE]
    image, _ = labelled_images(1, seed=3)[0]
    outputs = served(**{features.IMAGE_KEY: tf.constant([image])})
    assert outputs[features.PROBABILITIES_KEY].shape == (1, len(class_names))
    assert {name.decode() for name in outputs[features.TOP_K_NAMES_KEY].numpy()[0]} <= set(class_names)


def test_tfma_loads_the_exported_model_by_its_signatures_without_keras(exported, monkeypatch):
    export_dir, class_names = exported
    keras_loads = []
    monkeypatch.setattr(tf.keras.models, "load_model", lambda *args, **kwargs: keras_loads.append(args))

    eval_config = build_eval_config(0.5, None, class_names=class_names)
    shared = tfma.default_eval_shared_model(eval_saved_model_path=export_dir, eval_config=eval_config)
    model = shared.model_loader.construct_fn()

    assert keras_loads == [] and shared.model_type == tfma.TF_GENERIC
    image, _ = labelled_images(1, seed=3)[0]
    outputs = model.signatures[features.TF_EXAMPLE_SIGNATURE](tf.constant([tf_example(image)]))
    assert outputs[features.PROBABILITIES_KEY].shape == (1, len(class_names))
