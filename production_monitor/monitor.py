"""One monitor run: sample, measure, decide, publish (metrics file, optional push, HTML page, JSON)."""
import dataclasses
import json
import posixpath
import time
from typing import Dict, Optional

import tensorflow as tf

from components import features
from pipeline.report.prometheus import generate_text
from pipeline.report.store import MetadataReader
from production_monitor import comparison, html_page, metrics
from production_monitor.defaults import DEFAULT_MAX_CONFIDENCE_DROP, DEFAULT_SAMPLE_SIZE
from production_monitor.reference import ServedReference, find_reference
from production_monitor.sample import read_sample

METRICS_FILE_NAME = "monitor.prom"
RESULT_FILE_NAME = "monitor.json"


@dataclasses.dataclass(frozen=True)
class Published:
    result: Dict
    page_path: str
    metrics_path: str
    pushed_to: Optional[str]


def _class_names(version_dir: str):
    path = posixpath.join(version_dir, features.ASSETS_EXTRA_DIR, features.MODEL_INFO_FILE_NAME)
    with tf.io.gfile.GFile(path, "r") as handle:
        return json.loads(handle.read())["class_names"]


def measure(reference: ServedReference, data: str, sample_size: int, since_seconds: float,
            max_confidence_drop: float) -> Dict:
    sample = read_sample(data, sample_size, since_seconds)
    if not sample.images:
        raise ValueError(f"No usable image among the {sample.files_listed} image files under {data} "
                         f"(rejected: {dict(sample.rejected) or 'none'}).")
    findings, distances = comparison.skew_findings(
        reference.train_statistics, comparison.image_statistics(sample.images), reference.schema)
    model = comparison.ServedModel(reference.version_dir)
    class_names = _class_names(reference.version_dir)
    production = comparison.summarize(model.top1([image.data for image in sample.images]), class_names)
    evaluation = comparison.summarize(
        model.top1(comparison.eval_images(reference.eval_examples_pattern, sample_size)), class_names)
    linf, linf_threshold = comparison.class_mix_linf(production, evaluation), comparison.label_linf_threshold(
        reference.schema)
    if linf > linf_threshold:
        worst = max(class_names, key=lambda n: abs(production.class_shares[n] - evaluation.class_shares[n]))
        findings.append(comparison.Finding(
            "class_mix", "predicted class", linf, linf_threshold,
            f"{worst!r}: {production.class_shares[worst]:.2f} of production predictions, "
            f"{evaluation.class_shares[worst]:.2f} on eval"))
    drop = evaluation.mean_confidence - production.mean_confidence
    if drop > max_confidence_drop:
        findings.append(comparison.Finding(
            "confidence", "top-1 confidence", drop, max_confidence_drop,
            f"mean {production.mean_confidence:.3f} in production, {evaluation.mean_confidence:.3f} on eval"))
    return {"data": data, "version": reference.version, "version_dir": reference.version_dir,
            "run_id": reference.run_id, "timestamp": time.time(), "files_listed": sample.files_listed,
            "files_sampled": len(sample.images) + sum(sample.rejected.values()), "rejected": dict(sample.rejected),
            "skew_distances": distances, "class_mix_linf": linf, "class_mix_threshold": linf_threshold,
            "confidence_drop_threshold": max_confidence_drop,
            "production": dataclasses.asdict(production), "eval": dataclasses.asdict(evaluation),
            "findings": [dataclasses.asdict(finding) for finding in findings]}


def _write(path: str, text: str) -> str:
    tf.io.gfile.makedirs(posixpath.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text)
    return path


def run_monitor(reader: MetadataReader, data: str, serving_dir: str, output_dir: str, model_name: str,
                version: Optional[int] = None, sample_size: int = DEFAULT_SAMPLE_SIZE, since_seconds: float = 0,
                max_confidence_drop: float = DEFAULT_MAX_CONFIDENCE_DROP,
                pushgateway: Optional[str] = None) -> Published:
    """Measures and writes monitor-<time>.html, monitor.prom and monitor.json under output_dir (any
    tf.io.gfile path); pushes the metrics when a Pushgateway is given (a failed push raises)."""
    reference = find_reference(reader, serving_dir, version)
    result = measure(reference, data, sample_size, since_seconds, max_confidence_drop)
    registry = metrics.registry_for(result, model_name)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(result["timestamp"]))
    page = _write(posixpath.join(output_dir, f"monitor-{stamp}.html"), html_page.render(result))
    metrics_path = _write(posixpath.join(output_dir, METRICS_FILE_NAME), generate_text(registry))
    _write(posixpath.join(output_dir, RESULT_FILE_NAME), json.dumps(result, indent=2))
    if pushgateway:
        metrics.push(registry, pushgateway, model_name)
    return Published(result, page, metrics_path, pushgateway)
