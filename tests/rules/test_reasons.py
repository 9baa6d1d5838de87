"""Reason codes live in ``rules.reasons``: every code the sandbox raises with is listed there."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from rules.reasons import REGISTRY_FAULTS, ContainerFailure, ImageRefusal, SandboxReason

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_ERRORS = {"ImageRejected", "ContainerDied", "StartupTimeout", "SandboxError"}


def literal_codes(node: ast.expr) -> list[str]:
    """The string literals an argument can evaluate to (through ``a if c else b``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return literal_codes(node.body) + literal_codes(node.orelse)
    return []


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") in SANDBOX_ERRORS
                and node.args
            ):
                codes |= set(literal_codes(node.args[0]))
    return codes


def test_every_sandbox_code_raised_is_a_listed_reason() -> None:
    codes = raised_codes()
    assert {"not_pinned", "too_large", "fork_bomb", "unhealthy"} <= codes
    assert codes - set(typing.get_args(ImageRefusal) + typing.get_args(ContainerFailure)) == set()


def test_the_groups_are_what_they_say() -> None:
    assert set(typing.get_args(SandboxReason)) == {ImageRefusal, ContainerFailure}
    assert set(typing.get_args(ImageRefusal)) > REGISTRY_FAULTS
