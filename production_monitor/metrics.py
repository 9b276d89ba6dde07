"""The monitor's findings as Prometheus gauges (for the dashboard's production row and the
ImagepipeProductionShift alert), written as a text file and optionally pushed to a Pushgateway as the group
job="imagepipe-monitor", model=<name>: each run replaces the model's previous figures."""
from typing import Mapping, Optional

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

JOB = "imagepipe-monitor"


def registry_for(result: Mapping, model_name: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    labels = {"model": model_name, "version": str(result["version"])}

    def gauge(name: str, documentation: str, extra=()):
        return Gauge(name, documentation, ("model", "version", *extra), registry=registry)

    images = gauge("imagepipe_production_images", "Sampled production images, by outcome", ("outcome",))
    images.labels(**labels, outcome="predicted").set(result["production"]["count"])
    images.labels(**labels, outcome="refused_by_model").set(result["production"]["refused"])
    for reason, count in result["rejected"].items():
        images.labels(**labels, outcome=reason).set(count)
    skew = gauge("imagepipe_production_feature_skew",
                 "TFDV skew distance of an image feature from the training statistics", ("feature",))
    for feature, distance in result["skew_distances"].items():
        skew.labels(**labels, feature=feature).set(distance)
    gauge("imagepipe_production_skew_findings", "Skew and schema findings over the schema's thresholds").labels(
        **labels).set(sum(finding["kind"] in ("skew", "schema") for finding in result["findings"]))
    gauge("imagepipe_production_class_distribution_linf",
          "L-infinity distance of the predicted-class mix from the eval split's").labels(**labels).set(
        result["class_mix_linf"])
    confidence = gauge("imagepipe_production_mean_confidence", "Mean top-1 score", ("source",))
    confidence.labels(**labels, source="production").set(result["production"]["mean_confidence"])
    confidence.labels(**labels, source="eval").set(result["eval"]["mean_confidence"])
    gauge("imagepipe_production_shift_detected", "1 if any finding is over its threshold").labels(**labels).set(
        int(bool(result["findings"])))
    gauge("imagepipe_production_monitor_timestamp_seconds", "When the monitor ran (Unix time)").labels(
        **labels).set(result["timestamp"])
    return registry


def push(registry: CollectorRegistry, gateway_url: str, model_name: str, timeout_s: Optional[float] = 10) -> None:
    push_to_gateway(gateway_url, job=JOB, registry=registry, grouping_key={"model": model_name}, timeout=timeout_s)
