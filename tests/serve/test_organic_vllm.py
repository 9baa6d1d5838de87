"""Organic checks on real parts: a king that cheats organic users is caught, an honest one is not.

Real parts: vLLM CPU with the tiny model as the reference engine (the session's ``vllm_server``)
and as the king's own engine (a second server); the organic cheater
(``images/proxy-adversary/proxy.py --mode organic_cheat``: requests that look like the
validator's go to the engine, every other one gets a cheap answer) in front of the latter; the
gateway in-process (``create_app``) with every answer sampled, and an event log in a temporary
DuckDB file. The gateway runs under httpx's ASGI transport, so it, its background checks and the
in-process log share the test's event loop and the test can await the checks themselves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from events.client import LocalLogClient
from events.log import EventLog
from events.types import (
    EvalFinished,
    EvalQueued,
    KingDethroned,
    KingServing,
    OrganicChecked,
    RoundOpened,
)
from harness.loadgen import TOP_LOGPROBS
from rules.crown_policy import fold_crown
from serve_apps.gateway import GatewayConfig, create_app
from serve_apps.keys import create_key
from tests.fixtures.vllm import SERVED_MODEL_NAME, VllmServer, free_port, start_vllm

pytestmark = [pytest.mark.vllm]

PROXY = Path(__file__).resolve().parents[2] / "images" / "proxy-adversary" / "proxy.py"
KING, DIGEST = "5OrganicKing", "sha256:" + "c" * 64
MESSAGES = [{"role": "user", "content": "Tell me about the river and the old mill."}]
TOKENS = 32
# Organic traffic: greedy and sampled, whole and streamed. Sampled requests carry a seed so the
# run is reproducible (the honest king then samples what the reference samples).
ORGANIC = [
    {"temperature": 0},
    {"temperature": 0, "stream": True},
    {"temperature": 0.0, "seed": 3},
    {"temperature": 1.0, "seed": 7},
    {"temperature": 1.0, "seed": 11, "stream": True},
]
# What the validator's harness sends (harness.loadgen.chat_request_body): the cheater serves it.
VALIDATOR_LIKE = {
    "stream": True,
    "temperature": 0.0,
    "ignore_eos": True,
    "logprobs": True,
    "top_logprobs": TOP_LOGPROBS,
    "return_tokens_as_token_ids": True,
}
STARTUP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def king_engine() -> Iterator[VllmServer]:
    server = start_vllm()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def organic_cheater(king_engine: VllmServer) -> Iterator[str]:
    """The cheating proxy in front of the king's engine; yields its base URL."""
    port = free_port()
    args = [sys.executable, str(PROXY), "--mode", "organic_cheat"]
    args += ["--engine", king_engine.url, "--port", str(port)]
    args += ["--tokenizer", str(king_engine.model_dir / "tokenizer.json")]
    fd, log_name = tempfile.mkstemp(prefix="organic-cheat-", suffix=".log")
    with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{PROXY} exited with {process.returncode} at start; log: {log_name}\n"
                + Path(log_name).read_text()[-2000:]
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(f"{PROXY} not listening on {port}; log: {log_name}") from None
            time.sleep(0.2)  # polling interval of a deadline-bounded wait
    yield f"http://127.0.0.1:{port}"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@asynccontextmanager
async def gateway_before(
    king_url: str, reference_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, LocalLogClient]]:
    """The gateway with ``king_url`` serving as the king and every king answer checked."""
    log = LocalLogClient(EventLog(tmp_path / "events.duckdb"))
    log.append([KingServing(hotkey=KING, digest=DIGEST, endpoint=king_url, since_block=1)])
    keys = tmp_path / "keys.json"
    _, secret = create_key(keys, "organic", rate_per_s=1000, burst=1000)
    config = GatewayConfig(
        reference_endpoint=reference_url,
        keys_file=str(keys),
        served_model_name=SERVED_MODEL_NAME,
        rescore_endpoint=reference_url,
        organic_check_share=1.0,
        organic_check_concurrency=len(ORGANIC) + 1,
    )
    app = create_app(config, log)
    gateway = app.state.gateway
    async with app.router.lifespan_context(app):
        # Let the king follower read the log (it needs a few turns of the loop, no time).
        for _ in range(1000):
            if gateway.king is not None:
                break
            await asyncio.sleep(0)
        assert gateway.king is not None, "the gateway did not pick up the KingServing event"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"authorization": f"Bearer {secret}"},
            timeout=300,
        ) as client:
            yield client, log
            # Every check was submitted before its response returned: wait for them all.
            await asyncio.gather(*gateway.organic.running)


async def ask(client: httpx.AsyncClient, fields: dict) -> str:
    body = {"model": SERVED_MODEL_NAME, "messages": MESSAGES, "max_tokens": TOKENS, **fields}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-arena-upstream"] == "king"
    return response.text


def checks(log: LocalLogClient) -> list[OrganicChecked]:
    return [r.event for r in log.replay(0, ["OrganicChecked"])]


def crowned_then(events: list) -> list:
    """The king crowned by a round, followed by ``events``: the crown keeper's decisions."""
    queued = EvalQueued(
        eval_id="ev-1",
        hotkey=KING,
        image="127.0.0.1:5000/king",
        digest=DIGEST,
        role="challenger",
        submitted_block=1,
        round_seed="s",
    )
    finished = EvalFinished(
        eval_id="ev-1",
        hotkey=KING,
        digest=DIGEST,
        verdict="pass",
        reason="",
        score=0.3,
        noise=0.0,
        metrics={},
    )
    opened = RoundOpened(round=1, block=10, seed="s", eval_ids=["ev-1"])
    return fold_crown([opened, queued, finished, *events])[1]


async def test_a_king_that_cheats_organic_users_fails_its_checks_and_falls(
    vllm_server: VllmServer, organic_cheater: str, tmp_path: Path
) -> None:
    async with gateway_before(organic_cheater, vllm_server.url, tmp_path) as (client, log):
        for fields in ORGANIC:
            await ask(client, fields)
    organic = checks(log)
    # Greedy answers are judged; sampled ones are not yet (serve_apps.organic_check).
    assert len(organic) == 3
    assert all((c.hotkey, c.digest) == (KING, DIGEST) for c in organic)
    assert [c.passed for c in organic] == [False] * 3, organic
    assert {c.rule for c in organic} == {"greedy"}
    assert {c.reason.split(":")[0] for c in organic} == {"off_argmax"}

    # The crown keeper folds these checks: the king falls for organic_mismatch.
    (dethroned,) = [e for e in crowned_then(organic) if isinstance(e, KingDethroned)]
    assert dethroned.hotkey == KING and dethroned.reason.startswith("organic_mismatch: ")


async def test_what_looks_like_the_validators_request_is_answered_honestly_by_the_cheater(
    vllm_server: VllmServer, organic_cheater: str, tmp_path: Path
) -> None:
    # The exploit's premise: the gate's requests alone would have passed it.
    async with gateway_before(organic_cheater, vllm_server.url, tmp_path) as (client, log):
        await ask(client, VALIDATOR_LIKE)
    (check,) = checks(log)
    assert check.passed and check.rule == "greedy", check


async def test_an_honest_king_passes_every_check(
    vllm_server: VllmServer, king_engine: VllmServer, tmp_path: Path
) -> None:
    async with gateway_before(king_engine.url, vllm_server.url, tmp_path) as (client, log):
        for fields in [*ORGANIC, VALIDATOR_LIKE]:
            await ask(client, fields)
    organic = checks(log)
    # A sampled answer the reference cannot split as the king did is not judged, never failed.
    assert all(c.passed and c.reason == "ok" for c in organic), organic
    assert len(organic) == 4 and {c.rule for c in organic} == {"greedy"}, organic
    assert [e for e in crowned_then(organic) if isinstance(e, KingDethroned)] == []
