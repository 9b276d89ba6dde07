"""Classifies image files with a pushed SavedModel through its serving_default signature (bytes in)."""
import os
from typing import Dict, List

import tensorflow as tf

from components import features


def resolve_version_dir(model_dir: str) -> str:
    """A version directory as given, or the highest numeric version under a serving directory."""
    if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    if not tf.io.gfile.isdir(model_dir):
        raise FileNotFoundError(f"No model at {model_dir!r}.")
    versions = [entry.rstrip("/") for entry in tf.io.gfile.listdir(model_dir) if entry.rstrip("/").isdigit()]
    complete = [v for v in versions if tf.io.gfile.exists(os.path.join(model_dir, v, "saved_model.pb"))]
    if not complete:
        raise FileNotFoundError(f"{model_dir!r} holds no saved_model.pb and no numbered model versions.")
    return os.path.join(model_dir, max(complete, key=int))


def predict_files(version_dir: str, image_paths: List[str], top_k: int) -> List[Dict]:
    model = tf.saved_model.load(version_dir)
    serve = model.signatures[features.SERVING_SIGNATURE]
    results = []
    for path in image_paths:
        with tf.io.gfile.GFile(path, "rb") as handle:
            outputs = serve(**{features.IMAGE_KEY: tf.constant([handle.read()])})
        names = [name.decode("utf-8") for name in outputs[features.TOP_K_NAMES_KEY].numpy()[0][:top_k]]
        scores = [float(score) for score in outputs[features.TOP_K_SCORES_KEY].numpy()[0][:top_k]]
        results.append({"image": path, "classes": names, "scores": scores})
    return results
