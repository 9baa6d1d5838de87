"""Shared fixtures live in tests/fixtures/, one module per real part they start."""

pytest_plugins = [
    "tests.fixtures.chain",
    "tests.fixtures.docker",
    "tests.fixtures.ray",
    "tests.fixtures.vllm",
]


# Each stops and restarts the session's Ray cluster, so they run after the rest, e2e last.
RUN_LAST = ("tests/cluster/", "tests/e2e/")


def pytest_collection_modifyitems(config, items):
    """Run the multi-node tests, then the end-to-end tests, after everything else."""
    items.sort(key=lambda item: [part in item.nodeid for part in reversed(RUN_LAST)])
