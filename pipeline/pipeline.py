"""create_pipeline: the TFX graph, built from a PipelineConfig and nothing else.

Runners (local_runner.py, kubeflow_runner.py) decide where it runs, where metadata lives and which
image it uses; this module only wires components.
"""
import os
from typing import List, Optional

import tensorflow_data_validation as tfdv
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.baseline.component import LatestPushedModel
from components.baseline.executor import BASELINE_MODEL_KEY
from components.evaluation.component import GatedEvaluator
from components.evaluation.eval_config import build_eval_config
from components.ingestion.component import ImageExampleGen, input_pattern
from components.pusher.component import TFLITE_TOLERANCE_KEY, VersionedPusher
from components.quality.component import DataQuality
from components.quality.executor import FILTERED_EXAMPLES_KEY
from components.schema_import.component import ContentKeyedImportSchemaGen
from components.spans import history
from components.spans.component import PreviousSpanStatistics, SpanWindow
from components.spans.executor import PREVIOUS_STATISTICS_KEY, WINDOW_EXAMPLES_KEY
from components.spans.resolution import newest_span
from components.transform import preprocessing
from components.validation.component import DataValidationGate
from components.trainer.run import CHECKPOINT_ROOT_KEY, TRAINING_CONFIG_KEY, checkpoint_root
from pipeline.config import BASELINE_LATEST_PUSHED, BASELINE_RESOLVER, PipelineConfig, components_fingerprint

SCHEMA_FILE_NAME = "schema.pbtxt"
# Code named by dotted path is installed with this package (in the venv, in the image); see config.py
# for how the cache still notices code changes.
PREPROCESSING_FN = "components.transform.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run.run_fn"
RESOLVER_ID = "latest_blessed_model_resolver"
LATEST_PUSHED_MODEL_ID = "latest_pushed_model"
PREVIOUS_SPAN_STATISTICS_ID = "PreviousSpanStatistics"
SPAN_WINDOW_ID = "SpanWindow"
SCHEMA_IMPORT_ID = "ImportSchemaGen"
BASELINE_OUTPUT_KEYS = {BASELINE_RESOLVER: "model", BASELINE_LATEST_PUSHED: BASELINE_MODEL_KEY}


def create_baseline(config: PipelineConfig, candidate_model: tfx.dsl.Channel):
    """The node whose Model output is the Evaluator's baseline (see config.BASELINE_SOURCES)."""
    if config.baseline == BASELINE_LATEST_PUSHED:
        return LatestPushedModel(candidate_model=candidate_model, serving_dir=config.serving_dir).with_id(
            LATEST_PUSHED_MODEL_ID)
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)


def span_history_fingerprint(config: PipelineConfig) -> str:
    """For the cache key of the span components (see components/spans/component.py): read where the pipeline is
    built and runs, i.e. locally. A compiled pipeline runs later elsewhere, and its span tasks are uncached."""
    return history.fingerprint_before(history.history_dir(config.pipeline_root, config.pipeline_name),
                                      newest_span(config.data_root, input_pattern(config.span_folder)))


def create_components(config: PipelineConfig, read_span_history: bool = True) -> List:
    code_version = components_fingerprint()
    example_gen = ImageExampleGen(input_base=config.data_root, eval_percent=config.eval_percent,
                                  span_folder=config.span_folder, max_stored_side=config.max_stored_side)
    # Keyed on the schema's content too: an edited schema.pbtxt must not reuse the cached copy of the old one.
    schema_gen = ContentKeyedImportSchemaGen(schema_file=os.path.join(config.schema_dir, SCHEMA_FILE_NAME)).with_id(
        SCHEMA_IMPORT_ID)
    # Semantic-domain statistics add TFDV's image statistics (format histogram, largest size) to image_bytes.
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # Earlier spans come from the span history under the pipeline root (no Resolver: KFP OSS runs none).
    span_history = history.history_dir(config.pipeline_root, config.pipeline_name)
    history_fingerprint = span_history_fingerprint(config) if read_span_history else ""
    # Statistics of the newest earlier validated span: the gate's drift baseline.
    previous_statistics = PreviousSpanStatistics(
        statistics=statistics_gen.outputs["statistics"], history_dir=span_history,
        history_fingerprint=history_fingerprint).with_id(PREVIOUS_SPAN_STATISTICS_ID) if config.drift_check else None
    # ExampleValidator records anomalies; the gate fails the run on them.
    validation_gate = DataValidationGate(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        examples=example_gen.outputs["examples"], settings=config.validation,
        previous_statistics=previous_statistics.outputs[PREVIOUS_STATISTICS_KEY] if previous_statistics else None)
    validation_gate.add_upstream_node(example_validator)  # Its anomalies artifact is recorded even on failure.
    # After the gate passed: the span is recorded, and training reads the newest N validated spans.
    span_window = SpanWindow(
        examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
        validation_result=validation_gate.outputs["result"], history_dir=span_history,
        span_window=config.span_window, history_fingerprint=history_fingerprint).with_id(SPAN_WINDOW_ID)
    window_examples = span_window.outputs[WINDOW_EXAMPLES_KEY]
    # Not materialized: the graph runs inside training's input pipeline and inside the exported model,
    # so nobody stores a float copy of every image. Analysis only builds the label vocabulary.
    transform = tfx.components.Transform(
        examples=window_examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        materialize=False,
        disable_statistics=True,
        # Nothing feeds the analyzer cache back to a later run, so writing it was pure cost.
        disable_analyzer_cache=True,
        force_tf_compat_v1=preprocessing.FORCE_TF_COMPAT_V1,
        custom_config={"image_size": config.training.image_size, "code_version": code_version},
    )
    # Nothing is analyzed or trained before the data has been validated: the window exists only after the gate.
    # Data quality (suspect labels, near-duplicate leaks, outliers) on the base's features, before training:
    # the Trainer and the Evaluator read its filtered examples (leaking eval copies removed).
    quality = DataQuality(
        examples=window_examples, transform_graph=transform.outputs["transform_graph"],
        training=config.training, settings=config.quality, code_version=code_version,
    ) if config.quality is not None else None
    examples = quality.outputs[FILTERED_EXAMPLES_KEY] if quality is not None else window_examples
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={TRAINING_CONFIG_KEY: config.training.to_json_dict(), "code_version": code_version,
                       CHECKPOINT_ROOT_KEY: checkpoint_root(config.pipeline_root)},
    )
    baseline = create_baseline(config, trainer.outputs["model"])
    evaluation = config.evaluation
    # TFX's Evaluator and Pusher with our executors (a blessing report; atomic integer versions), kept
    # under their usual ids.
    evaluator = GatedEvaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs[BASELINE_OUTPUT_KEYS[config.baseline]],
        example_splits=["eval"],
        eval_config=build_eval_config(evaluation.min_accuracy, evaluation.max_accuracy_drop,
                                      evaluation.min_class_recall, evaluation.class_names, evaluation.top_k),
    ).with_id("Evaluator")
    pusher = VersionedPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)),
        custom_config={TFLITE_TOLERANCE_KEY: evaluation.max_tflite_accuracy_drop},
    ).with_id("Pusher")
    data_validation = [statistics_gen, schema_gen, example_validator, validation_gate, span_window]
    if previous_statistics is not None:
        data_validation.append(previous_statistics)
    return [example_gen, *data_validation, transform, *([quality] if quality is not None else []), trainer,
            baseline, evaluator, pusher]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
                    read_span_history: bool = True) -> tfx.dsl.Pipeline:
    """`read_span_history`: False when compiling (the history is read by the tasks when they run)."""
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, read_span_history),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
