"""The image reference grammar: one parser for the CLI, the chain watcher and the sandbox.

A reference is the OCI distribution reference grammar (``distribution/reference``) narrowed to
what Arena pulls: ASCII only, as registries accept it; pinned by ``sha256:<64 lowercase hex>``;
a port, when given, in 1-65535. A tag may stand beside the digest (``host/repo:v1@sha256:...``,
as ``docker pull`` accepts it): it is kept for readers and ignored for pulling, since the digest
alone names the image.

Two entry points, one grammar:

- :func:`parse_pinned_ref` is what the sandbox pulls. A first component that looks like a
  registry (a dot, a port, ``localhost`` or an upper-case letter, Docker's rule) is one;
  otherwise the image is on Docker Hub (the ``sn-h200`` baseline is ``vllm/vllm-openai@...``).
- :func:`parse_submission_ref` is what a miner may commit: a pinned reference that names its
  registry host (the validator pulls exactly what the miner named, never a registry-dependent
  short name) and fits the chain's 128-byte field.

Every reference the submission parser accepts, the sandbox parser accepts with the same digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rules.errors import ArenaError

__all__ = [
    "DOCKER_HUB",
    "MAX_NAME_LENGTH",
    "MAX_SUBMISSION_BYTES",
    "ImageRef",
    "ImageRefError",
    "is_sha256_digest",
    "parse_pinned_ref",
    "parse_submission_ref",
]

# A commitment is one chain ``Raw`` field, which holds at most 128 bytes.
MAX_SUBMISSION_BYTES = 128
# distribution/reference's NameTotalLengthMax: the name (registry and path, no tag).
MAX_NAME_LENGTH = 255
DOCKER_HUB = "registry-1.docker.io"

# From distribution/reference regexp.go, with Go's ASCII classes spelled out (Python's ``\w``
# would take any Unicode letter).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = re.compile(rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\]")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_PORT = re.compile(r"[0-9]+")


class ImageRefError(ArenaError, ValueError):
    """A reference is outside the grammar; ``reason`` says which part and how to fix it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: ``domain`` as written (None on Docker Hub), path, tag and digest."""

    domain: str | None
    path: str
    tag: str | None
    digest: str

    @property
    def name(self) -> str:
        """The name as written, without tag: what the engine pulls and lists."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def image(self) -> str:
        """The name with its tag, as written (what a submission event records)."""
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def pinned(self) -> str:
        """``name@digest``: the tag dropped, as the engine lists a pulled image."""
        return f"{self.name}@{self.digest}"

    @property
    def registry(self) -> str:
        """Where the Distribution API is: the domain, or Docker Hub's."""
        return self.domain or DOCKER_HUB

    @property
    def repository(self) -> str:
        """The path on :attr:`registry` (Docker Hub's official images live under ``library/``)."""
        if self.domain is None and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    def __str__(self) -> str:
        return f"{self.image}@{self.digest}"


def is_sha256_digest(text: str) -> bool:
    """Whether ``text`` is ``sha256:<64 lowercase hex>``, the only digest Arena pulls by."""
    return _DIGEST.fullmatch(text) is not None


def _looks_like_registry(component: str) -> bool:
    # Docker's rule (splitDockerDomain): the first component names a registry iff it has a dot
    # or a port, is ``localhost``, or has an upper-case letter (never valid in a path).
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component != component.lower()
    )


def _check_text(text: str) -> None:
    if not text:
        raise ImageRefError("empty reference")
    if any(c.isspace() for c in text):
        raise ImageRefError("reference contains whitespace")
    if not text.isascii():
        raise ImageRefError("reference contains non-ASCII characters; registries accept ASCII only")


def _check_digest(digest: str) -> None:
    if is_sha256_digest(digest):
        return
    algorithm = digest.partition(":")[0]
    if algorithm != "sha256":
        raise ImageRefError(f"digest algorithm must be sha256, got {algorithm!r}")
    raise ImageRefError(
        f"digest must be sha256 followed by 64 lowercase hex characters, got {digest!r}"
    )


def _check_domain(domain: str) -> None:
    host, colon, port = domain.rpartition(":") if not domain.endswith("]") else (domain, "", "")
    if not colon:
        host = domain
    valid_port = not colon or (_PORT.fullmatch(port) is not None and 1 <= int(port) <= 65535)
    if not _HOST.fullmatch(host) or not valid_port:
        raise ImageRefError(
            f"registry {domain!r} is not a valid host[:port] (ASCII host name or [IPv6], "
            "port 1-65535)"
        )


def parse_pinned_ref(text: str) -> ImageRef:
    """Parse ``[host[:port]/]path[:tag]@sha256:<64 hex>``; raises :class:`ImageRefError`."""
    _check_text(text)
    name_and_tag, at, digest = text.rpartition("@")
    if not at:
        raise ImageRefError("missing '@sha256:<64 hex>' digest: images are pulled by digest only")
    _check_digest(digest)
    if "@" in name_and_tag:
        raise ImageRefError("more than one '@' in reference")
    first, slash, rest = name_and_tag.partition("/")
    domain, remainder = (first, rest) if slash and _looks_like_registry(first) else (None, "")
    if domain is None:
        remainder = name_and_tag
    else:
        _check_domain(domain)
    # A tag follows the last ':' of the path part only (a ':' in the registry is its port).
    path, colon, tag = remainder.rpartition(":") if ":" in remainder else (remainder, "", "")
    if colon and not _TAG.fullmatch(tag):
        raise ImageRefError(
            f"tag {tag!r} is invalid: it must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        )
    if not path:
        raise ImageRefError("reference has no repository path")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ImageRefError(
                f"repository path component {component!r} is invalid: lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'"
            )
    ref = ImageRef(domain=domain, path=path, tag=tag or None, digest=digest)
    if len(ref.name) > MAX_NAME_LENGTH:
        raise ImageRefError(f"image name longer than {MAX_NAME_LENGTH} characters")
    return ref


def parse_submission_ref(text: str) -> ImageRef:
    """A reference a miner may commit: pinned, with its registry host, at most 128 bytes."""
    _check_text(text)
    size = len(text.encode())
    if size > MAX_SUBMISSION_BYTES:
        raise ImageRefError(
            f"commitment is {size} bytes, the chain holds at most {MAX_SUBMISSION_BYTES}; "
            "use a shorter registry path or drop the tag"
        )
    ref = parse_pinned_ref(text)
    if ref.domain is None:
        raise ImageRefError(
            f"image {ref.image!r} must start with its registry host "
            "(e.g. ghcr.io/org/miner or 127.0.0.1:5000/miner)"
        )
    return ref
