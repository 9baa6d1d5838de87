# Thin wrappers over scripts/ (see README.md). Every target sets up what it needs first.
VENV := .venv/bin
# What pytest runs; e.g. make test PYTEST_ARGS="tests/test_infra_smoke.py -x"
# tests/e2e runs separately (make e2e): its king was 'nobody' in the last clean-clone run (issue 6 open).
PYTEST_ARGS ?= tests --ignore=tests/e2e

.PHONY: setup test e2e demo lint

setup:
	scripts/setup.sh

# dockerd and the registry are started for the run and stopped afterwards, even when tests fail;
# chopsticks is started by the test session itself (tests/fixtures/chain.py).
test: setup
	scripts/infra.sh run $(VENV)/python -m pytest $(PYTEST_ARGS)

e2e: setup
	scripts/infra.sh run $(VENV)/python -m pytest tests/e2e

demo: setup
	scripts/infra.sh run $(VENV)/arena subnet

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
