# Thin wrappers over scripts/ (see README.md). Every target sets up what it needs first.
VENV := .venv/bin
# What pytest runs; e.g. make test PYTEST_ARGS="tests/test_infra_smoke.py -x"
PYTEST_ARGS ?= tests --durations=15

.PHONY: setup test e2e demo lint

setup:
	scripts/setup.sh

# dockerd and the registry are started for the run and stopped afterwards, even when tests fail;
# chopsticks is started by the test session itself (tests/fixtures/chain.py).
test: setup
	scripts/infra.sh run $(VENV)/python -m pytest $(PYTEST_ARGS)

# The end-to-end run alone (make test runs it too, last).
e2e: setup
	scripts/infra.sh run $(VENV)/python -m pytest tests/e2e

demo: setup
	scripts/infra.sh run $(VENV)/arena subnet

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
