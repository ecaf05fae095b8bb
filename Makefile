# Two entry points, each doing its own set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-py313 test-latest lock lint bench clean soak-tests crash-soak

# Tests install the exact versions of requirements/lock.txt (made by `make lock`), so a
# release elsewhere cannot turn main red; pyproject.toml keeps ranges for users.
UV_VERSION = 0.13.10
LOCK       = requirements/lock.txt

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --progress-bar off uv==$(UV_VERSION)
	@echo "installing the locked packages ($(LOCK)) into $(VENV) ..."
	$(BIN)/uv pip install -q --python $(BIN)/python -r $(LOCK)
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@echo "installed: $$($(BIN)/uv pip list --python $(BIN)/python 2>/dev/null | tail -n +3 | wc -l) packages"
	touch $(STAMP)

## Two peers in two processes pair on this machine and exchange messages.
demo: $(STAMP)
	$(BIN)/volli-nb demo

## The whole suite: lint, types, then pytest (inside a throwaway network namespace when root).
test: $(STAMP)
	$(BIN)/ruff check volli_nb tests
	$(BIN)/mypy
	$(BIN)/volli-nb netns --if-root -- $(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

## The newest Python too: the pure core, the signaling load test and real pairing, on 3.13.
PY313 ?= python3.13
test-py313:
	$(MAKE) VENV=.venv313 PYTHON=$(PY313) .venv313/.installed
	.venv313/bin/volli-nb netns --if-root -- .venv313/bin/python -m pytest $(PYTEST_ARGS) \
	  -m "not network" --ignore=tests/test_binder.py
	.venv313/bin/volli-nb netns --if-root -- .venv313/bin/python -m pytest $(PYTEST_ARGS) \
	  tests/test_signal_load.py tests/test_two_process.py

lint: $(STAMP)
	$(BIN)/ruff check volli_nb tests
	$(BIN)/ruff format --check volli_nb tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/volli-nb bench

clean:
	rm -rf $(VENV) .venv313 .pytest_cache .mypy_cache .ruff_cache

## Not in CI: SIGKILL at every step of the message path, KILLS times (the suite does 40).
KILLS ?= 200
crash-soak: $(STAMP)
	VOLLI_KILLS=$(KILLS) $(BIN)/volli-nb netns --if-root -- $(BIN)/python -m pytest -s \
	  tests/test_crash_loop.py

## Not in CI: the suite N times (some runs beside a CPU hog, one shuffled), failures per test.
N ?= 5
soak-tests: $(STAMP)
	$(BIN)/python tools/soak.py -n $(N) --hog $$(( $(N) / 3 + 1 )) --shuffle 1 $(SOAK_ARGS)

## Refresh the lock on purpose (its own commit): the newest versions pyproject.toml allows.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --upgrade -q -o $(LOCK)
	$(BIN)/uv pip compile binder/requirements.in --universal --python-version 3.11 \
	  -c $(LOCK) -q -o binder/requirements.txt

## Not in CI: would today's releases break us?  The newest versions pyproject.toml allows, in
## a throwaway venv: ruff, mypy and the pure-core tests.  Reports what differs from the lock.
test-latest: $(STAMP)
	$(BIN)/python tools/test_latest.py
