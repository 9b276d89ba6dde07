"""TEST DOUBLE, not TF Serving: a loopback HTTP server that serves a page in the format of TF Serving's
/monitoring/prometheus/metrics, with TF Serving's metric names, labels and buckets, and traffic that grows
at every scrape. No tensorflow_model_server installs here (see README), so the dashboard's TF Serving panels
are checked against this stand-in.

Names and labels from tensorflow/serving: tensorflow_serving/servables/tensorflow/util.cc
(`/tensorflow/serving/request_count` {model_name, status}, status = the canonical code's name, "OK" on
success; `/tensorflow/serving/request_latency` {model_name, API, entrypoint}, microseconds,
Buckets::Exponential(10, 1.8, 33)); the page's format from tensorflow_serving/util/prometheus_exporter.cc
('/' becomes ':', `# TYPE` lines and no HELP, cumulative `_bucket` lines with le="+Inf" last, `_sum`, `_count`).
"""
import contextlib
import http.server
import threading
from typing import Dict, Iterator, List

import numpy as np

METRICS_PATH = "/monitoring/prometheus/metrics"
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
BUCKET_LIMITS = [10 * 1.8 ** index for index in range(32)]  # The 33rd bucket is +Inf.


class SimulatedTraffic:
    """Requests to one model over REST: mostly OK, a few INVALID_ARGUMENT (bad images), latencies near 15 ms."""

    def __init__(self, model_name: str, seed: int = 0):
        self.model_name = model_name
        self._rng = np.random.default_rng(seed)
        self.status_counts = {"OK": 0, "INVALID_ARGUMENT": 0}
        self.bucket_counts = [0] * (len(BUCKET_LIMITS) + 1)
        self.latency_sum = 0.0

    def advance(self, requests: int = 50, error_share: float = 0.02) -> None:
        errors = int(self._rng.binomial(requests, error_share))
        self.status_counts["OK"] += requests - errors
        self.status_counts["INVALID_ARGUMENT"] += errors
        for latency in self._rng.lognormal(np.log(15_000), 0.4, requests):
            self.bucket_counts[int(np.searchsorted(BUCKET_LIMITS, latency))] += 1
            self.latency_sum += latency

    def page(self) -> str:
        lines: List[str] = [f"# TYPE {REQUEST_COUNT} counter"]
        for status, count in self.status_counts.items():
            lines.append(f'{REQUEST_COUNT}{{model_name="{self.model_name}",status="{status}"}} {count}')
        labels = f'model_name="{self.model_name}",API="predict",entrypoint="REST"'
        lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
        cumulative = 0
        for index, count in enumerate(self.bucket_counts):
            cumulative += count
            limit = format(BUCKET_LIMITS[index], ".6g") if index < len(BUCKET_LIMITS) else "+Inf"
            lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="{limit}"}} {cumulative}')
        lines.append(f"{REQUEST_LATENCY}_sum{{{labels}}} {self.latency_sum:.0f}")
        lines.append(f"{REQUEST_LATENCY}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"


@contextlib.contextmanager
def tf_serving_metrics_double(model_name: str) -> Iterator[Dict]:
    """Serves the page on 127.0.0.1; yields {"target": "127.0.0.1:PORT", "metrics_path": ...} for a scrape config."""
    traffic = SimulatedTraffic(model_name)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != METRICS_PATH:
                self.send_error(404)
                return
            with lock:
                traffic.advance()
                body = traffic.page().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # A scrape Prometheus gave up on (timeout) only breaks its own connection.

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"target": f"127.0.0.1:{server.server_address[1]}", "metrics_path": METRICS_PATH}
    finally:
        server.shutdown()
        server.server_close()
