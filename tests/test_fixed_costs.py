"""Fixed costs of a run that do not grow with the data: the export and the Evaluator's model load.

- The export traced the model once per image signature (serving_tf_example repeated serving_default's body);
  now the tf.Example signature calls the image-bytes function, so one trace serves both.

- AutoGraph transpiled the serving functions and the TFLite conversion's from their source on each export,
  though none has Python control flow on tensors; they are traced with autograph=False.
- Keras' SavedModel export traced every layer's call functions so that the model could be revived as Keras
  layers; nothing loads it as Keras, and for MobileNetV2 the traces were 3/4 of the export's time. Without
  them it still wrote every layer's config (keras_metadata.pb); the export now saves a plain tf.Module.
- Without a stated model type TFMA's get_model_type loaded the whole SavedModel with Keras to detect whether it
  is a Keras model, and then loaded it again as one (tensorflow_model_analysis/utils/model_util.py): 20-26 s
  per model under load for a small MobileNetV2, where the signatures are all the gate calls.
- tf.Transform in TF2 mode traced preprocessing_fn about ten times per run, and wrote an analyzer cache that no
  later run reads: Transform runs in TF1 mode without the cache, so its graph is a TF1 SavedModel, which must
  transform and serve exactly as the TF2 one did.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2

from components import features
from components.evaluation.eval_config import build_eval_config
from components.trainer.serving import convert_to_tflite, export_serving_model, read_class_names, tf_example
from components.transform import preprocessing
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_components
from tests.conftest import analyze_color_examples
from tests.serving_fixtures import labelled_images, serving_transform_output_dir, small_classifier  # noqa: F401
from tests.serving_fixtures import serving_schema


@pytest.fixture(scope="module")
def exported(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    export_dir = str(tmp_path_factory.mktemp("model"))
    export_serving_model(small_classifier(class_names, 0), tft_output, class_names, export_dir, top_k=2)
    return export_dir, class_names


def _saved_functions(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f"{export_dir}/saved_model.pb", "rb") as handle:
        saved_model.ParseFromString(handle.read())
    return saved_model.meta_graphs[0].graph_def.library.function


def _saved_function_names(export_dir):
    return [function.signature.name for function in _saved_functions(export_dir)]


def test_export_holds_the_signatures_but_no_keras_layer_traces(exported):
    export_dir, class_names = exported
    names = _saved_function_names(export_dir)
    assert not [name for name in names if "layer_call" in name]  # Keras' per-layer traces.
    served = tf.saved_model.load(export_dir).signatures[features.SERVING_SIGNATURE]
    image, _ = labelled_images(1, seed=3)[0]
    outputs = served(**{features.IMAGE_KEY: tf.constant([image])})
    assert outputs[features.PROBABILITIES_KEY].shape == (1, len(class_names))
    assert {name.decode() for name in outputs[features.TOP_K_NAMES_KEY].numpy()[0]} <= set(class_names)


def test_the_export_is_a_plain_module_without_keras_metadata(exported):
    """Keras' save serialized every layer's config to keras_metadata.pb and walked the layers' object graph (1/5
    of a MobileNetV2 export) for a SavedModel that nothing revives as Keras; the signatures are all it serves."""
    export_dir, class_names = exported
    assert not tf.io.gfile.exists(f"{export_dir}/keras_metadata.pb")
    loaded = tf.saved_model.load(export_dir)
    assert set(loaded.signatures) == {features.SERVING_SIGNATURE, features.TF_EXAMPLE_SIGNATURE,
                                      features.TRANSFORM_SIGNATURE}
    labels = loaded.signatures[features.TRANSFORM_SIGNATURE](examples=tf.constant([tf.train.Example(
        features=tf.train.Features(feature={features.LABEL_KEY: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[class_names[1].encode()]))})).SerializeToString()]))
    assert labels[features.TRANSFORMED_LABEL_KEY].numpy().tolist() == [1]  # The vocabulary asset came along.


def test_both_image_signatures_share_one_trace_of_the_model(exported):
    """serving_tf_example called a second copy of serving_default's body, so export traced and saved the whole
    model (and the Transform graph's decoding) twice. The small classifier's Dense is the only MatMul."""
    export_dir, class_names = exported
    with_the_model = [function.signature.name for function in _saved_functions(export_dir)
                      if any(node.op == "MatMul" for node in function.node_def)]
    assert len(with_the_model) == 1, with_the_model
    loaded = tf.saved_model.load(export_dir)
    image, _ = labelled_images(1, seed=4)[0]
    from_bytes = loaded.signatures[features.SERVING_SIGNATURE](**{features.IMAGE_KEY: tf.constant([image])})
    from_example = loaded.signatures[features.TF_EXAMPLE_SIGNATURE](examples=tf.constant([tf_example(image)]))
    for key in (features.PROBABILITIES_KEY, features.TOP_K_IDS_KEY, features.TOP_K_NAMES_KEY):
        np.testing.assert_array_equal(from_bytes[key].numpy(), from_example[key].numpy())


def test_the_export_and_the_tflite_conversion_transpile_nothing_with_autograph(serving_transform_output_dir,
                                                                              tmp_path, monkeypatch):
    """AutoGraph rewrote the serving functions (the image checks, their tf.case branches, map_fn's body) from
    their source on every export, though none has Python control flow on tensors: 1.8 s of CPU per export."""
    from tensorflow.python.autograph.impl import api as autograph_api

    transpiled = []
    original = autograph_api._convert_actual
    monkeypatch.setattr(autograph_api, "_convert_actual",
                        lambda entity, context: transpiled.append(entity) or original(entity, context))
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    model = small_classifier(class_names, 0)
    export_serving_model(model, tft_output, class_names, str(tmp_path / "model"), top_k=2)
    convert_to_tflite(model, 32, "float16")
    # TF's own save wraps each signature in a tf.function of its own (saved_model/signature_serialization.py,
    # canonicalize_signatures): three one-line wrappers, not ours.
    assert [entity for entity in transpiled if entity.__module__.startswith("components")] == []
    assert len(transpiled) <= 3


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


def test_the_pipelines_transform_traces_a_tf1_graph_and_writes_no_analyzer_cache(tmp_path):
    config = PipelineConfig(pipeline_name="p", pipeline_root=str(tmp_path / "root"), data_root=str(tmp_path),
                            serving_dir=str(tmp_path / "serving"))
    transform = {component.id: component for component in create_components(config)}["Transform"]

    assert transform.exec_properties["force_tf_compat_v1"] == int(preprocessing.FORCE_TF_COMPAT_V1) == 1
    assert "updated_analyzer_cache" not in transform.outputs


def _served(export_dir, images):
    served = tf.saved_model.load(export_dir).signatures[features.SERVING_SIGNATURE]
    return served(**{features.IMAGE_KEY: tf.constant(images)})


def test_a_tf1_transform_graph_transforms_and_serves_as_the_tf2_graph(tmp_path):
    outputs = {}
    for mode, compat_v1 in (("tf1", True), ("tf2", False)):
        graph_dir = analyze_color_examples(serving_schema(), str(tmp_path / mode), force_tf_compat_v1=compat_v1)
        tft_output = tft.TFTransformOutput(graph_dir)
        class_names = read_class_names(tft_output)
        examples = labelled_images(2, seed=7)
        # As the Trainer and DataQuality apply it (transform_raw_features cannot run a TF1 graph eagerly).
        transformed = tft_output.transform_features_layer()(
            {features.IMAGE_KEY: tf.constant([[image] for image, _ in examples]),
             features.LABEL_KEY: tf.constant([[name.encode()] for _, name in examples])})
        tf.random.set_seed(0)
        export_dir = str(tmp_path / f"model_{mode}")
        export_serving_model(small_classifier(class_names, 3), tft_output, class_names, export_dir, top_k=2)
        outputs[mode] = (class_names, transformed, _served(export_dir, [image for image, _ in examples]))

    (v1_names, v1_transformed, v1_served), (v2_names, v2_transformed, v2_served) = outputs["tf1"], outputs["tf2"]
    assert v1_names == v2_names
    for key in (features.TRANSFORMED_IMAGE_KEY, features.TRANSFORMED_LABEL_KEY):
        np.testing.assert_array_equal(v1_transformed[key].numpy(), v2_transformed[key].numpy())
    np.testing.assert_allclose(v1_served[features.PROBABILITIES_KEY].numpy(),
                               v2_served[features.PROBABILITIES_KEY].numpy(), atol=1e-5)
    np.testing.assert_array_equal(v1_served[features.TOP_K_NAMES_KEY].numpy(),
                                  v2_served[features.TOP_K_NAMES_KEY].numpy())
