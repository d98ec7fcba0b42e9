# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Train both stages on the built-in synthetic tissue; writes the enhanced profiles, an .h5ad,
# a figure and metrics into outputs/demo/ and prints soscope vs. the replicate baseline.
demo: $(STAMP)
	$(PY) train.py hydra.run.dir=outputs/demo

test: $(STAMP)
	$(PY) -m ruff check soscope tests scripts train.py
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check soscope tests scripts train.py
	$(PY) -m ruff format --check soscope tests scripts train.py

format: $(STAMP)
	$(PY) -m ruff format soscope tests scripts train.py
	$(PY) -m ruff check --fix soscope tests scripts train.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
