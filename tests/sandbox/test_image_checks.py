"""Images are refused before anything runs: wrong digest, tampered layer, oversize, unpinned."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import docker
import httpx
import msgspec
import pytest

from harness.profile import Profile, repo_root
from harness.runner import pull_pinned
from harness.sandbox_errors import ImageRejected

pytestmark = pytest.mark.docker

# Where the local registry may keep its blobs: scripts/infra.sh's storage, or a system one.
REGISTRY_ROOTS = [
    Path(os.environ.get("ARENA_STATE_DIR", repo_root() / ".arena" / "infra")) / "registry-data",
    Path("/var/lib/arena/registry"),
    Path("/var/lib/docker-registry"),
]


def _push_unique_image(client: docker.DockerClient, registry: str, size: int) -> str:
    """Push a one-layer image of ``size`` random bytes; remove it locally; return its pinned ref."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(secrets.token_bytes(size)))
    repository = f"{registry}/arena-test/unique-{secrets.token_hex(4)}"
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag="t")
    for message in client.api.push(repository, tag="t", stream=True, decode=True):
        assert "error" not in message, message
    reply = httpx.head(
        f"http://{registry}/v2/{repository.split('/', 1)[1]}/manifests/t",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    client.images.remove(f"{repository}:t", force=True)
    return f"{repository}@{reply.headers['docker-content-digest']}"


def _is_local(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_unpinned_reference_is_refused(sandbox_profile: Profile, docker_client) -> None:
    with pytest.raises(ImageRejected) as caught:
        pull_pinned(docker_client, "127.0.0.1:5000/arena/baseline:latest", sandbox_profile)
    assert caught.value.reason == "not_pinned"


def test_wrong_digest_is_refused_before_pulling(
    sandbox_profile: Profile, docker_client, built_images: dict[str, str]
) -> None:
    name = built_images["baseline"].split("@")[0]
    wrong = f"{name}@sha256:{secrets.token_hex(32)}"
    with pytest.raises(ImageRejected) as caught:
        pull_pinned(docker_client, wrong, sandbox_profile)
    assert caught.value.reason == "manifest_not_found"
    assert not _is_local(docker_client, wrong)


def test_oversize_image_is_refused_before_pulling(
    sandbox_profile: Profile, docker_client, registry_addr: str
) -> None:
    ref = _push_unique_image(docker_client, registry_addr, 256 * 1024)
    small = msgspec.structs.replace(sandbox_profile, max_image_bytes=100 * 1024)
    with pytest.raises(ImageRejected) as caught:
        pull_pinned(docker_client, ref, small)
    assert caught.value.reason == "too_large"
    assert not _is_local(docker_client, ref)
    # The same image under a limit it fits is pulled: the check itself is not what failed.
    assert pull_pinned(docker_client, ref, sandbox_profile).startswith("sha256:")
    docker_client.images.remove(ref, force=True)


def test_tampered_layer_is_refused_by_the_pull(
    sandbox_profile: Profile, docker_client, registry_addr: str
) -> None:
    ref = _push_unique_image(docker_client, registry_addr, 64 * 1024)
    name, digest = ref.split("@")
    manifest = httpx.get(
        f"http://{registry_addr}/v2/{name.split('/', 1)[1]}/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    ).json()
    layer = manifest["layers"][0]["digest"].split(":")[1]
    blobs = [
        root / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
        for root in REGISTRY_ROOTS
    ]
    blob = next((b for b in blobs if b.exists()), None)
    assert blob is not None, f"the registry's storage is none of {REGISTRY_ROOTS}"
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, one bit off
    with pytest.raises(ImageRejected) as caught:
        pull_pinned(docker_client, ref, sandbox_profile)
    assert caught.value.reason == "layer_corrupt"
    assert not _is_local(docker_client, ref)


def test_arena_eval_reports_a_rejected_image(
    built_images: dict[str, str], tmp_path: Path, tiny_model_dir: Path
) -> None:
    """`arena eval --local` end to end for an image refused at the manifest check."""
    name = built_images["adv-crash"].split("@")[0]
    wrong = f"{name}@sha256:{secrets.token_hex(32)}"
    out = tmp_path / "report.json"
    env = {**os.environ, "ARENA_BASELINE_IMAGE": built_images["baseline"]}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", "--local", "--image", wrong, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=repo_root(),
    )
    assert result.returncode == 1, result.stderr
    report = msgspec.json.decode(out.read_bytes())
    assert (report["verdict"], report["reason"]) == ("fail", "manifest_not_found")
    assert "FAIL" in result.stdout
