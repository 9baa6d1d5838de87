"""Property-based fuzzing of the gateway's own OpenAPI document: no input earns a 5xx.

The gateway runs in-process in front of the synthetic upstream, which answers every valid request
at once, so hypothesis spends its examples on the gateway's input handling, not on generation.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from serve_apps.gateway import GatewayConfig, create_app
from serve_apps.keys import create_key
from serve_apps.synthetic import synthetic_app
from tests.fixtures.vllm import free_port
from tests.serve.conftest import serve_in_thread


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    keys = tmp_path_factory.mktemp("fuzz") / "keys.json"
    _, secret = create_key(keys, "fuzz", rate_per_s=1e6, burst=1_000_000)
    with serve_in_thread(synthetic_app(tokens=4), free_port()) as upstream:
        config = GatewayConfig(reference_endpoint=upstream, keys_file=str(keys), event_log=False)
        with serve_in_thread(create_app(config), free_port()) as gateway:
            yield gateway, secret


@pytest.fixture(scope="module")
def gateway_schema(fuzz_target: tuple[str, str]) -> schemathesis.BaseSchema:
    url, _ = fuzz_target
    return schemathesis.openapi.from_url(url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_no_input_makes_the_gateway_fail(
    case: schemathesis.Case, fuzz_target: tuple[str, str]
) -> None:
    url, secret = fuzz_target
    headers = (
        {"authorization": f"Bearer {secret}"} if "authorization" not in (case.headers or {}) else {}
    )
    response = case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error])
    if response.status_code >= 400:
        # Every refusal is an OpenAI-style error object.
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_huge_and_garbled_bodies_are_refused_cleanly(fuzz_target: tuple[str, str]) -> None:
    import httpx

    url, secret = fuzz_target
    auth = {"authorization": f"Bearer {secret}"}
    cases = [
        (b"x" * (2 << 20), 413),
        (b"\xff\xfe\x00garbage", 400),
        (b'{"model": "arena-tiny", "messages": "hi"}', 400),
        (b'{"model": "arena-tiny", "messages": [{"role": "user", "content": "hi"}], "n": 5}', 400),
    ]
    for body, status in cases:
        response = httpx.post(url + "/v1/chat/completions", content=body, headers=auth)
        assert response.status_code == status, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
    # A body that lies about its length, streamed in chunks past the cap.
    chunks = iter([b"[" * 600_000, b"[" * 600_000])
    response = httpx.post(url + "/v1/chat/completions", content=chunks, headers=auth)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_paths_get_openai_errors(fuzz_target: tuple[str, str]) -> None:
    import httpx

    url, _ = fuzz_target
    response = httpx.get(url + "/v1/embeddings")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Not Found"
    response = httpx.delete(url + "/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"
