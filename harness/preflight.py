"""What an evaluation needs before it starts, checked in seconds, each failure one clear sentence.

``arena eval`` (``python -m harness.eval``) calls :func:`preflight` before the round: a bad image
reference, no Docker engine, or a registry that does not answer is then one line saying what to
do, not a traceback minutes in. The validator's own rounds skip it: there, an unreachable
registry is a fault of the submission (``registry_unreachable``) or of the baseline, and ends
up in ``EvalFinished`` like any other.
"""

from __future__ import annotations

import os

import docker
import httpx

from harness.profile import Profile
from harness.sandbox_errors import ImageRejected
from harness.sandbox_image import ImageRef, parse_ref, registry_url
from rules.errors import ArenaError

__all__ = ["PreflightError", "preflight"]

_REGISTRY_TIMEOUT_S = 5.0


class PreflightError(ArenaError):
    """An evaluation cannot start; the message says what failed and what to do."""


def preflight(images: list[str], profile: Profile) -> docker.DockerClient:
    """Check the references, the engine and every registry involved; return an engine client."""
    refs = [_parse(image, "bad image reference") for image in images]
    baseline = _parse(profile.baseline_image, "the baseline image (pass --baseline-image)")
    client = _engine()
    registries = {ref.registry: str(ref) for ref in refs}
    registries.setdefault(baseline.registry, f"the baseline {baseline}")
    for registry, needed_for in registries.items():
        _check_registry(registry, needed_for)
    return client


def _parse(image: str, what: str) -> ImageRef:
    try:
        return parse_ref(image)
    except ImageRejected as exc:
        raise PreflightError(f"{what}: {exc}") from None


def _engine() -> docker.DockerClient:
    where = os.environ.get("DOCKER_HOST") or "the default socket /var/run/docker.sock"
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise PreflightError(
            f"no Docker engine answers at {where} ({_cause(exc)}): start one "
            '(eval "$(scripts/infra.sh start)" in a checkout) or point DOCKER_HOST at one'
        ) from None
    return client


def _check_registry(registry: str, needed_for: str) -> None:
    """Any HTTP answer (401 included) means the registry is there; no answer is the failure."""
    try:
        httpx.get(registry_url(registry) + "/", timeout=_REGISTRY_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise PreflightError(
            f"the registry {registry} does not answer ({_cause(exc)}), and {needed_for} is "
            f"pulled from it: start it (scripts/infra.sh start runs the local one on "
            f"127.0.0.1:5000) or name images on a registry that answers"
        ) from None


def _cause(exc: BaseException) -> str:
    """The innermost reason, short: e.g. ``ConnectionRefusedError: [Errno 111] ...``."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {exc}"[:200]
