# `make run` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest fuzz clean vendor browser

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

pytest: $(STAMP) browser
	$(BIN)/pytest

# The browser tests drive Debian's Chromium (Playwright's own browser download is not reachable here).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# htmx and Chart.js, with their licences, into agora/web/static from the npm registry; the result is committed,
# so running Agora never needs this (nor npm). Bump the versions here and re-run to upgrade.
HTMX_VERSION    := 2.0.11
CHARTJS_VERSION := 4.6.2
STATIC := agora/web/static
vendor:
	rm -rf var/vendor && mkdir -p var/vendor
	cd var/vendor && npm pack --silent htmx.org@$(HTMX_VERSION) chart.js@$(CHARTJS_VERSION)
	cd var/vendor && mkdir htmx chartjs && tar xzf htmx.org-$(HTMX_VERSION).tgz -C htmx && tar xzf chart.js-$(CHARTJS_VERSION).tgz -C chartjs
	mkdir -p $(STATIC)/vendor
	cp var/vendor/htmx/package/dist/htmx.min.js $(STATIC)/vendor/htmx.min.js
	cp var/vendor/htmx/package/LICENSE $(STATIC)/vendor/htmx.LICENSE.txt
	cp var/vendor/chartjs/package/dist/chart.umd.min.js $(STATIC)/vendor/chart.umd.min.js
	cp var/vendor/chartjs/package/LICENSE.md $(STATIC)/vendor/chart.js.LICENSE.md
	rm -rf var/vendor

test: lint typecheck pytest

# The long fuzzing run: schemathesis with AGORA_FUZZ_EXAMPLES cases per operation and role (125: over
# 10,000 per role), plus its coverage phase. `make test` runs the same test with a few cases each.
AGORA_FUZZ_EXAMPLES ?= 125
fuzz: $(STAMP)
	AGORA_FUZZ_EXAMPLES=$(AGORA_FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider tests/test_fuzz.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
