"""`imagepipe monitor`: its options and handler (pipeline/cli.py adds it beside report/runs/metrics).
Nothing heavy is imported before the command runs, so `imagepipe --help` stays fast."""
import argparse
import os
import posixpath
import sys
import time
from typing import Callable

from production_monitor.defaults import DEFAULT_MAX_CONFIDENCE_DROP, DEFAULT_SAMPLE_SIZE

MONITOR_DIR_NAME = "monitoring"


def add_monitor_command(commands, add_metadata_source: Callable, metadata_reader: Callable,
                        default_model_name: str) -> None:
    monitor = commands.add_parser(
        "monitor", help="compare recent production images with what the served model version was trained on")
    monitor.add_argument("--data", required=True, help="folder or bucket (gs://...) of the images production received")
    monitor.add_argument("--serving-dir", default=None,
                         help="the Pusher's serving directory (default: <workdir>/serving)")
    add_metadata_source(monitor)
    monitor.add_argument("--version", type=int, default=None, help="served version (default: the newest, as TF "
                                                                   "Serving's default policy serves)")
    monitor.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE,
                         help="the newest N images (by modification time); as many eval images")
    monitor.add_argument("--since-hours", type=float, default=None, help="only images modified in the last H hours")
    monitor.add_argument("--max-confidence-drop", type=float, default=DEFAULT_MAX_CONFIDENCE_DROP,
                         help="mean top-1 confidence below eval's by more than this is a finding")
    monitor.add_argument("--model-name", default=default_model_name, help="the `model` label of the metrics")
    monitor.add_argument("--output-dir", default=None,
                         help="where the HTML page, monitor.prom and monitor.json go (default: <workdir>/monitoring)")
    monitor.add_argument("--pushgateway", metavar="URL", default=None,
                         help="also push the metrics to this Pushgateway (group job=imagepipe-monitor, model=NAME)")
    monitor.set_defaults(handler=lambda args: cmd_monitor(args, metadata_reader))


def _default_under_workdir(args: argparse.Namespace, name: str) -> str:
    if args.metadata_grpc:
        raise ValueError(f"with --metadata-grpc, pass --{name.replace('_', '-')} too (there is no local workdir)")
    from pipeline.local_runner import WorkdirLayout

    layout = WorkdirLayout(os.path.abspath(args.workdir))
    return layout.serving_dir if name == "serving_dir" else posixpath.join(layout.root, MONITOR_DIR_NAME)


def cmd_monitor(args: argparse.Namespace, metadata_reader: Callable) -> int:
    from production_monitor.monitor import run_monitor

    try:
        serving_dir = args.serving_dir or _default_under_workdir(args, "serving_dir")
        output_dir = args.output_dir or _default_under_workdir(args, "output_dir")
        since = time.time() - args.since_hours * 3600 if args.since_hours else 0
        published = run_monitor(metadata_reader(args), args.data, serving_dir, output_dir, args.model_name,
                                version=args.version, sample_size=args.sample_size, since_seconds=since,
                                max_confidence_drop=args.max_confidence_drop, pushgateway=args.pushgateway)
    except (ValueError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_result(published)
    return 0


def _print_result(published) -> None:
    result = published.result
    production = result["production"]
    print(f"Monitored {production['count']} production images against version {result['version']} "
          f"(run {result['run_id']}).")
    print(f"  class mix L-inf vs eval: {result['class_mix_linf']:.3f} (threshold {result['class_mix_threshold']}); "
          f"mean top-1 confidence {production['mean_confidence']:.3f} (eval {result['eval']['mean_confidence']:.3f})")
    not_predicted = dict(result["rejected"], refused_by_model=production["refused"])
    if any(not_predicted.values()):
        print(f"  not predicted: {', '.join(f'{reason} {count}' for reason, count in not_predicted.items() if count)}")
    if result["findings"]:
        print(f"Shift detected ({len(result['findings'])} findings):")
        for finding in result["findings"]:
            print(f"  {finding['kind']} {finding['subject']}: {finding['detail']}")
    else:
        print("No shift: every measurement is within its threshold.")
    print(f"Monitor page: {published.page_path}")
    print(f"Metrics (Prometheus text format): {published.metrics_path}")
    if published.pushed_to:
        print(f"Metrics pushed to the Pushgateway at {published.pushed_to}")
