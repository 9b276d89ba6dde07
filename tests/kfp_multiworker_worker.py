"""One worker of tests/test_kfp_multiworker.py: runs the Trainer's run_fn in a fresh process, with TF_CONFIG
(set by the test) naming a two-worker cluster on 127.0.0.1, as a KFP/Kubeflow training job's pods would."""
import json
import logging
import sys

from tfx import v1 as tfx

from components.trainer import run


def main(arguments_json: str) -> None:
    logging.getLogger().setLevel(logging.INFO)  # run_fn reports its strategy at INFO.
    arguments = json.loads(arguments_json)
    run.run_fn(tfx.components.FnArgs(
        train_files=arguments["train_files"], eval_files=arguments["eval_files"],
        transform_output=arguments["transform_output"], serving_model_dir=arguments["serving_model_dir"],
        model_run_dir=arguments["model_run_dir"], custom_config=arguments["custom_config"]))


if __name__ == "__main__":
    main(sys.argv[1])
