# sa2va developer commands. `make setup` then `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: setup test lint clean demo

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

# The embedded model on the bundled example image and video: overlays (PNG, GIF), masks and answers in demo_out/.
demo: setup
	rm -rf demo_out
	HF_HUB_OFFLINE=1 $(VENV)/bin/sa2va demo --out demo_out

lint: setup
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
