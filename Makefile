# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/agora load --if-empty examples/demo.yaml --print-credentials
	$(BIN)/agora serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check agora agora_agent tests $(wildcard bench)
	$(BIN)/ruff format --check agora agora_agent tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# The long fuzzing run: schemathesis with AGORA_FUZZ_EXAMPLES cases per operation and role (125: over
# 10,000 per role), plus its coverage phase. `make test` runs the same test with a few cases each.
AGORA_FUZZ_EXAMPLES ?= 125
fuzz: $(STAMP)
	AGORA_FUZZ_EXAMPLES=$(AGORA_FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider tests/test_fuzz.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
