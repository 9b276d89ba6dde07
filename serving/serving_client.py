"""Clients of a served model: a local SavedModel, TF Serving's REST API and its gRPC PredictionService.

Each is a Predictor: a batch of encoded images in, the serving signature's outputs as numpy arrays out,
so `imagepipe predict` prints the same thing whichever it talks to. A rejected request (an unreadable or
oversized image) raises PredictionError with the server's message.
"""
import base64
import json
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional

import numpy as np

from components import features

Predictor = Callable[[List[bytes]], Dict[str, np.ndarray]]
DEFAULT_TIMEOUT_S = 30.0
# gRPC's default 4 MB message cap is below the served byte limit per image; allow up to 64 MiB + headroom.
GRPC_MAX_MESSAGE_BYTES = 80 * 1024 * 1024


class PredictionError(Exception):
    """The model or server refused the request (e.g. INVALID_ARGUMENT for a malformed image)."""


def local_predictor(version_dir: str, signature: str = features.SERVING_SIGNATURE) -> Predictor:
    import tensorflow as tf

    serve = tf.saved_model.load(version_dir).signatures[signature]

    def predict(images: List[bytes]) -> Dict[str, np.ndarray]:
        try:
            outputs = serve(**{features.IMAGE_KEY: tf.constant(images)})
        except tf.errors.InvalidArgumentError as error:
            raise PredictionError(error.message) from None
        return {key: value.numpy() for key, value in outputs.items()}

    return predict


def rest_url(base_url: str, model_name: str, version: Optional[int] = None, label: Optional[str] = None) -> str:
    """TF Serving's REST predict URL (tensorflow_serving/model_servers/http_rest_api_util.cc, the predict path regex:
    /v1/models/<name>[/versions/<version> | /labels/<label>]:predict)."""
    if version is not None and label:
        raise ValueError("Address a version or a label, not both.")
    addressed = f"/versions/{version}" if version is not None else f"/labels/{label}" if label else ""
    return f"{base_url.rstrip('/')}/v1/models/{model_name}{addressed}:predict"


def rest_predictor(base_url: str, model_name: str, version: Optional[int] = None,
                   signature: str = features.SERVING_SIGNATURE, timeout_s: float = DEFAULT_TIMEOUT_S,
                   label: Optional[str] = None) -> Predictor:
    """POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict, images as {"b64": ...} instances (row format)."""
    url = rest_url(base_url, model_name, version, label)

    def predict(images: List[bytes]) -> Dict[str, np.ndarray]:
        body = json.dumps({"signature_name": signature,
                           "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]})
        request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                predictions = json.loads(response.read())["predictions"]
        except urllib.error.HTTPError as error:
            raise PredictionError(f"HTTP {error.code}: {_rest_error(error)}") from None
        except urllib.error.URLError as error:
            raise PredictionError(f"cannot reach {url}: {error.reason}") from None
        return {key: np.array([_decoded(row[key]) for row in predictions]) for key in predictions[0]}

    return predict


def _rest_error(error: urllib.error.HTTPError) -> str:
    text = error.read().decode("utf-8", "replace")
    try:
        return json.loads(text)["error"]
    except (ValueError, KeyError):
        return text


def _decoded(values):
    # TF Serving's JSON holds strings as text; the local path yields bytes. Predictions use bytes for both.
    if isinstance(values, list):
        return [value.encode("utf-8") if isinstance(value, str) else value for value in values]
    return values


def grpc_predictor(target: str, model_name: str, version: Optional[int] = None,
                   signature: str = features.SERVING_SIGNATURE, timeout_s: float = DEFAULT_TIMEOUT_S,
                   label: Optional[str] = None) -> Predictor:
    """tensorflow_serving.apis PredictionService.Predict on host:port (plaintext, as TF Serving's port 8500);
    a version or a label goes into ModelSpec's `version_choice` oneof (tensorflow_serving/apis/model.proto)."""
    if version is not None and label:
        raise ValueError("Address a version or a label, not both.")
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES)]

    def predict(images: List[bytes]) -> Dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        elif label:
            request.model_spec.version_label = label
        request.inputs[features.IMAGE_KEY].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        with grpc.insecure_channel(target, options=options) as channel:
            try:
                response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout_s)
            except grpc.RpcError as error:
                raise PredictionError(f"{error.code().name}: {error.details()}") from None
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    return predict
