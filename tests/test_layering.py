"""The import graph, read from the source: no circles, the domain core stays pure, and nothing
shipped imports test code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["rules", "events", "actors", "serve_apps", "harness", "chain", "cli", "live", "bench"]
# The domain core is plain data and functions: of the project, only the event schema.
RULES_MAY_IMPORT = {"rules", "events.types"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, anywhere: bool) -> set[str]:
    """Modules ``path`` imports at top level (type-checking blocks included), or ``anywhere``."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if anywhere else _top_level(tree.body)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _top_level(body: list[ast.stmt]):
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try):
            yield from _top_level([*node.body, *node.orelse])


MODULES = {module_name(p): p for lib in SHIPPED for p in (ROOT / lib).rglob("*.py")}


def test_no_module_imports_itself_back() -> None:
    graph = {
        name: {m for m in imports(path, anywhere=False) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    circles = []

    def visit(name: str, stack: list[str]) -> None:
        for target in graph[name]:
            if target in stack:
                circles.append(stack[stack.index(target) :] + [target])
            elif target not in done:
                visit(target, [*stack, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert circles == []


def test_the_domain_core_imports_only_plain_data() -> None:
    assert any(n.startswith("rules.") for n in MODULES)
    for name, path in MODULES.items():
        if name.split(".")[0] != "rules":
            continue
        ours = {m for m in imports(path, anywhere=True) if m.split(".")[0] in SHIPPED}
        assert {m for m in ours if not any(m.startswith(a) for a in RULES_MAY_IMPORT)} == set()
        assert not {m.split(".")[0] for m in imports(path, anywhere=True)} & {
            "ray",
            "docker",
            "duckdb",
            "httpx",
            "substrateinterface",
        }


def test_nothing_shipped_imports_test_code() -> None:
    offenders = {
        name
        for name, path in MODULES.items()
        if any(m.split(".")[0] == "tests" for m in imports(path, anywhere=True))
    }
    assert offenders == set()


# The environment variables library code may read: other programs' own (Ray's, Docker's,
# CUDA's as Ray sets it, tokenizers'), and the chain spec of the local dev chain, shared with
# scripts/setup.sh. Arena's settings travel as data (actors.validator_config), never this way.
FOREIGN_ENV = {
    "actors.ray_auth",  # RAY_AUTH_MODE
    "actors.supervisor",  # DOCKER_HOST, forwarded to the actors' workers
    "harness.runner",  # CUDA_VISIBLE_DEVICES, the GPUs Ray gave this worker
    "harness.local_vllm",  # the environment a vLLM subprocess inherits
    "harness.preflight",  # DOCKER_HOST, named in an error
    "harness.tiny_model",  # TOKENIZERS_PARALLELISM
    "chain.chopsticks",  # ARENA_CHAIN_SPEC, the dev chain's spec (scripts/setup.sh)
    "serve_apps.miner",  # Ray's and vLLM's, in its __main__
}
LIBRARIES = ("rules", "events", "actors", "serve_apps", "harness", "chain", "live")


def _reads_environment(path: Path) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_library_code_reads_no_arena_setting_from_the_environment() -> None:
    readers = {
        name
        for name, path in MODULES.items()
        if name.split(".")[0] in LIBRARIES and _reads_environment(path)
    }
    assert readers <= FOREIGN_ENV, readers - FOREIGN_ENV
