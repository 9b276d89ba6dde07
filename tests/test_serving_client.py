"""`imagepipe predict` against a local model dir, REST and gRPC gives the same output; rollback pins a version.

REST and gRPC run against tests/tf_serving_double.py: a TEST DOUBLE of TF Serving's documented predict
APIs on 127.0.0.1 (no TF Serving binary is installable here), executing the real pushed SavedModel.
"""
import json
import os

import pytest
import tensorflow_transform as tft
from google.protobuf import text_format

from components.trainer.serving import export_serving_model, read_class_names
from pipeline.cli import main
from serving.rollback import DEFAULT_LATEST_VERSIONS
from serving.serving_dir import ServingDir
from tests.conftest import COLORS, encode, noisy_color
from tests.serving_fixtures import serving_transform_output_dir, small_classifier  # noqa: F401
from tests.tf_serving_double import serving_double

import numpy as np


@pytest.fixture(scope="module")
def serving_dir(serving_transform_output_dir, tmp_path_factory):
    tft_output = tft.TFTransformOutput(serving_transform_output_dir)
    class_names = read_class_names(tft_output)
    root = tmp_path_factory.mktemp("client")
    serving = str(root / "serving")
    # Two different models: the Pusher does not push a model that already is the newest version.
    for version, train_steps in enumerate((30, 60), start=1):
        export_dir = str(root / f"export{version}")
        export_serving_model(small_classifier(class_names, train_steps), tft_output, class_names, export_dir, top_k=2)
        assert ServingDir(serving).push(export_dir).version == version
    return serving


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(5)
    paths = []
    for name, fmt in (("grün", "PNG"), ("blue sky", "JPEG"), ("red apple", "PNG")):
        path = tmp_path / f"{name}.{fmt.lower()}"
        path.write_bytes(encode(noisy_color(COLORS[name], rng), fmt))
        paths.append(str(path))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths + [str(corrupt)]


def run_predict(capsys, *options):
    capsys.readouterr()
    code = main(["predict", *options, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_local_rest_and_grpc_give_the_same_predictions(serving_dir, image_files, capsys):
    code, local = run_predict(capsys, "--model", serving_dir, *image_files)
    assert code == 1  # The corrupt file fails alone; the others are classified.
    assert [result["classes"][0] for result in local["predictions"][:3]] == ["grün", "blue sky", "red apple"]
    assert "Image rejected" in local["predictions"][3]["error"] or "jpeg" in local["predictions"][3]["error"].lower()
    with serving_double("imagepipe", os.path.join(serving_dir, "2")) as (rest_url, grpc_target):
        _, rest = run_predict(capsys, "--rest", rest_url, *image_files)
        _, over_grpc = run_predict(capsys, "--grpc", grpc_target, *image_files)
    for remote in (rest, over_grpc):
        for mine, theirs in zip(local["predictions"][:3], remote["predictions"][:3]):
            assert mine["classes"] == theirs["classes"]
            np.testing.assert_allclose(mine["scores"], theirs["scores"], rtol=1e-5)
    assert rest["predictions"][3]["error"].startswith("HTTP 400")
    assert over_grpc["predictions"][3]["error"].startswith("INVALID_ARGUMENT")


def test_unknown_model_name_is_reported(serving_dir, image_files, capsys):
    with serving_double("imagepipe", os.path.join(serving_dir, "2")) as (rest_url, _):
        code, result = run_predict(capsys, "--rest", rest_url, "--model-name", "other", image_files[0])
    assert code == 1 and result["predictions"][0]["error"].startswith("HTTP 404")


def test_rollback_pins_a_previous_version_and_unpins(serving_dir, tmp_path, capsys):
    from tensorflow_serving.config import model_server_config_pb2

    config_file = str(tmp_path / "models.config")
    assert main(["rollback", "--serving-dir", serving_dir, "--version", "1", "--config-file", config_file,
                 "--base-path", "/models/imagepipe"]) == 0
    config = text_format.Parse(open(config_file).read(), model_server_config_pb2.ModelServerConfig())
    model = config.model_config_list.config[0]
    assert (model.name, model.base_path) == ("imagepipe", "/models/imagepipe")
    assert list(model.model_version_policy.specific.versions) == [1]
    assert main(["rollback", "--serving-dir", serving_dir, "--version", "7", "--config-file", config_file]) == 2
    assert "pushed versions: [1, 2]" in capsys.readouterr().err
    assert main(["rollback", "--serving-dir", serving_dir, "--unpin", "--config-file", config_file]) == 0
    config = text_format.Parse(open(config_file).read(), model_server_config_pb2.ModelServerConfig())
    # Unpinned: what the shipped deployment served before (issue 13: unpin wrote 1 where the ConfigMap said 2).
    model = config.model_config_list.config[0]
    assert model.model_version_policy.latest.num_versions == DEFAULT_LATEST_VERSIONS
    assert model.base_path == "/models/imagepipe"  # Kept from the config, not reset to --serving-dir.


def scores_of(result):
    return [prediction["scores"] for prediction in result["predictions"][:3]]


def test_predict_addresses_a_version_or_a_label_over_rest_grpc_and_locally(serving_dir, image_files, capsys):
    """Version 1 and 2 are different models (30 and 60 training steps), so each answer shows which one replied."""
    from serving import rollback

    by_version = {version: run_predict(capsys, "--model", serving_dir, "--version", str(version), *image_files[:3])[1]
                  for version in (1, 2)}
    assert scores_of(by_version[1]) != scores_of(by_version[2])
    rollback.promote(serving_dir, "stable", 1)
    rollback.promote(serving_dir, "canary", 2)
    _, local_canary = run_predict(capsys, "--model", serving_dir, "--label", "canary", *image_files[:3])
    assert local_canary["model"].endswith("/2") and scores_of(local_canary) == scores_of(by_version[2])
    versions = {1: os.path.join(serving_dir, "1"), 2: os.path.join(serving_dir, "2")}
    with serving_double("imagepipe", versions, labels={"stable": 1, "canary": 2}) as (rest_url, grpc_target):
        for api, target in (("--rest", rest_url), ("--grpc", grpc_target)):
            for address, expected in ((("--label", "stable"), 1), (("--label", "canary"), 2),
                                      (("--version", "1"), 1), ((), 2)):
                code, result = run_predict(capsys, api, target, *address, *image_files[:3])
                assert code == 0, (api, address, result)
                np.testing.assert_allclose(scores_of(result), scores_of(by_version[expected]), rtol=1e-5)
            code, result = run_predict(capsys, api, target, "--label", "nightly", image_files[0])
            assert code == 1 and ("HTTP 404" in result["predictions"][0]["error"]
                                  or result["predictions"][0]["error"].startswith("NOT_FOUND"))
    with pytest.raises(SystemExit):  # argparse: --version and --label exclude each other.
        main(["predict", "--model", serving_dir, "--version", "1", "--label", "canary", image_files[0]])
