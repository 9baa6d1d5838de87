"""The pure decisions of the sandbox: reference parsing and failure reasons."""

from __future__ import annotations

import pytest

from harness.eval import classify_failure
from harness.loadgen import RequestResult
from harness.runner import classify_exit
from harness.sandbox_errors import ImageRejected
from harness.sandbox_image import parse_ref

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "registry", "repository"),
    [
        (f"127.0.0.1:5000/arena/miner@{DIGEST}", "127.0.0.1:5000", "arena/miner"),
        (f"vllm/vllm-openai@{DIGEST}", "registry-1.docker.io", "vllm/vllm-openai"),
        (f"ubuntu@{DIGEST}", "registry-1.docker.io", "library/ubuntu"),
        (f"ghcr.io/org/img@{DIGEST}", "ghcr.io", "org/img"),
    ],
)
def test_parse_ref_finds_registry_and_repository(ref: str, registry: str, repository: str) -> None:
    parsed = parse_ref(ref)
    assert (parsed.registry, parsed.repository, parsed.digest) == (registry, repository, DIGEST)
    assert str(parsed) == ref


def test_a_tag_beside_the_digest_is_kept_and_the_digest_is_pulled() -> None:
    # The chain watcher accepts this reference, so the sandbox must too (it once refused it as
    # not_pinned, and the queue then held the digest as judged forever).
    parsed = parse_ref(f"127.0.0.1:5000/arena/miner:v1@{DIGEST}")
    assert parsed.tag == "v1"
    assert parsed.pinned == f"127.0.0.1:5000/arena/miner@{DIGEST}"


@pytest.mark.parametrize(
    "ref",
    [
        "127.0.0.1:5000/arena/miner:latest",
        "127.0.0.1:5000/arena/miner@sha256:abc",
        f"127.0.0.1:5000/arena/miner@sha512:{'a' * 64}",
    ],
)
def test_parse_ref_refuses_anything_not_pinned(ref: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        parse_ref(ref)
    assert caught.value.reason == "not_pinned"


@pytest.mark.parametrize(
    ("exit_code", "oom", "logs", "reason"),
    [
        (137, True, "", "oom"),
        (137, False, "", "oom"),
        (1, False, "OSError: [Errno 30] Read-only file system: '/models/x'", "write_models"),
        (3, False, "boom", "crash"),
        (0, False, "", "crash"),
    ],
)
def test_classify_exit(exit_code: int, oom: bool, logs: str, reason: str) -> None:
    assert classify_exit(exit_code, oom, logs) == reason


@pytest.mark.parametrize(
    ("error", "logs", "reason"),
    [
        ("stall: no data for 10 s mid-stream", "", "hang"),
        ("timeout: no complete answer within 30 s", "", "hang"),
        ("http_502: ", "socket.gaierror: Temporary failure in name resolution", "network"),
        ("timeout: no complete answer within 10 s", "network error: gaierror", "network"),
        ("http_500: oops", "Traceback ... ValueError", "request_failed"),
    ],
)
def test_classify_failure(error: str, logs: str, reason: str) -> None:
    result = RequestResult(prompt_index=0, success=False, error=error)
    assert classify_failure(result, logs) == reason
