"""Compiles the pipeline for Kubeflow Pipelines (v2) / Vertex AI Pipelines with KubeflowV2DagRunner.

Transform and Trainer name their code by dotted path and the image has this package installed, so the
compile step uploads nothing: it works offline whatever the pipeline root is (gs://, s3://, a PVC path).
"""
import logging
import os

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

DEFAULT_IMAGE = "ghcr.io/imagepipe/imagepipe:0.1.0"


def compile_pipeline(config: PipelineConfig, output_file: str, image: str = DEFAULT_IMAGE) -> str:
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    runner.run(create_pipeline(config), write_out=True)
    logging.info("Wrote the Kubeflow pipeline spec to %s", output_file)
    return output_file
