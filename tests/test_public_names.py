"""Every library module declares its public surface: ``__all__`` lists each public name the
module defines, and names nothing that is not there.

Read from the source (no imports), so it costs milliseconds and needs no Ray, engine or chain.
The ``arena`` command (``cli/``, whose options are being unified separately) and the image
sources (``images/``, built into containers) are left out. Module loggers and type variables are
plumbing, not surface.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ["rules", "events", "actors", "serve_apps", "harness", "chain", "live", "bench"]
PLUMBING = {"log", "logger"}
MODULES = sorted(p for lib in LIBRARIES for p in (ROOT / lib).rglob("*.py"))


def _is_type_var(node: ast.AST) -> bool:
    call = getattr(node, "value", None)
    return isinstance(call, ast.Call) and getattr(call.func, "id", "") == "TypeVar"


def surface(path: Path) -> tuple[list[str] | None, list[str], set[str]]:
    """(``__all__`` or None, public names defined at top level, every name bound there)."""
    declared, defined, bound = None, [], set()
    for node in ast.parse(path.read_text()).body:
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if "__all__" in names:
                declared = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        bound |= set(names)
        if not _is_type_var(node):
            defined += [n for n in names if not n.startswith("_") and n not in PLUMBING]
    return declared, defined, bound


def test_the_libraries_are_found() -> None:
    assert len(MODULES) > 50
    assert ROOT / "rules" / "image_ref.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_all_lists_exactly_the_public_names(path: Path) -> None:
    declared, defined, bound = surface(path)
    if declared is None:
        assert path.name == "__init__.py" and not defined, f"{path.name} has no __all__"
        return
    assert [n for n in defined if n not in declared] == [], "public but not in __all__"
    assert [n for n in declared if n not in bound] == [], "in __all__ but not defined"
    assert len(set(declared)) == len(declared), "listed twice"
