"""Pinned image references and the registry check done before anything is pulled.

A submission names ``registry/repository@sha256:<hex>`` (the grammar is
:mod:`rules.image_ref`). Before the engine pulls a byte, the
manifest is fetched from the registry, its bytes are hashed against the pinned digest, and the
image size (config plus every layer, as the manifest declares them) is checked against the
profile's limit. The registry is spoken to directly over the Distribution API, so a wrong
digest or an oversize image costs one small HTTP request, not a 20 GB download.

:func:`read_image` also reads the image's config blob (hashed against the manifest's config
digest) for the fingerprint that tells copies apart: :func:`runtime_digest`.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any, Literal

import httpx
import msgspec

from harness.profile import Profile
from harness.sandbox_errors import ImageRejected
from rules.image_ref import ImageRef, ImageRefError, is_sha256_digest, parse_pinned_ref

__all__ = [
    "ImageInfo",
    "ManifestInfo",
    "RuntimeConfig",
    "check_manifest",
    "parse_ref",
    "read_image",
    "require_pinned_baseline",
    "registry_url",
    "runtime_digest",
]

_MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = _MANIFEST_TYPES[:2]
# The most of a manifest (the Distribution spec's suggested limit) or of a config blob read: any
# registry a miner names is spoken to, so no answer may take unbounded memory.
_MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


class ManifestInfo(msgspec.Struct, frozen=True):
    digest: str  # the pinned digest (an index's, for a multi-platform image)
    size_bytes: int
    # The linux/amd64 image's config digest and its (compressed) layer digests in order.
    config_digest: str
    layers: tuple[str, ...]


class ImageInfo(msgspec.Struct, frozen=True):
    manifest: ManifestInfo
    runtime_digest: str  # :func:`runtime_digest` of the config blob


class RuntimeConfig(msgspec.Struct, frozen=True, rename="pascal"):
    """The part of an image config that decides how its container runs.

    Labels, history and timestamps are left out on purpose: they change nothing that runs, so a
    copy re-labelled or rebuilt later still has the same runtime configuration.
    """

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: dict[str, Any] | None = None


class _RootFs(msgspec.Struct, frozen=True):
    diff_ids: list[str]


class _ImageConfig(msgspec.Struct, frozen=True):
    rootfs: _RootFs
    config: RuntimeConfig | None = None


def runtime_digest(config_blob: bytes) -> str:
    """Fingerprint of an image config: its layers in order plus its :class:`RuntimeConfig`.

    The layers are the config's ``rootfs.diff_ids`` (uncompressed; the engine checks them at
    pull), so compressing the layers again changes nothing. Two images with the same files
    differ here as soon as their command, entrypoint, environment, working directory, user or
    ports do. Raises :class:`ImageRejected` (``bad_config``) for a config that is not one.
    """
    try:
        image = msgspec.json.decode(config_blob, type=_ImageConfig)
    except msgspec.DecodeError as exc:
        raise ImageRejected("bad_config", f"the image config is unreadable: {exc}") from exc
    run = image.config or RuntimeConfig()
    canonical = {
        "layers": image.rootfs.diff_ids,
        "cmd": run.cmd or [],
        "entrypoint": run.entrypoint or [],
        # Order and null-versus-empty change nothing that runs: rewriting them is no disguise.
        "env": sorted(run.env or []),
        "working_dir": run.working_dir,
        "user": run.user,
        "exposed_ports": sorted(run.exposed_ports or {}),
    }
    return "sha256:" + hashlib.sha256(msgspec.json.encode(canonical)).hexdigest()


def parse_ref(ref: str) -> ImageRef:
    """:func:`rules.image_ref.parse_pinned_ref`, refusing as the sandbox does (``not_pinned``)."""
    try:
        return parse_pinned_ref(ref)
    except ImageRefError as exc:
        raise ImageRejected("not_pinned", f"{ref!r}: {exc.reason}") from exc


def require_pinned_baseline(profile: Profile, image: str | None = None) -> str:
    """The baseline reference ``image`` (default: the profile's), checked to be pinned by digest.

    Raises ``ValueError`` with one line that says what to do: a validator or an eval started
    with an unpinned baseline would only end every evaluation in ``error``.
    """
    ref = profile.baseline_image if image is None else image
    try:
        parse_ref(ref)
    except ImageRejected:
        raise ValueError(
            f"profile {profile.name}: the baseline image {ref!r} is not pinned by digest; pass "
            "--baseline-image REPO@sha256:<digest>, or baseline_image in validator.toml's "
            "[evaluation] (README: Pinning the baseline)"
        ) from None
    return ref


def registry_url(registry: str) -> str:
    """The Distribution API root of ``registry``, e.g. ``https://ghcr.io/v2``."""
    host = registry.split(":", 1)[0]
    # Loopback registries (the local profile) speak plain HTTP, like the engine's default
    # insecure-registry rule for 127.0.0.0/8.
    scheme = "http" if host in ("localhost", "127.0.0.1") else "https"
    return f"{scheme}://{registry}/v2"


def _bearer_token(client: httpx.Client, challenge: str) -> str | None:
    # Anonymous token flow (Docker Hub and most public registries): the 401 names the realm.
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if realm is None:
        return None
    reply = client.get(realm, params=params)
    reply.raise_for_status()
    body = reply.json()
    return body.get("token") or body.get("access_token")


def _get_bounded(
    client: httpx.Client, url: str, headers: dict[str, str], deadline: float
) -> tuple[httpx.Response, bytes]:
    """GET ``url``; of a 200 answer read at most one byte over the limit, before ``deadline``."""
    body = bytearray()
    with client.stream("GET", url, headers=headers) as reply:
        if reply.status_code == 200:
            for chunk in reply.iter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT_BYTES:
                    break
                # A registry trickling bytes would hold the inspection (and the round) forever.
                if time.monotonic() > deadline:
                    raise ImageRejected(
                        "registry_unreachable", f"{url} did not answer in full in time"
                    )
    return reply, bytes(body)


def _get(
    client: httpx.Client, ref: ImageRef, path: str, accept: str, deadline: float
) -> tuple[int, bytes]:
    url = f"{registry_url(ref.registry)}/{ref.repository}/{path}"
    headers = {"Accept": accept}
    reply, body = _get_bounded(client, url, headers, deadline)
    if reply.status_code == 401:
        token = _bearer_token(client, reply.headers.get("www-authenticate", ""))
        if token:
            headers["Authorization"] = f"Bearer {token}"
            reply, body = _get_bounded(client, url, headers, deadline)
    return reply.status_code, body


def _fetch_verified(
    client: httpx.Client,
    ref: ImageRef,
    kind: Literal["manifest", "config"],
    digest: str,
    deadline: float,
) -> bytes:
    """The bytes of ``ref``'s manifest or config blob ``digest``, checked against it."""
    if kind == "manifest":
        path, accept = f"manifests/{digest}", ", ".join(_MANIFEST_TYPES)
    else:
        path, accept = f"blobs/{digest}", "*/*"
    try:
        status, body = _get(client, ref, path, accept, deadline)
    except httpx.HTTPError as exc:
        raise ImageRejected(
            "registry_unreachable", f"could not reach {ref.registry} for {ref}: {exc}"
        ) from exc
    if status == 404:
        raise ImageRejected(
            f"{kind}_not_found",
            f"{ref.name} has no {kind} {digest}; check the pinned digest and that the push ended",
        )
    if status != 200:
        raise ImageRejected("registry_error", f"{ref.registry} answered {status} for {ref}")
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ImageRejected(
            "too_large",
            f"the {kind} {digest} of {ref} is over {_MAX_DOCUMENT_BYTES // 2**20} MiB",
        )
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise ImageRejected(
            "digest_mismatch", f"the registry served {kind} {actual} when asked for {digest}"
        )
    return body


def _pick_platform(index: dict, ref: ImageRef) -> str:
    for entry in index.get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return entry["digest"]
    raise ImageRejected("bad_manifest", f"{ref} has no linux/amd64 image")


def _decode_manifest(body: bytes, digest: str) -> dict:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ImageRejected("bad_manifest", f"manifest {digest} is not JSON: {exc}") from exc


def _check_manifest(
    client: httpx.Client, ref: ImageRef, max_bytes: int, deadline: float
) -> ManifestInfo:
    manifest = _decode_manifest(
        _fetch_verified(client, ref, "manifest", ref.digest, deadline), ref.digest
    )
    if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
        digest = _pick_platform(manifest, ref)
        manifest = _decode_manifest(
            _fetch_verified(client, ref, "manifest", digest, deadline), digest
        )
    try:
        layers = manifest["layers"]
        size = int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in layers)
        config_digest = str(manifest["config"]["digest"])
        layer_digests = tuple(str(layer["digest"]) for layer in layers)
    except (KeyError, TypeError, ValueError) as exc:
        raise ImageRejected(
            "bad_manifest", f"manifest of {ref} lacks config/layer sizes or digests: {exc}"
        ) from exc
    if not is_sha256_digest(config_digest):
        raise ImageRejected(
            "bad_manifest", f"manifest of {ref} names config {config_digest!r}, not a sha256"
        )
    if size > max_bytes:
        raise ImageRejected(
            "too_large",
            f"{ref} is {size / 1e9:.2f} GB, over the {max_bytes / 1e9:.2f} GB limit",
        )
    return ManifestInfo(
        digest=ref.digest, size_bytes=size, config_digest=config_digest, layers=layer_digests
    )


def check_manifest(ref: ImageRef, max_bytes: int, timeout_s: float = 30.0) -> ManifestInfo:
    """Verify the pinned manifest and its declared size; return its size and layers.

    Raises :class:`ImageRejected`; a reason in :data:`REGISTRY_FAULTS` is worth asking again.
    """
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        return _check_manifest(client, ref, max_bytes, time.monotonic() + timeout_s)


def read_image(ref: ImageRef, max_bytes: int, timeout_s: float = 30.0) -> ImageInfo:
    """:func:`check_manifest`, then the verified config blob's :func:`runtime_digest`.

    ``timeout_s`` bounds the whole exchange. Raises :class:`ImageRejected` like
    :func:`check_manifest`, with ``config_not_found`` and ``bad_config`` besides.
    """
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        manifest = _check_manifest(client, ref, max_bytes, deadline)
        blob = _fetch_verified(client, ref, "config", manifest.config_digest, deadline)
    return ImageInfo(manifest=manifest, runtime_digest=runtime_digest(blob))
