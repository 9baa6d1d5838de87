"""Pinned image references and the registry check done before anything is pulled.

A submission names ``registry/repository@sha256:<hex>``. Before the engine pulls a byte, the
manifest is fetched from the registry, its bytes are hashed against the pinned digest, and the
image size (config plus every layer, as the manifest declares them) is checked against the
profile's limit. The registry is spoken to directly over the Distribution API, so a wrong
digest or an oversize image costs one small HTTP request, not a 20 GB download.
"""

from __future__ import annotations

import hashlib
import re

import httpx
import msgspec

from harness.sandbox_errors import ImageRejected

__all__ = ["ImageRef", "ManifestInfo", "check_manifest", "parse_ref"]

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = _MANIFEST_TYPES[:2]
_DOCKER_HUB = "registry-1.docker.io"


class ImageRef(msgspec.Struct, frozen=True):
    name: str  # as submitted and as the engine lists it, e.g. ``vllm/vllm-openai``
    registry: str  # where the Distribution API is, e.g. ``registry-1.docker.io``
    repository: str  # path on that registry, e.g. ``vllm/vllm-openai``
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


class ManifestInfo(msgspec.Struct, frozen=True):
    digest: str
    size_bytes: int
    layers: int


def parse_ref(ref: str) -> ImageRef:
    """Split ``registry/repo@sha256:...``; anything not pinned by digest is rejected."""
    name, sep, digest = ref.partition("@")
    if not sep or not _DIGEST.match(digest):
        raise ImageRejected(
            "not_pinned", f"{ref!r} is not pinned by digest; submit it as IMAGE@sha256:<64 hex>"
        )
    if ":" in name.rsplit("/", 1)[-1]:
        raise ImageRejected("not_pinned", f"{ref!r} has both a tag and a digest; drop the tag")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = _DOCKER_HUB, name if rest else f"library/{name}"
    return ImageRef(name=name, registry=registry, repository=repository, digest=digest)


def _base_url(registry: str) -> str:
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


def _get_manifest(client: httpx.Client, ref: ImageRef, reference: str) -> httpx.Response:
    url = f"{_base_url(ref.registry)}/{ref.repository}/manifests/{reference}"
    headers = {"Accept": ", ".join(_MANIFEST_TYPES)}
    reply = client.get(url, headers=headers)
    if reply.status_code == 401:
        token = _bearer_token(client, reply.headers.get("www-authenticate", ""))
        if token:
            headers["Authorization"] = f"Bearer {token}"
            reply = client.get(url, headers=headers)
    return reply


def _fetch_verified(client: httpx.Client, ref: ImageRef, digest: str) -> dict:
    try:
        reply = _get_manifest(client, ref, digest)
    except httpx.HTTPError as exc:
        raise ImageRejected(
            "registry_unreachable", f"could not reach {ref.registry} for {ref}: {exc}"
        ) from exc
    if reply.status_code == 404:
        raise ImageRejected(
            "manifest_not_found", f"{ref.name} has no manifest {digest}; check the pinned digest"
        )
    if reply.status_code != 200:
        raise ImageRejected(
            "registry_error", f"{ref.registry} answered {reply.status_code} for {ref}"
        )
    actual = "sha256:" + hashlib.sha256(reply.content).hexdigest()
    if actual != digest:
        raise ImageRejected(
            "digest_mismatch", f"the registry served manifest {actual} when asked for {digest}"
        )
    try:
        return msgspec.json.decode(reply.content)
    except msgspec.DecodeError as exc:
        raise ImageRejected("bad_manifest", f"manifest {digest} is not JSON: {exc}") from exc


def _pick_platform(index: dict, ref: ImageRef) -> str:
    for entry in index.get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return entry["digest"]
    raise ImageRejected("bad_manifest", f"{ref} has no linux/amd64 image")


def check_manifest(ref: ImageRef, max_bytes: int, timeout_s: float = 30.0) -> ManifestInfo:
    """Verify the pinned manifest and its declared size; raises :class:`ImageRejected`."""
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        manifest = _fetch_verified(client, ref, ref.digest)
        if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
            manifest = _fetch_verified(client, ref, _pick_platform(manifest, ref))
    try:
        layers = manifest["layers"]
        size = int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in layers)
    except (KeyError, TypeError, ValueError) as exc:
        raise ImageRejected(
            "bad_manifest", f"manifest of {ref} lacks config/layer sizes: {exc}"
        ) from exc
    if size > max_bytes:
        raise ImageRejected(
            "too_large",
            f"{ref} is {size / 1e9:.2f} GB, over the {max_bytes / 1e9:.2f} GB limit",
        )
    return ManifestInfo(digest=ref.digest, size_bytes=size, layers=len(layers))
