# One set of verbs for people and CI. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-quick bench-deps reliability soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: install and start the daemon on the demo config (SQLite file, loopback, demo keys)
run: $(STAMP)
	$(BIN)/alertd serve --config config/demo.toml

## test: install, lint, type-check and run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check alertd tests bench
	$(BIN)/mypy alertd
	scripts/install-browser-deps
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check alertd tests bench
	$(BIN)/mypy alertd

## bench: the full benchmarks (minutes); bench-quick: the short versions CI runs
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

## reliability: the reliability suite including its slow part (~5 min; soak excluded)
reliability: $(STAMP)
	ALERTD_SLOW=1 $(BIN)/pytest tests/reliability -k 'not soak'

## soak: SOAK_SECONDS (default 600) at 200 events/s with a flapping receiver
soak: $(STAMP)
	scripts/soak $(SOAK_SECONDS)

## bench-deps: optional tools for the benches (wrk load generator; py-spy profiler)
bench-deps: $(STAMP)
	command -v wrk >/dev/null 2>&1 || { apt-get update && apt-get install -y wrk; }
	$(BIN)/pip install --quiet py-spy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
