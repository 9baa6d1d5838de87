"""The gateway's organic sampling, without vLLM: toy kings and the toy reference engine over HTTP.

The gateway runs under httpx's ASGI transport with an in-process event log, so the test awaits
its background checks directly; the toy upstreams listen on real ports in threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from events.client import LocalLogClient
from events.log import EventLog
from events.types import KingServing, OrganicChecked
from serve_apps.gateway import GatewayConfig, create_app
from serve_apps.keys import create_key
from tests.fixtures.vllm import free_port
from tests.serve.conftest import serve_in_thread
from tests.serve.toy_engine import ToyReference, greedy_text, king_app, reference_app

KING, DIGEST = "5ToyKing", "sha256:" + "d" * 64
TOKENS = 16
GREEDY = {"temperature": 0, "max_tokens": TOKENS}


@pytest.fixture(scope="module")
def toy() -> ToyReference:
    return ToyReference()


@pytest.fixture(scope="module")
def reference(toy: ToyReference) -> Iterator[str]:
    with serve_in_thread(reference_app(toy), free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def honest_king() -> Iterator[str]:
    with serve_in_thread(
        king_app(lambda request: greedy_text(request["max_tokens"])), free_port()
    ) as url:
        yield url


@pytest.fixture(scope="module")
def garbage_king() -> Iterator[str]:
    with serve_in_thread(king_app(lambda request: "b" * request["max_tokens"]), free_port()) as url:
        yield url


class Gateway:
    def __init__(self, client: httpx.AsyncClient, log: LocalLogClient, state) -> None:
        self.client, self.log, self.state = client, log, state

    async def ask(self, stream: bool = False, **fields: object) -> httpx.Response:
        body = {"model": "arena-tiny", "messages": [{"role": "user", "content": "hi"}]}
        response = await self.client.post(
            "/v1/chat/completions", json={**body, **GREEDY, **fields, "stream": stream}
        )
        assert response.status_code == 200, response.text
        return response

    async def checked(self) -> list[OrganicChecked]:
        await asyncio.gather(*self.state.organic.running)
        return [r.event for r in self.log.replay(0, ["OrganicChecked"])]


@asynccontextmanager
async def gateway(
    king: str, reference: str, tmp_path: Path, **config: object
) -> AsyncIterator[Gateway]:
    with EventLog(tmp_path / "events.duckdb") as events:
        log = LocalLogClient(events)
        log.append([KingServing(hotkey=KING, digest=DIGEST, endpoint=king, since_block=1)])
        keys = tmp_path / "keys.json"
        _, secret = create_key(keys, "organic", rate_per_s=1000, burst=1000)
        settings = {"rescore_endpoint": reference, "organic_check_share": 1.0, **config}
        app = create_app(
            GatewayConfig(reference_endpoint=reference, keys_file=str(keys), **settings), log
        )
        state = app.state.gateway
        async with app.router.lifespan_context(app):
            for _ in range(1000):  # turns of the loop for the king follower, not time
                if state.king is not None:
                    break
                await asyncio.sleep(0)
            assert state.king is not None, "the gateway did not pick up the KingServing event"
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gateway",
                headers={"authorization": f"Bearer {secret}"},
            ) as client:
                yield Gateway(client, log, state)


async def test_an_honest_kings_answers_pass_streamed_or_not(
    honest_king: str, reference: str, tmp_path: Path
) -> None:
    async with gateway(honest_king, reference, tmp_path) as gw:
        whole = await gw.ask()
        streamed = await gw.ask(stream=True)
        checked = await gw.checked()
    assert whole.json()["choices"][0]["message"]["content"] == greedy_text(TOKENS)
    assert b'"content": "a"' in streamed.content and b'"usage"' not in streamed.content
    assert [(c.hotkey, c.digest, c.passed, c.reason) for c in checked] == [
        (KING, DIGEST, True, "ok"),
        (KING, DIGEST, True, "ok"),
    ]
    assert {c.rule for c in checked} == {"greedy"} and {c.gap for c in checked} == {0.0}
    assert len({c.request_id for c in checked}) == 2


async def test_a_garbage_kings_greedy_answers_fail_and_sampled_ones_are_not_judged(
    garbage_king: str, reference: str, tmp_path: Path
) -> None:
    async with gateway(garbage_king, reference, tmp_path) as gw:
        await gw.ask(stream=True)
        await gw.ask(temperature=1.0)
        checked = await gw.checked()
    assert [(c.rule, c.passed, c.reason.split(":")[0]) for c in checked] == [
        ("greedy", False, "off_argmax"),
    ]


async def test_no_checks_unless_switched_on(
    garbage_king: str, reference: str, tmp_path: Path
) -> None:
    for n, config in enumerate([{"organic_check_share": 0.0}, {"rescore_endpoint": ""}]):
        (tmp_path / str(n)).mkdir()
        async with gateway(garbage_king, reference, tmp_path / str(n), **config) as gw:
            await gw.ask()
            assert gw.state.organic is None
            assert list(gw.log.replay(0, ["OrganicChecked"])) == []


async def test_requests_the_check_cannot_replay_are_answered_but_not_checked(
    garbage_king: str, reference: str, tmp_path: Path
) -> None:
    async with gateway(garbage_king, reference, tmp_path) as gw:
        await gw.ask(logit_bias={"2": 5})
        await gw.ask(temperature=1.8)
        assert gw.state.organic.running == set()
        assert await gw.checked() == []


async def test_checks_never_hold_up_answers_and_are_dropped_when_busy(
    honest_king: str, reference: str, toy: ToyReference, tmp_path: Path
) -> None:
    toy.gate = threading.Event()  # the reference engine stalls until released
    try:
        async with gateway(honest_king, reference, tmp_path, organic_check_concurrency=1) as gw:
            first = await gw.ask(stream=True)
            second = await gw.ask()  # the only check slot is taken: this one is dropped
            assert first.status_code == second.status_code == 200
            assert len(gw.state.organic.running) == 1
            toy.gate.set()
            checked = await gw.checked()
    finally:
        toy.gate.set()
        toy.gate = None
    assert [c.passed for c in checked] == [True]


async def test_an_unreachable_reference_records_nothing_and_serves_on(
    honest_king: str, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with gateway(honest_king, nowhere, tmp_path) as gw:
        assert (await gw.ask()).headers["x-arena-upstream"] == "king"
        assert await gw.checked() == []
