"""`imagepipe monitor`: what production sends, against what the served model version was trained and
evaluated on. Open-source TF Serving cannot log requests (a `logging_config` fails with "No
request-logger-creator provided", tensorflow/serving#408), so the monitor reads the images the application
keeps: TFDV statistics of their format and size against the version's training statistics (skew, with the
schema's thresholds), the served model's predicted-class mix against the eval split's (L-infinity), and its
mean top-1 confidence against eval's. Results: Prometheus metrics and an HTML page.

reference.py finds the served version's training statistics, eval split and schema in ML Metadata;
sample.py reads a sample of recent images; comparison.py measures; metrics.py and html_page.py publish;
monitor.py ties them together.
"""
