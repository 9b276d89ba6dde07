"""Classifies image files with a served model: a pushed SavedModel, or TF Serving over REST or gRPC
(serving/serving_client.py). One request per image, so one bad file fails alone."""
from typing import Dict, List, Optional

import tensorflow as tf

from components import features
from serving import rollback
from serving.serving_client import PredictionError, Predictor, local_predictor
from serving.serving_dir import ServingDir, resolve_version_dir


def resolve_local_model(model_dir: str, version: Optional[int] = None, label: Optional[str] = None,
                        model_name: str = rollback.DEFAULT_MODEL_NAME) -> str:
    """The version directory `predict --model` uses: the given version, the version a label names in the serving
    directory's model config (as TF Serving would resolve it), or the newest complete version."""
    if version is None and not label:
        return resolve_version_dir(model_dir)
    serving = ServingDir(model_dir)
    if label:
        config = rollback.read_config(serving, serving.config_path)
        labels = {model.name: dict(model.version_labels) for model in config.model_config_list.config} if config else {}
        if label not in labels.get(model_name, {}):
            raise ValueError(f"No label {label!r} for {model_name!r} in {serving.config_path}: "
                             f"{labels.get(model_name) or 'no labels'}.")
        version = labels[model_name][label]
    serving.require_complete(version)
    return serving.version_dir(version)


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
