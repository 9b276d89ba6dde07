"""A TEST DOUBLE of TF Serving's predict APIs, not TF Serving.

No tensorflow_model_server binary exists on PyPI or in Debian, so the clients are tested against this:
REST `POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict` (row format, {"b64": ...} for bytes, errors
as {"error": ...} with HTTP 400/404) and gRPC `tensorflow.serving.PredictionService/Predict` (the real
tensorflow-serving-api protos and stubs; ModelSpec.version or .version_label), both executing the real pushed
SavedModels' signatures. Several versions may be served, with labels; a request that names no version gets
the highest one, as TF Serving's does. It does not load from a config file or poll anything.
It listens on 127.0.0.1 only, on an ephemeral port, for the duration of one test.
"""
import base64
import contextlib
import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Union

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

# TF Serving's own path pattern (tensorflow_serving/model_servers/http_rest_api_util.cc), predict only.
_PREDICT_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?:predict$")


class ServableNotFound(LookupError):
    pass


class _Servable:
    def __init__(self, model_name: str, version_dirs: Union[str, Dict[int, str]], labels: Optional[Dict] = None):
        self.model_name = model_name
        if isinstance(version_dirs, str):
            name = os.path.basename(version_dirs.rstrip("/"))
            version_dirs = {int(name) if name.isdigit() else 1: version_dirs}
        self.models = {version: tf.saved_model.load(path) for version, path in version_dirs.items()}
        self.labels = dict(labels or {})

    def resolve(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        if name != self.model_name:
            raise ServableNotFound(f"Servable not found for request: Latest({name})")
        if label:
            if label not in self.labels:
                raise ServableNotFound(f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if version is None:
            version = max(self.models)
        if version not in self.models:
            raise ServableNotFound(f"Servable not found for request: Specific({name}, {version})")
        return self.models[version]

    def run(self, model, signature_name: str, inputs):
        signature = model.signatures[signature_name or "serving_default"]
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        return {key: value.numpy() for key, value in outputs.items()}


def _rest_handler(servable: _Servable):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            match = _PREDICT_PATH.match(self.path)
            if not match:
                return self._reply(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                model = servable.resolve(match["name"], int(match["version"]) if match["version"] else None,
                                         match["label"])
            except ServableNotFound as error:
                return self._reply(404, {"error": str(error)})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            signature = body.get("signature_name", "serving_default")
            images = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
            input_name = list(model.signatures[signature].structured_input_signature[1])[0]
            try:
                outputs = servable.run(model, signature, {input_name: images})
            except tf.errors.InvalidArgumentError as error:
                return self._reply(400, {"error": error.message})
            rows = [{key: _jsonable(value[index]) for key, value in outputs.items()} for index in range(len(images))]
            return self._reply(200, {"predictions": rows})

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def _jsonable(value):
    items = value.tolist()
    if isinstance(items, list):
        return [item.decode("utf-8") if isinstance(item, bytes) else item for item in items]
    return items


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, servable: _Servable):
        self.servable = servable

    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802 (gRPC's name)
        spec = request.model_spec
        choice = spec.WhichOneof("version_choice")
        try:
            model = self.servable.resolve(spec.name, spec.version.value if choice == "version" else None,
                                          spec.version_label if choice == "version_label" else None)
        except ServableNotFound as error:
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        try:
            outputs = self.servable.run(model, spec.signature_name, inputs)
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


@contextlib.contextmanager
def serving_double(model_name: str, version_dirs: Union[str, Dict[int, str]], labels: Optional[Dict] = None):
    """Yields (rest_base_url, grpc_target) of the double, both on 127.0.0.1; stops them on exit.

    `version_dirs`: one version directory, or {version: directory}; `labels`: {label: version}."""
    servable = _Servable(model_name, version_dirs, labels)
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(servable))
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    http_thread.start()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(servable), grpc_server)
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield f"http://127.0.0.1:{http_server.server_address[1]}", f"127.0.0.1:{grpc_port}"
    finally:
        grpc_server.stop(grace=None)
        http_server.shutdown()
        http_server.server_close()
        http_thread.join(timeout=5)
