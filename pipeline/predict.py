"""Classifies image files with a served model: a pushed SavedModel, or TF Serving over REST or gRPC
(pipeline/serving_client.py). One request per image, so one bad file fails alone."""
import os
from typing import Dict, List

import tensorflow as tf

from components import features
from components.baseline.latest_pushed import latest_version_dir
from pipeline.serving_client import PredictionError, Predictor, local_predictor


def resolve_version_dir(model_dir: str) -> str:
    """A version directory as given, or the highest complete numeric version under a serving directory."""
    if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    if not tf.io.gfile.isdir(model_dir):
        raise FileNotFoundError(f"No model at {model_dir!r}.")
    version_dir = latest_version_dir(model_dir)
    if version_dir is None:
        raise FileNotFoundError(f"{model_dir!r} holds no saved_model.pb and no numbered model versions.")
    return version_dir


def predict_with(predictor: Predictor, image_paths: List[str], top_k: int) -> List[Dict]:
    """[{"image", "classes", "scores"}] per file, or {"image", "error"} for a file the model refused."""
    results = []
    for path in image_paths:
        with tf.io.gfile.GFile(path, "rb") as handle:
            image = handle.read()
        try:
            outputs = predictor([image])
        except PredictionError as error:
            results.append({"image": path, "error": str(error)})
            continue
        names = [name.decode("utf-8") for name in outputs[features.TOP_K_NAMES_KEY][0][:top_k]]
        scores = [round(float(score), 6) for score in outputs[features.TOP_K_SCORES_KEY][0][:top_k]]
        results.append({"image": path, "classes": names, "scores": scores})
    return results


def predict_files(version_dir: str, image_paths: List[str], top_k: int) -> List[Dict]:
    return predict_with(local_predictor(version_dir), image_paths, top_k)
