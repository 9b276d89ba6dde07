"""Where a killed Trainer finds its checkpoints again: a folder under the pipeline root that is the same for
every run, not one derived from the Trainer's output URI, which on KFP holds the run id."""
import json

from tfx import v1 as tfx

from components.trainer.run import checkpoint_dir_for
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

ROOT = "gs://bucket/root"


def trainer_custom_config() -> dict:
    config = PipelineConfig(pipeline_name="imagepipe", pipeline_root=ROOT, data_root="gs://bucket/images",
                            serving_dir="gs://bucket/serving")
    trainer = next(c for c in create_pipeline(config).components if c.id == "Trainer")
    custom_config = trainer.exec_properties["custom_config"]
    return json.loads(custom_config) if isinstance(custom_config, str) else custom_config


def kfp_fn_args(custom_config: dict, run_id: str, task_uuid: str) -> tfx.components.FnArgs:
    """The Trainer's arguments in a KFP run: outputs under <root>/<pipeline>/<run id>/Trainer/<uuid>/
    (kubeflow/pipelines backend/src/v2/driver/driver.go, provisionOutputs); the same cached inputs."""
    task_root = f"{ROOT}/imagepipe/{run_id}/Trainer/{task_uuid}"
    return tfx.components.FnArgs(
        custom_config=custom_config, train_files=[f"{ROOT}/imagepipe/run-1/ImageExampleGen/a/examples/Split-train/*"],
        eval_files=[f"{ROOT}/imagepipe/run-1/ImageExampleGen/a/examples/Split-eval/*"],
        transform_output=f"{ROOT}/imagepipe/run-1/Transform/b/transform_graph",
        model_run_dir=f"{task_root}/model_run", serving_model_dir=f"{task_root}/model/Format-Serving")


def test_a_rerun_on_kfp_finds_the_killed_runs_checkpoints_under_the_pipeline_root():
    custom_config = trainer_custom_config()
    killed = checkpoint_dir_for(kfp_fn_args(custom_config, "run-1", "u1"))
    rerun = checkpoint_dir_for(kfp_fn_args(custom_config, "run-2", "u2"))
    assert killed == rerun
    assert killed.startswith(f"{ROOT}/Trainer/checkpoints/")


def test_other_inputs_get_other_checkpoints():
    custom_config = trainer_custom_config()
    changed = {**custom_config, "training": {**custom_config["training"], "phase1_epochs": 99}}
    assert checkpoint_dir_for(kfp_fn_args(custom_config, "r", "u")) != checkpoint_dir_for(kfp_fn_args(changed, "r", "u"))
