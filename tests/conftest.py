"""Shared fixtures live in tests/fixtures/, one module per real part they start."""

pytest_plugins = [
    "tests.fixtures.chain",
    "tests.fixtures.docker",
    "tests.fixtures.ray",
    "tests.fixtures.vllm",
]


def pytest_collection_modifyitems(config, items):
    """Run the end-to-end tests last: they stop and restart the session's Ray cluster."""
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid)
