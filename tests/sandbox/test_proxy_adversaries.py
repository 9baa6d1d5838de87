"""The proxy adversaries (images/proxy-adversary/proxy.py) each do their own cheat in front of vLLM.

The proxy runs on the host as a subprocess, exactly as its image runs it, in front of the
session's real vLLM server. What each mode must do is what makes it a threat the evaluation has
to stop: replay answers a repeated request identically without the engine, stream_one streams
only its first answer, organic_cheat is honest only to requests that look like the validator's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tokenizers import Tokenizer

from harness.loadgen import RequestResult, chat_request_body, make_client, send_request
from harness.profile import repo_root
from harness.prompts import Prompt
from tests.fixtures.vllm import SERVED_MODEL_NAME, VllmServer, free_port

pytestmark = pytest.mark.vllm

PROXY = repo_root() / "images" / "proxy-adversary" / "proxy.py"
ENGINE_CALLS_HEADER = "x-adversary-engine-calls"
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0
TEXTS = (
    "Continue the following text. The river ran low that summer and the mill stood still.",
    "Summarise the passage below. Stones were carried up the hill one cart at a time.",
    "Rewrite this in plain words. The council met at dawn to settle the matter of the bridge.",
)
# Long answers, so an honest stream is not read in one piece by chance (see test_gate_vllm).
OUTPUT_TOKENS = 64


@contextmanager
def running_proxy(mode: str, engine: VllmServer, log_dir: Path) -> Iterator[str]:
    """The proxy in ``mode`` in front of ``engine``; yields its URL once its /health is 200."""
    port = free_port()
    log_path = log_dir / f"proxy-{mode}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(PROXY), "--mode", mode, "--engine", engine.url,
             "--port", str(port), "--host", "127.0.0.1",
             "--tokenizer", str(engine.model_dir / "tokenizer.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the {mode} proxy did not start; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)  # polling interval of a deadline-bounded wait
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def post_stream(url: str, body: dict) -> tuple[httpx.Headers, bytes]:
    """The headers and the raw answer of one streamed chat completion."""
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT_S
    ) as reply:
        assert reply.status_code == 200, reply.read()
        return reply.headers, reply.read()


def engine_calls(headers: httpx.Headers) -> int:
    """How many chat completions the proxy had sent to its engine when it answered."""
    return int(headers[ENGINE_CALLS_HEADER])


def streamed_text(raw: bytes) -> str:
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def answers(url: str, prompts: Sequence[Prompt]) -> list[RequestResult]:
    """The harness's own requests, one after another."""

    async def run() -> list[RequestResult]:
        async with make_client(1, REQUEST_TIMEOUT_S) as client:
            return [
                await send_request(
                    client,
                    url,
                    prompt,
                    SERVED_MODEL_NAME,
                    request_timeout_s=REQUEST_TIMEOUT_S,
                    stall_timeout_s=REQUEST_TIMEOUT_S,
                )
                for prompt in prompts
            ]

    results = asyncio.run(run())
    assert all(r.success for r in results), [r.error for r in results]
    return results


def test_replay_answers_a_repeated_request_identically_without_the_engine(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    body = chat_request_body(Prompt(0, TEXTS[0], OUTPUT_TOKENS), SERVED_MODEL_NAME)
    other = chat_request_body(Prompt(1, TEXTS[1], OUTPUT_TOKENS), SERVED_MODEL_NAME)
    with running_proxy("replay", vllm_server, tmp_path) as url:
        headers, first = post_stream(url, body)
        headers_again, again = post_stream(url, body)
        headers_other, _ = post_stream(url, other)
    assert b"token_id:" in first and first.endswith(b"data: [DONE]\n\n")
    # Byte for byte, completion id included: the engine would have named a new completion.
    assert again == first
    calls = engine_calls(headers)
    assert engine_calls(headers_again) == calls, "the repeated request reached the engine"
    assert engine_calls(headers_other) == calls + 1, "a new request must reach the engine"


def test_stream_one_streams_the_first_answer_and_sends_the_next_in_one_read(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    prompts = [Prompt(i, text, OUTPUT_TOKENS) for i, text in enumerate(TEXTS[:2])]
    honest = answers(vllm_server.url, prompts)
    with running_proxy("stream_one", vllm_server, tmp_path) as url:
        first, second = answers(url, prompts)
    assert len(set(first.arrivals)) > 1, "the first answer came in one read: not streamed"
    assert len(set(second.arrivals)) == 1, "the second answer was streamed, not held"
    # Correct tokens: only the streaming gives it away.
    assert [first.token_ids, second.token_ids] == [r.token_ids for r in honest]


def test_organic_cheat_is_honest_only_to_requests_that_look_like_the_validators(
    vllm_server: VllmServer, tmp_path: Path
) -> None:
    prompt = Prompt(0, TEXTS[2], OUTPUT_TOKENS)
    validator_body = chat_request_body(prompt, SERVED_MODEL_NAME)
    # An organic user's greedy request: no logprobs asked.
    organic_body = {
        "model": SERVED_MODEL_NAME,
        "messages": validator_body["messages"],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": OUTPUT_TOKENS,
        "ignore_eos": True,
    }
    [engine_answer] = answers(vllm_server.url, [prompt])
    _, engine_organic = post_stream(vllm_server.url, organic_body)
    with running_proxy("organic_cheat", vllm_server, tmp_path) as url:
        [validator_answer] = answers(url, [prompt])
        organic_headers, organic = post_stream(url, organic_body)
        reply = httpx.post(
            url + "/v1/chat/completions",
            json={**organic_body, "stream": False},
            timeout=REQUEST_TIMEOUT_S,
        )
    assert validator_answer.token_ids == engine_answer.token_ids
    tokenizer = Tokenizer.from_file(str(vllm_server.model_dir / "tokenizer.json"))
    text = streamed_text(organic)
    assert text != streamed_text(engine_organic)
    assert len(tokenizer.encode(text).ids) == OUTPUT_TOKENS
    assert organic.endswith(b"data: [DONE]\n\n")
    completion = reply.json()
    assert completion["usage"]["completion_tokens"] == OUTPUT_TOKENS
    content = completion["choices"][0]["message"]["content"]
    assert len(tokenizer.encode(content).ids) == OUTPUT_TOKENS
    # Only the validator-like request ever reached the engine.
    assert engine_calls(organic_headers) == engine_calls(reply.headers) == 1
