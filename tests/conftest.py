"""Shared fixtures live in tests/fixtures/, one module per real part they start."""

pytest_plugins = [
    "tests.fixtures.chain",
    "tests.fixtures.docker",
    "tests.fixtures.ray",
    "tests.fixtures.vllm",
]
