# Two entry points for a fresh machine: `make demo` (main job) and `make test` (test suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install lint

$(BIN)/activate:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q torch==2.13.0 -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/symloss search

test: install
	$(BIN)/ruff check symloss tests benchmarks paper_repro
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q
