# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config/watcher.yaml

.PHONY: install run test lint typecheck unit lock clean

# The C extension (watcher/rules/_keyscan.c) is built by the install: rebuild when it changes.
$(STAMP): pyproject.toml constraints.txt watcher/rules/_keyscan.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/watcher run --config $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check watcher tests benchmarks
	$(BIN)/ruff format --check watcher tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	{ echo "# Pinned versions of every package the project installs (update with: make lock)"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9_.-]+=='; } > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
