# sa2va developer commands. `make setup` then `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: setup setup-ui test test-serve serve lint clean demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	# torch first, pinned, so nothing later can pull another build
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e '.[dev]'
	touch $@

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

# Playwright for the web-UI test (tests/serve/test_ui.py). It drives the system Chromium (`apt-get install chromium`);
# no browser is downloaded. Without either, that one test is skipped.
setup-ui: setup
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PIP) install --quiet playwright

test-serve: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q tests/serve

# HTTP API and web UI on http://127.0.0.1:8000, e.g. `make serve SERVE_ARGS="--model /data/Sa2VA-4B --device cuda"`
serve: setup
	$(VENV)/bin/sa2va serve $(SERVE_ARGS)

# The embedded model on the bundled example image and video: overlays (PNG, GIF), masks and answers in demo_out/.
demo: setup
	rm -rf demo_out
	HF_HUB_OFFLINE=1 $(VENV)/bin/sa2va demo --out demo_out

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
