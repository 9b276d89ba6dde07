"""Debian's real Prometheus and Pushgateway, started on 127.0.0.1 free ports with temporary data folders
and stopped after the test (`make prometheus` installs them; `make test` does it first), plus a client of
Prometheus' HTTP API and Grafana's substitution of a dashboard's variables."""
import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import yaml

from tests.loopback import free_port, stop

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
REPO = Path(__file__).resolve().parent.parent
RULES_DIR = REPO / "monitoring" / "prometheus"
RULES_FILE = RULES_DIR / "imagepipe-alerts.rules.yml"
RULE_TEST_FILES = (RULES_DIR / "imagepipe-alerts.test.yml", RULES_DIR / "imagepipe-alerts-history.test.yml")
DASHBOARD_FILE = REPO / "monitoring" / "grafana" / "imagepipe-dashboard.json"
# Scraped and evaluated every 2 s, so a test sees a push within seconds (a scrape times out after one
# interval: 1 s was too short on 2 loaded cores).
SCRAPE_INTERVAL_S = 2


def require(binary: str) -> str:
    if not Path(binary).exists():
        pytest.fail(f"{binary} is missing: `make prometheus` installs Debian's prometheus and prometheus-pushgateway "
                    "(make test does it first).")
    return binary


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    pytest.fail(f"{url} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _status_flags(url: str, path: str) -> Dict:
    with urllib.request.urlopen(f"{url}{path}", timeout=5) as response:
        data = json.load(response)["data"]
    return data.get("flags", data)


@contextlib.contextmanager
def _server(command: List[str], ready_url: str, log: Path, own_flag: Tuple[str, str, str]) -> Iterator[None]:
    """`own_flag` (status path, flag, value) tells our server from another test's that took the free port
    between free_port() and the bind: then ours exits and theirs would answer."""
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_ready(ready_url, process, log)
        status_path, flag, value = own_flag
        base = ready_url.rsplit("/-/", 1)[0]
        if _status_flags(base, status_path).get(flag) != value:
            pytest.fail(f"{base} is another process's server (port taken after free_port()); rerun.")
        yield
    finally:
        stop(process)


@contextlib.contextmanager
def pushgateway(folder: Path) -> Iterator[str]:
    """A Pushgateway (in memory: no persistence file); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A persistence file of its own identifies it (written every 5 minutes; the tests take less).
    persistence = str(folder / "pushgateway.state")
    with _server([require(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={persistence}"],
                 f"{url}/-/ready", folder / "pushgateway.log", ("/api/v1/status", "persistence.file", persistence)):
        yield url


def prometheus_config(targets: Dict[str, Dict], rule_files: Sequence[Path]) -> Dict:
    """Scrape configs by job name: {"job": {"target": "127.0.0.1:N", "metrics_path": ..., "honor_labels": ...}}."""
    interval = f"{SCRAPE_INTERVAL_S}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [spec["target"]]}],
             "metrics_path": spec.get("metrics_path", "/metrics"), "honor_labels": spec.get("honor_labels", False)}
            for job, spec in targets.items()],
    }


@contextlib.contextmanager
def prometheus(folder: Path, targets: Optional[Dict[str, Dict]] = None,
               rule_files: Sequence[Path] = ()) -> Iterator[str]:
    """A Prometheus with its own data folder, scraping `targets`; yields its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(targets or {}, rule_files)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [require(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    with _server(command, f"{url}/-/ready", folder / "prometheus.log",
                 ("/api/v1/status/flags", "storage.tsdb.path", str(folder / "data"))):
        yield url


def api(url: str, path: str, **params) -> Dict:
    """GET Prometheus' HTTP API; returns `data`, failing the test on an error answer (a bad query)."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    try:
        with urllib.request.urlopen(f"{url}{path}{query}", timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def instant_query(url: str, expression: str) -> List[Dict]:
    return api(url, "/api/v1/query", query=expression)["result"]


def dashboard_panels(dashboard_path: Path = DASHBOARD_FILE) -> List[Dict]:
    dashboard = json.loads(dashboard_path.read_text())
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def grafana_expression(expression: str, rate_interval: str) -> str:
    """What Grafana sends for the dashboard's variables with "All" selected: a multi-value variable's
    allValue (".*") and $__rate_interval (Grafana: at least 4 scrape intervals)."""
    expression = re.sub(r"\$(pipeline|model)\b", ".*", expression)
    return expression.replace("$__rate_interval", rate_interval)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require(PROMTOOL), *args], capture_output=True, text=True, cwd=RULES_DIR, timeout=300)
