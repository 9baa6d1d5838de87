"""The copy rule, on plain data: which signal matches, who is the original, who copies; and
which image configs run the same way (the ``layers and runtime config`` signal)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from harness.sandbox_errors import ImageRejected
from harness.sandbox_image import runtime_digest
from rules.copy_rule import Fingerprint, FingerprintIndex, copy_of, shared_signal

R = "sha256:runtime-a"
A = Fingerprint("a", 10, "sha256:da", "sha256:ca", R)


def fp(hotkey: str, block: int, d: str, config: str = "", runtime: str = "") -> Fingerprint:
    return Fingerprint(
        hotkey,
        block,
        f"sha256:{d}",
        f"sha256:{config}" if config else "",
        f"sha256:{runtime}" if runtime else "",
    )


def case(what: str, candidate: Fingerprint, earlier: list[Fingerprint], expected: object) -> object:
    return pytest.param(candidate, earlier, expected, id=what)


CASES = [
    # candidate, earlier submissions, expected (original's key, signal) or None
    case("same manifest digest", fp("b", 11, "da"), [A], ("a@10", "manifest digest")),
    case("same config digest", fp("b", 11, "db", "ca", "x"), [A], ("a@10", "config digest")),
    case(
        "relabelled: same layers and runtime config",
        Fingerprint("b", 11, "sha256:db", "sha256:cb", R),
        [A],
        ("a@10", "layers and runtime config"),
    ),
    case(
        "all three: the strongest is named",
        Fingerprint("b", 11, A.digest, A.config_digest, R),
        [A],
        ("a@10", "manifest digest"),
    ),
    case("runs another way", fp("b", 11, "db", "cb", "runtime-b"), [A], None),
    case("unread images share no empty value", fp("b", 11, "db"), [fp("a", 10, "dx")], None),
    case("an earlier one copies no later one", A, [Fingerprint("b", 11, "sha256:db", "", R)], None),
    case(
        "same block: lower hotkey first",
        Fingerprint("b", 10, "sha256:db", "sha256:cb", R),
        [A],
        ("a@10", "layers and runtime config"),
    ),
    case(
        "same block: the lower hotkey is no copy",
        A,
        [Fingerprint("b", 10, "sha256:db", "sha256:cb", R)],
        None,
    ),
    case("its own earlier image", Fingerprint("a", 12, "sha256:dz", "sha256:cz", R), [A], None),
    case(
        "its own original wins over a copier in between",
        Fingerprint("a", 30, "sha256:dz", "sha256:cz", R),
        [A, Fingerprint("b", 20, "sha256:db", "sha256:cb", R)],
        None,
    ),
    case(
        "the earliest of several originals",
        Fingerprint("c", 30, "sha256:dc", "sha256:cc", R),
        [Fingerprint("b", 20, "sha256:db", "sha256:cb", R), A],
        ("a@10", "layers and runtime config"),
    ),
    case("nothing shared", fp("b", 11, "db", "cb", "rb"), [A], None),
]


@pytest.mark.parametrize(("candidate", "earlier", "expected"), CASES)
def test_copy_of(candidate: Fingerprint, earlier: list[Fingerprint], expected: object) -> None:
    copy = copy_of(candidate, earlier)
    got = None if copy is None else (copy.original.key, copy.signal)
    assert got == expected


def test_the_reason_names_the_original_and_the_signal() -> None:
    copy = copy_of(Fingerprint("b", 11, "sha256:db", "sha256:cb", R), [A])
    assert copy is not None
    assert copy.reason == "copy_of a@10 (same layers and runtime config)"


def test_a_signal_is_shared_only_with_a_value_on_both_sides() -> None:
    assert shared_signal(fp("a", 1, "d1"), fp("b", 2, "d2")) is None
    assert shared_signal(fp("a", 1, "d1", "c"), fp("b", 2, "d2", "c")) == "config digest"


def test_the_index_finds_only_fingerprints_sharing_a_signal() -> None:
    index = FingerprintIndex()
    index.add(fp("a", 10, "da"))
    index.add(Fingerprint("b", 11, "sha256:db", "sha256:cb", R))
    index.add(fp("c", 12, "dc", "cc", "other"))
    probe = Fingerprint("x", 20, "sha256:dx", "sha256:cx", R)
    assert [f.key for f in index.sharing(probe)] == ["b@11"]
    # The inspection of a@10 replaces its digest-only record: now its runtime is found too.
    index.add(A)
    assert [f.key for f in index.sharing(probe)] == ["a@10", "b@11"]
    assert index.by_key["a@10"] == A


# --- image configs: which run the same way -------------------------------------------------------

L1, L2, L3 = ("sha256:" + c * 64 for c in "123")
# An image config as a registry serves it (the parts Docker writes), for the fast miner.
FAST: dict[str, Any] = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2026-01-01T00:00:00Z",
    "config": {
        "Cmd": ["serve-vllm", "--dtype", "float32"],
        "Entrypoint": None,
        "Env": ["PATH=/usr/bin", "OMP_NUM_THREADS=1"],
        "WorkingDir": "/",
        "User": "",
        "ExposedPorts": {"8000/tcp": {}},
        "Labels": {"org.arena.role": "fast-miner"},
    },
    "rootfs": {"type": "layers", "diff_ids": [L1, L2]},
    "history": [{"created_by": "FROM base"}, {"created_by": "CMD serve-vllm"}],
}


def _edit(path: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A copy of FAST, the mapping holding ``path`` ("config.Cmd") in it, and the last key."""
    out = copy.deepcopy(FAST)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    return out, node, last


def changed(path: str, value: object) -> dict[str, Any]:
    """FAST with the field at ``path`` set to ``value``."""
    out, node, last = _edit(path)
    node[last] = value
    return out


def removed(path: str) -> dict[str, Any]:
    """FAST without the field at ``path``."""
    out, node, last = _edit(path)
    del node[last]
    return out


def pushed(hotkey: str, block: int, config: dict[str, Any]) -> Fingerprint:
    """The fingerprint an inspection reads for an image with this config (its own manifest)."""
    blob = json.dumps(config).encode()
    config_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    return Fingerprint(
        hotkey, block, f"sha256:manifest-of-{hotkey}", config_digest, runtime_digest(blob)
    )


def runs(what: str, config: dict[str, Any], expected: str | None) -> object:
    return pytest.param(config, expected, id=what)


RUNTIME_CASES = [
    # the candidate's config against FAST committed earlier by another hotkey: the signal or None
    runs("pushed again unchanged", FAST, "config digest"),
    runs(
        "same layers and runtime config, different label",
        changed("config.Labels", {"org.arena.copied-from": "miner-fast"}),
        "layers and runtime config",
    ),
    runs("labels removed", removed("config.Labels"), "layers and runtime config"),
    runs(
        "rebuilt later: other history and created",
        {**changed("history", []), "created": "2027-01-01T00:00:00Z"},
        "layers and runtime config",
    ),
    runs(
        "environment in another order",
        changed("config.Env", ["OMP_NUM_THREADS=1", "PATH=/usr/bin"]),
        "layers and runtime config",
    ),
    runs(
        "null entrypoint written as []",
        changed("config.Entrypoint", []),
        "layers and runtime config",
    ),
    runs(
        "same layers, different Cmd",
        changed("config.Cmd", ["serve-vllm", "--dtype", "float32", "--enforce-eager"]),
        None,
    ),
    runs(
        "same layers, different Entrypoint", changed("config.Entrypoint", ["/bin/sh", "-c"]), None
    ),
    runs(
        "same layers, different Env",
        changed("config.Env", ["PATH=/usr/bin", "OMP_NUM_THREADS=2"]),
        None,
    ),
    runs("same layers, different WorkingDir", changed("config.WorkingDir", "/app"), None),
    runs("same layers, different User", changed("config.User", "1000"), None),
    runs(
        "same layers, different ExposedPorts",
        changed("config.ExposedPorts", {"9000/tcp": {}}),
        None,
    ),
    runs("same runtime config, one layer added", changed("rootfs.diff_ids", [L1, L2, L3]), None),
    runs(
        "same runtime config, layers in another order", changed("rootfs.diff_ids", [L2, L1]), None
    ),
    runs("same runtime config, a prefix of the layers", changed("rootfs.diff_ids", [L1]), None),
]


@pytest.mark.parametrize(("config", "expected"), RUNTIME_CASES)
def test_an_image_is_a_copy_when_it_has_the_same_layers_and_runs_the_same_way(
    config: dict[str, Any], expected: str | None
) -> None:
    copy = copy_of(pushed("copier", 11, config), [pushed("fast", 10, FAST)])
    assert (None if copy is None else copy.signal) == expected
    if copy is not None:
        assert copy.original.key == "fast@10"


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"not json", id="not JSON"),
        pytest.param(json.dumps({"config": {}}).encode(), id="no rootfs"),
        pytest.param(json.dumps(changed("config.Cmd", "serve-vllm")).encode(), id="Cmd a string"),
    ],
)
def test_a_config_that_is_not_one_is_refused(blob: bytes) -> None:
    with pytest.raises(ImageRejected) as caught:
        runtime_digest(blob)
    assert caught.value.reason == "bad_config"
