"""Images are refused before anything runs: wrong digest, tampered layer, oversize, unpinned;
and a copy pushed again under another name is recognised from its manifest and config alone,
while images that share their layers but run another way are not."""

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

from actors.scheduler import inspect_image
from events.types import Event, SubmissionCommitted, SubmissionSkipped
from harness.profile import Profile, get_profile, repo_root
from harness.runner import pull_pinned
from harness.sandbox_errors import ImageRejected
from harness.sandbox_image import check_manifest, parse_ref, read_image
from rules.queue_policy import fold_queue

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


def test_a_tag_beside_the_digest_is_inspected_and_pulled_by_the_digest(
    sandbox_profile: Profile, docker_client, registry_addr: str
) -> None:
    # The chain accepts ``host/repo:tag@sha256:...``; the registry has no such tag here, so
    # only a pull by digest can succeed (it once was refused as not_pinned, forever).
    name, digest = _push_unique_image(docker_client, registry_addr, 16 * 1024).split("@")
    committed = SubmissionCommitted(
        netuid=1, uid=1, hotkey="5Tagged", block=9, image=f"{name}:v1", digest=digest
    )
    inspected = inspect_image(committed, sandbox_profile.max_image_bytes)
    assert inspected is not None and (inspected.refused, inspected.digest) == ("", digest)
    assert pull_pinned(docker_client, committed.ref, sandbox_profile).startswith("sha256:")
    docker_client.images.remove(f"{name}@{digest}", force=True)


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
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", "--local", "--image", wrong, "--out", str(out)]
        + ["--baseline-image", built_images["baseline"]],
        capture_output=True,
        text=True,
        cwd=repo_root(),
    )
    assert result.returncode == 1, result.stderr
    report = msgspec.json.decode(out.read_bytes())
    assert (report["verdict"], report["reason"]) == ("fail", "manifest_not_found")
    assert "FAIL" in result.stdout
    page = out.with_suffix(".html").read_text()  # the HTML report beside the JSON
    assert wrong in page and "manifest_not_found" in page


def _committed(
    built_images: dict[str, str], hotkey: str, block: int, name: str
) -> SubmissionCommitted:
    image, digest = built_images[name].split("@")
    return SubmissionCommitted(
        netuid=2, uid=block, hotkey=hotkey, block=block, image=image, digest=digest
    )


def _inspected(commitments: list[SubmissionCommitted]) -> list[Event]:
    """What the scheduler logs for each commitment, read from the real registry."""
    max_bytes = get_profile("local").max_image_bytes
    inspections = [i for c in commitments if (i := inspect_image(c, max_bytes)) is not None]
    assert [(i.hotkey, i.refused) for i in inspections] == [(c.hotkey, "") for c in commitments]
    return inspections


def _skipped(out: list[Event]) -> list[tuple[str, str]]:
    return [(e.hotkey, e.reason) for e in out if isinstance(e, SubmissionSkipped)]


def test_a_relabelled_copy_of_the_fast_miner_is_named_its_copy(
    built_images: dict[str, str],
) -> None:
    """images/copy-fast: miner-fast under another repository with one label added."""
    max_bytes = get_profile("local").max_image_bytes
    fast, copy = (parse_ref(built_images[name]) for name in ("miner-fast", "copy-fast"))
    assert fast.repository != copy.repository
    fast_info, copy_info = read_image(fast, max_bytes), read_image(copy, max_bytes)
    assert fast_info.manifest.layers and copy_info.manifest.layers == fast_info.manifest.layers
    assert copy_info.manifest.digest != fast_info.manifest.digest
    assert copy_info.manifest.config_digest != fast_info.manifest.config_digest
    assert copy_info.runtime_digest == fast_info.runtime_digest

    # The copier's image is inspected first and still loses to the earlier commitment.
    original = _committed(built_images, "5Fast", 10, "miner-fast")
    copier = _committed(built_images, "5Copier", 11, "copy-fast")
    state, out = fold_queue([original, copier, *_inspected([copier, original])])
    assert _skipped(out) == [("5Copier", "copy_of 5Fast@10 (same layers and runtime config)")]
    assert [s.hotkey for s in state.ready()] == ["5Fast"]


def test_images_sharing_layers_but_run_another_way_are_no_copies(
    built_images: dict[str, str],
) -> None:
    """Honest images on one stock image: miner-fast and the baseline both start from the base
    image's layers with their own command; adv-crash and adv-hang share every layer and differ
    in one ENV. Each committed after the other, none is taken for a copy."""
    max_bytes = get_profile("local").max_image_bytes
    layers = {
        name: check_manifest(parse_ref(built_images[name]), max_bytes).layers
        for name in ("base", "baseline", "miner-fast", "adv-crash", "adv-hang")
    }
    base = layers["base"]
    assert base and layers["baseline"][: len(base)] == layers["miner-fast"][: len(base)] == base
    assert layers["adv-crash"] and layers["adv-crash"] == layers["adv-hang"]

    commitments = [
        _committed(built_images, hotkey, block, name)
        for hotkey, block, name in [
            ("5Baseline", 10, "baseline"),
            ("5Fast", 11, "miner-fast"),
            ("5Crash", 12, "adv-crash"),
            ("5Hang", 13, "adv-hang"),
        ]
    ]
    state, out = fold_queue([*commitments, *_inspected(commitments)])
    assert _skipped(out) == []
    assert [s.hotkey for s in state.ready()] == ["5Baseline", "5Fast", "5Crash", "5Hang"]
