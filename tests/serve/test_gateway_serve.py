"""The gateway and the reference miner deployed with Ray Serve, driven by the openai client.

Real parts: Ray Serve on the session's Ray, vLLM CPU with the tiny model inside the miner's
replica, the event log actor, and (for failover) a separate vLLM process as the king.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from cli.main import app as arena
from events.types import KingDethroned, KingServing, OrganicWindow
from serve_apps.keys import create_key
from tests.fixtures.vllm import start_vllm
from tests.serve.conftest import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.vllm]

MODEL = "arena-tiny"
MESSAGES = [{"role": "user", "content": "Tell me about the river."}]


def _check_openai_surface(base_url: str, api_key: str) -> str:
    """Non-streaming and streaming completions with logprobs; returns the greedy text."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL]

    full = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    choice = full.choices[0]
    assert choice.message.content and choice.finish_reason == "length"
    assert len(choice.logprobs.content) == 8 == full.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)

    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, stream=True
    )
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    tokens = sum(len(c.choices[0].logprobs.content) for c in chunks if c.choices[0].logprobs)
    assert text == choice.message.content  # greedy: streamed and whole answers agree
    assert tokens == 8
    assert chunks[-1].choices[0].finish_reason == "length"
    return text


def test_reference_miner_speaks_openai(reference_miner: str) -> None:
    _check_openai_surface(reference_miner, "unused")
    assert httpx.get(reference_miner + "/health").status_code == 200


def test_gateway_passes_the_miner_through(gateway: str, reference_miner: str, api_key: str) -> None:
    direct = _check_openai_surface(reference_miner, "unused")
    assert _check_openai_surface(gateway, api_key) == direct

    # Usage chunks reach a client only when it asked for them.
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=api_key, max_retries=0)
    for include_usage in (False, True):
        stream = client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
        usage = [c.usage for c in stream if c.usage is not None]
        assert [u.completion_tokens for u in usage] == ([3] if include_usage else [])


def test_client_mistakes_are_openai_errors(gateway: str, api_key: str) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
    assert caught.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4", messages=MESSAGES, max_tokens=2)
    assert caught.value.body["code"] == "model_not_found"
    # The miner's own refusals (here: more tokens than the model's context) pass through as 400s.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100_000)


def test_unknown_and_revoked_keys_are_refused(gateway: str, keys_file: Path) -> None:
    unknown = openai.OpenAI(base_url=gateway + "/v1", api_key="sk-arena-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unknown.models.list()
    assert httpx.get(gateway + "/v1/models").status_code == 401

    runner = CliRunner()
    created = runner.invoke(arena, ["keys", "create", "eve", "--keys-file", str(keys_file)])
    key_id, secret = created.output.split()
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0)
    assert client.models.list().data[0].id == MODEL
    revoked = runner.invoke(arena, ["keys", "revoke", key_id, "--keys-file", str(keys_file)])
    assert revoked.exit_code == 0
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.body["code"] == "invalid_api_key"


def test_rate_limit_is_per_key_with_retry_after(gateway: str, keys_file: Path) -> None:
    _, slow = create_key(keys_file, "slow", rate_per_s=0.01, burst=2)
    _, other = create_key(keys_file, "other", rate_per_s=0.01, burst=2)
    auth = {"authorization": f"Bearer {slow}"}
    assert [httpx.get(gateway + "/v1/models", headers=auth).status_code for _ in range(2)] == [
        200,
        200,
    ]
    limited = httpx.get(gateway + "/v1/models", headers=auth)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    # Another key's bucket is untouched.
    other_auth = {"authorization": f"Bearer {other}"}
    assert httpx.get(gateway + "/v1/models", headers=other_auth).status_code == 200
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=slow, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.models.list()


def _upstream(gateway: str, api_key: str) -> str:
    response = httpx.post(
        gateway + "/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": MODEL, "messages": MESSAGES, "max_tokens": 1},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-arena-upstream"]


@pytest.fixture
def king(event_log: Any) -> Any:
    """A second, separate vLLM process announced as the king; dethroned afterwards."""
    server = start_vllm()
    digest = "sha256:" + "0" * 64
    event_log.append(
        [KingServing(hotkey="5King", digest=digest, endpoint=server.url, since_block=1)]
    )
    yield server
    event_log.append(
        [KingDethroned(hotkey="5King", digest=digest, eval_id="test-king", reason="test over")]
    )
    server.stop()


def test_failover_when_the_king_dies_mid_stream(gateway: str, api_key: str, king: Any) -> None:
    wait_until(lambda: _upstream(gateway, api_key) == "king", 30, "the gateway to follow the king")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=api_key, max_retries=0)
    # The tiny model never emits end-of-sequence, so this stream is long enough to be cut.
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=900, temperature=0, stream=True
    )
    received = 0
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            received += 1
            if received == 3:
                os.killpg(king.process.pid, signal.SIGKILL)
    assert 3 <= received < 900
    assert "failed mid-stream" in str(caught.value)

    # The next requests go to the reference miner, streaming and not.
    started = time.monotonic()
    assert _upstream(gateway, api_key) == "reference"
    text = _check_openai_surface(gateway, api_key)
    assert text and time.monotonic() - started < 60


def test_usage_is_recorded_as_organic_windows(gateway: str, api_key: str, event_log: Any) -> None:
    _upstream(gateway, api_key)

    def windows() -> list[OrganicWindow]:
        return [r.event for r in event_log.replay(0, ["OrganicWindow"])]

    # Windows are appended once their minute is over.
    recorded = wait_until(windows, 90, "an OrganicWindow in the event log", poll_s=1.0)
    assert all(w.key_id.startswith("key_") for w in recorded)
    assert sum(w.requests for w in recorded) >= 1
    assert sum(w.completion_tokens for w in recorded) >= 1
