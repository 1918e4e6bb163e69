# routerwatch: `make demo` runs the service on the embedded store, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo incident incident-end canary-break canary-heal bench bench-drift stop test test-unit faults venv kafka-jars system-deps schemas docs clean

# Pinned by deploy/requirements.lock (pip constraints): every machine, CI's included, tests the same versions.
$(STAMP): pyproject.toml deploy/requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c deploy/requirements.lock -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

kafka-jars: system-deps
	@deploy/kafka/fetch.sh >/dev/null

system-deps:
	@deploy/install-system-deps.sh

## demo: install, start Kafka (unless ROUTERWATCH_KAFKA_BOOTSTRAP is set) and serve, simulate, report
demo: system-deps venv kafka-jars
	@deploy/demo.sh

## incident: inject an escalation incident into the running demo; it pages in the local Alertmanager
incident:
	@deploy/incident.sh start

## incident-end: the incident's recovery traffic; the page resolves
incident-end:
	@deploy/incident.sh end

## canary-break: raise the demo example router's gate threshold; its canaries page (tier flip)
canary-break:
	@deploy/canary.sh break

## canary-heal: reset the example router's switches; the canary pages resolve
canary-heal:
	@deploy/canary.sh heal

## stop: stop what `make demo` started
stop:
	@deploy/demo-stop.sh

## test: the whole suite, on a real Kafka broker, the embedded ClickHouse engine and headless Chromium
test: venv kafka-jars
	@deploy/install-system-deps.sh --with-browser
	$(BIN)/pytest -q

## faults: the fault suite and property tests in their long form (more events, longer faults; needs root for a tmpfs)
faults: venv kafka-jars
	ROUTERWATCH_FAULTS=long $(BIN)/pytest -q tests/faults tests/property

## bench: the performance suite against its baselines, on a fresh local broker (writes bench/RESULTS.md)
bench: venv kafka-jars
	$(BIN)/python -m bench.perf.run

## bench-drift: the drift detectors' replay benchmark (writes bench/RESULTS-drift.md)
bench-drift: venv
	$(BIN)/python bench/replay.py

test-unit: venv
	$(BIN)/pytest -q tests/unit

schemas: venv
	$(BIN)/routerwatch schemas export

## docs: the documentation site (mkdocs.yml, docs/) into site/, strict: a broken link fails
docs: venv
	$(BIN)/mkdocs build --strict --site-dir site

clean: stop
	rm -rf .run
