"""Writes what is published about a run (the newest by default): the HTML report and the Prometheus metrics."""
import dataclasses
import os
import re
from typing import Dict, Optional

from pipeline.report import html_page, plots, prometheus, run_data
from pipeline.report.store import MetadataReader


def report_file_name(run_id: str) -> str:
    """run-2026-11-27T14-27-44.908774.html: a run id as a portable file name."""
    return "run-" + re.sub(r"[^A-Za-z0-9._-]+", "-", run_id) + ".html"


def write_html(data: Dict, path: str) -> str:
    page = html_page.render(data, plots.all_plots(data))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


@dataclasses.dataclass(frozen=True)
class PublishedRun:
    run_id: str
    report_path: Optional[str]
    metrics_path: Optional[str]
    pushed_to: Optional[str]


def publish_run(reader: MetadataReader, run_id: Optional[str] = None, report_dir: Optional[str] = None,
                report_path: Optional[str] = None, metrics_path: Optional[str] = None,
                pushgateway: Optional[str] = None, failure: Optional[str] = None) -> PublishedRun:
    """Gathers the run's data once, then writes the report (into report_dir, or to report_path), the metrics
    file and pushes the metrics, each only when asked for. `failure`: the error that ended the run, which ML
    Metadata does not keep (a failed execution records no message), shown in the report."""
    data = run_data.gather(reader, run_id)
    data["run"]["failure"] = failure
    html_path = None
    if report_path or report_dir:
        html_path = write_html(data, report_path or os.path.join(report_dir, report_file_name(data["run"]["run_id"])))
    registry = prometheus.registry_for_run(data) if (metrics_path or pushgateway) else None
    if metrics_path:
        prometheus.write_metrics_file(registry, metrics_path)
    if pushgateway:
        prometheus.push_metrics(registry, pushgateway, data["run"]["pipeline"])
    return PublishedRun(data["run"]["run_id"], html_path, metrics_path, pushgateway)
