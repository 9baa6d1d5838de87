"""The model weights on a node: a sha256 manifest, a sync from where they are kept, and the
check the evaluator makes before it measures anything.

    python -m harness.weights manifest DIR > MANIFEST.json            # once, from a trusted copy
    python -m harness.weights sync SOURCE DIR --manifest MANIFEST.json  # a new GPU node's set-up
    python -m harness.weights check DIR --manifest MANIFEST.json

A manifest maps every file of the model directory (relative path) to its sha256. ``SOURCE`` is
a directory on the node or an ``s3://`` prefix (fetched with the AWS CLI, as the node's role
allows). The sync fetches only the files that are missing or differ, checks each against the
manifest before it takes its place, and leaves them world-readable: the sandboxes read them as
``nobody``. Every server is measured on the same bytes, or not at all.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.errors import ArenaError

__all__ = [
    "Manifest",
    "ModelMismatch",
    "build_manifest",
    "fetch_command",
    "file_sha256",
    "fingerprint",
    "load_manifest",
    "main",
    "mismatches",
    "require_model",
    "sync",
]

Manifest = dict[str, str]  # relative path -> sha256 hex
# Hashing is disk-bound; a few threads keep an NVMe busy (hashlib releases the GIL).
_HASH_THREADS = 8


class ModelMismatch(ArenaError):
    """The model directory is not the manifest's: no measurement may start on it."""


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(model_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())


def build_manifest(model_dir: str | Path) -> Manifest:
    """Every file under ``model_dir`` and its sha256."""
    root = Path(model_dir)
    names = _files(root)
    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        return dict(zip(names, pool.map(lambda n: file_sha256(root / n), names), strict=True))


def fingerprint(model_dir: str | Path) -> list[tuple[str, int, int]]:
    """Names, sizes and mtimes: cheap, and any write to a file changes it."""
    root = Path(model_dir)
    return [
        (name, (root / name).stat().st_size, (root / name).stat().st_mtime_ns)
        for name in _files(root)
    ]


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest file; ``ValueError`` says what is wrong with it."""
    try:
        manifest = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(
            f"no model manifest at {path}: build one from a trusted copy of the weights with "
            "`python -m harness.weights manifest DIR > MANIFEST.json`"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"model manifest {path} is not JSON: {exc}") from None
    valid = isinstance(manifest, dict) and all(
        isinstance(name, str)
        and isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
        for name, digest in manifest.items()
    )
    if not valid or not manifest:
        raise ValueError(f"model manifest {path} is not a map of file names to sha256 hex")
    return manifest


def mismatches(model_dir: str | Path, manifest: Manifest) -> list[str]:
    """What differs from the manifest: ``missing X``, ``changed X``, ``unexpected X``."""
    root = Path(model_dir)
    present = set(_files(root)) if root.is_dir() else set()
    wanted = sorted(name for name in manifest if name in present)
    with ThreadPoolExecutor(_HASH_THREADS) as pool:
        digests = dict(zip(wanted, pool.map(lambda n: file_sha256(root / n), wanted), strict=True))
    return (
        [f"missing {name}" for name in sorted(set(manifest) - present)]
        + [f"changed {name}" for name in wanted if digests[name] != manifest[name]]
        # vLLM loads every weight file it finds: an extra one changes the model.
        + [f"unexpected {name}" for name in sorted(present - set(manifest))]
    )


def _stamp_path(model_dir: str) -> Path:
    # Next to the directory, not in it: a sandbox sees only the directory, read-only.
    root = Path(model_dir).resolve()
    return root.with_name(f".{root.name}.verified.json")


def _stamp(manifest: Manifest, model_dir: str) -> dict:
    return {"manifest": manifest, "fingerprint": [list(f) for f in fingerprint(model_dir)]}


def require_model(model_dir: str, manifest_path: str) -> None:
    """Raise :class:`ModelMismatch` unless ``model_dir`` holds exactly the manifest's files.

    A match is stamped next to the directory with its fingerprint, so the next check (each
    round's evaluator is a new process) re-hashes 140 GB only when a file changed since.
    """
    try:
        manifest = load_manifest(manifest_path)
    except ValueError as exc:
        raise ModelMismatch(str(exc)) from None
    stamp = _stamp_path(model_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(stamp.read_text()) == _stamp(manifest, model_dir):
            return
    if problems := mismatches(model_dir, manifest):
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if problems[5:] else "")
        raise ModelMismatch(
            f"{model_dir} does not match the manifest {manifest_path}: {shown}; sync it with "
            "`python -m harness.weights sync SOURCE DIR --manifest MANIFEST`"
        )
    with contextlib.suppress(OSError):  # no stamp only costs the next check a re-hash
        stamp.write_text(json.dumps(_stamp(manifest, model_dir)))


def fetch_command(source: str, name: str, dest: Path) -> list[str] | None:
    """The command that fetches ``source``'s file ``name`` to ``dest``; None: a local copy."""
    if source.startswith("s3://"):
        return ["aws", "s3", "cp", "--only-show-errors", f"{source.rstrip('/')}/{name}", str(dest)]
    return None


def sync(source: str, model_dir: str | Path, manifest: Manifest) -> list[str]:
    """Fetch every manifest file that is missing or differs; returns the names fetched.

    Raises :class:`ModelMismatch` when a fetched file is not the manifest's (the source is
    wrong), leaving what was there before in place.
    """
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name, digest in sorted(manifest.items()):
        dest = root / name
        if dest.is_file() and file_sha256(dest) == digest:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        command = fetch_command(source, name, partial)
        if command is None:
            shutil.copyfile(Path(source) / name, partial)
        else:
            subprocess.run(command, check=True)
        if (got := file_sha256(partial)) != digest:
            partial.unlink()
            raise ModelMismatch(f"{source}/{name} has sha256 {got}, the manifest says {digest}")
        partial.chmod(0o444)
        partial.replace(dest)
        fetched.append(name)
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    return fetched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.weights", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("manifest", help="print DIR's manifest").add_argument("dir")
    sync_parser = commands.add_parser("sync", help="fetch DIR's files from SOURCE, checked")
    sync_parser.add_argument("source")
    check_parser = commands.add_parser("check", help="exit 1 unless DIR matches MANIFEST")
    for sub in (sync_parser, check_parser):
        sub.add_argument("dir")
        sub.add_argument("--manifest", required=True)
    options = parser.parse_args(argv)
    if options.command == "manifest":
        print(json.dumps(build_manifest(options.dir), indent=2, sort_keys=True))
        return 0
    try:
        if options.command == "sync":
            fetched = sync(options.source, options.dir, load_manifest(options.manifest))
            print(f"fetched {len(fetched)} files into {options.dir}")
        require_model(options.dir, options.manifest)
    except (ValueError, ModelMismatch, OSError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{options.dir} matches {options.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
