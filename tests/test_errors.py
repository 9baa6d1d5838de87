"""One error tree: every exception Arena defines descends from ``rules.errors.ArenaError``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from rules.errors import ArenaError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["rules", "events", "actors", "serve_apps", "harness", "chain", "cli", "live"]


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            module = importlib.import_module(name)
            found += [
                cls
                for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, BaseException) and cls.__module__ == name
            ]
    return found


def test_every_exception_is_an_arena_error() -> None:
    exceptions = defined_exceptions()
    assert len(exceptions) > 25
    assert [c.__qualname__ for c in exceptions if not issubclass(c, ArenaError)] == []


def test_refusals_of_bad_input_stay_value_errors() -> None:
    # Callers that catch ValueError for bad input keep working under the tree.
    from chain.wallet import WalletError
    from events.errors import EventDecodeError
    from rules.image_ref import ImageRefError

    assert all(issubclass(c, ValueError) for c in (WalletError, EventDecodeError, ImageRefError))
