# Two commands do all the set-up on a fresh machine:
#   make train   -> venv + install + `ganrun train` (DCGAN on the embedded digits, ~2 min on 2 CPU cores)
#   make test    -> venv + install + the default test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install train test test-all lint format clean

$(BIN)/ganrun: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(BIN)/ganrun

train: install
	$(BIN)/ganrun train $(ARGS)

test: install
	$(BIN)/pytest -q

test-all: install  # also the slow and gpu-marked tests
	$(BIN)/pytest -q -m ""

lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: install
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
