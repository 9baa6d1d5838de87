"""``/v1/completions`` through the gateway, driven by the official openai client.

The gateway runs on its own uvicorn listener in a thread with an in-process event log, in front of
toy kings and a toy reference miner (real HTTP servers, no model): what is tested is the gateway's
keys, limits, streaming, usage and failover for text completions, not generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from events.client import LocalLogClient
from events.log import EventLog
from events.types import KingServing, OrganicWindow
from serve_apps.gateway import GatewayConfig, create_app
from serve_apps.keys import create_key
from tests.fixtures.vllm import free_port
from tests.serve.conftest import serve_in_thread, wait_until
from tests.serve.toy_engine import king_app

MODEL = "arena-tiny"
PROMPT = "Once upon a time"


def _server(letter: str, cut_after: int | None = None) -> Iterator[str]:
    with serve_in_thread(
        king_app(lambda request: letter * request["max_tokens"], cut_after), free_port()
    ) as url:
        yield url


@pytest.fixture(scope="module")
def reference() -> Iterator[str]:
    yield from _server("r")


@pytest.fixture(scope="module")
def king() -> Iterator[str]:
    yield from _server("k")


@pytest.fixture(scope="module")
def dying_king() -> Iterator[str]:
    yield from _server("k", cut_after=3)


class Gateway:
    def __init__(self, url: str, keys: Path, secret: str) -> None:
        self.url, self.keys, self.secret = url, keys, secret
        self.windows: list[OrganicWindow] = []

    def client(self, secret: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=secret or self.secret, max_retries=0
        )


@contextmanager
def gateway(king: str | None, reference: str, tmp_path: Path) -> Iterator[Gateway]:
    """The gateway following ``king``; once it stops, its flushed usage is in ``.windows``."""
    with EventLog(tmp_path / "events.duckdb") as events:
        log = LocalLogClient(events)
        if king is not None:
            log.append(
                [
                    KingServing(
                        hotkey="5King", digest="sha256:" + "e" * 64, endpoint=king, since_block=1
                    )
                ]
            )
        keys = tmp_path / "keys.json"
        _, secret = create_key(keys, "completions", rate_per_s=1000, burst=1000)
        config = GatewayConfig(
            reference_endpoint=reference, keys_file=str(keys), king_cooldown_s=60.0
        )
        app = create_app(config, log)
        state = app.state.gateway
        gw = None
        with serve_in_thread(app, free_port()) as url:
            if king is not None:
                wait_until(lambda: state.king is not None, 30, "the gateway to follow the king")
            gw = Gateway(url, keys, secret)
            yield gw
        # The server thread has stopped: the log is this thread's again.
        gw.windows = [r.event for r in log.replay(0, ["OrganicWindow"])]


def test_whole_and_streamed_completions_with_usage(
    king: str, reference: str, tmp_path: Path
) -> None:
    with gateway(king, reference, tmp_path) as gw:
        client = gw.client()
        raw = client.completions.with_raw_response.create(model=MODEL, prompt=PROMPT, max_tokens=5)
        whole = raw.parse()
        assert raw.headers["x-arena-upstream"] == "king"
        assert whole.choices[0].text == "kkkkk" and whole.usage.completion_tokens == 5

        for include_usage in (False, True):
            stream = client.completions.create(
                model=MODEL,
                prompt=[1, 2, 3],  # token ids are a prompt too
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": include_usage},
            )
            chunks = list(stream)
            assert "".join(c.choices[0].text for c in chunks if c.choices) == "kkkk"
            # The usage chunk reaches a client only when it asked for it.
            usage = [c.usage.completion_tokens for c in chunks if c.usage is not None]
            assert usage == ([4] if include_usage else [])
    # Every answer is counted, streamed or not (the gateway asks the king for usage).
    assert sum(w.requests for w in gw.windows) == 3
    assert sum(w.completion_tokens for w in gw.windows) == 5 + 4 + 4
    assert {w.upstream for w in gw.windows} == {king}


def test_malformed_requests_get_openai_400s(king: str, reference: str, tmp_path: Path) -> None:
    with gateway(king, reference, tmp_path) as gw:
        client = gw.client()
        for fields, param in [
            ({"prompt": PROMPT, "n": 2}, "n"),
            ({"prompt": [], "max_tokens": 2}, "prompt"),
            ({"prompt": ["one", "two"]}, "prompt[0]"),
            ({"prompt": PROMPT, "max_tokens": 0}, "max_tokens"),
            ({"prompt": PROMPT, "logprobs": 99}, "logprobs"),
        ]:
            with pytest.raises(openai.BadRequestError) as caught:
                client.completions.create(model=MODEL, **fields)
            assert caught.value.body["param"] == param, caught.value.body
            assert caught.value.body["type"] == "invalid_request_error"
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(model=MODEL, prompt=None)
        assert caught.value.body["param"] == "prompt"
        response = httpx.post(
            gw.url + "/v1/completions",
            content=b"{not json",
            headers={"authorization": f"Bearer {gw.secret}"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
        with pytest.raises(openai.NotFoundError) as caught:
            client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT)
        assert caught.value.body["code"] == "model_not_found"
    # Refused requests never reach an upstream, so no usage is recorded.
    assert gw.windows == []


def test_keys_and_rate_limits_apply(king: str, reference: str, tmp_path: Path) -> None:
    with gateway(king, reference, tmp_path) as gw:
        with pytest.raises(openai.AuthenticationError):
            gw.client("sk-arena-nope").completions.create(model=MODEL, prompt=PROMPT)
        _, slow = create_key(gw.keys, "slow", rate_per_s=0.01, burst=1)
        client = gw.client(slow)
        assert client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1).choices
        with pytest.raises(openai.RateLimitError) as caught:
            client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1)
        assert caught.value.body["code"] == "rate_limit_exceeded"
        assert int(caught.value.response.headers["retry-after"]) >= 1


def test_failover_to_the_reference_when_the_king_dies_mid_stream(
    dying_king: str, reference: str, tmp_path: Path
) -> None:
    with gateway(dying_king, reference, tmp_path) as gw:
        client = gw.client()
        stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, stream=True)
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk.choices[0].text)
        assert received == ["k", "k", "k"]
        assert "failed mid-stream" in str(caught.value)
        # The king is marked down: the next requests go to the reference, streamed or not.
        raw = client.completions.with_raw_response.create(model=MODEL, prompt=PROMPT, max_tokens=2)
        assert raw.headers["x-arena-upstream"] == "reference"
        assert raw.parse().choices[0].text == "rr"
        stream = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=2, stream=True)
        assert "".join(c.choices[0].text for c in stream) == "rr"
    failed = [w for w in gw.windows if w.upstream == dying_king]
    assert [(w.requests, w.errors) for w in failed] == [(1, 1)]


def test_a_king_that_is_down_is_skipped(reference: str, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with gateway(nowhere, reference, tmp_path) as gw:
        raw = gw.client().completions.with_raw_response.create(
            model=MODEL, prompt=PROMPT, max_tokens=3
        )
        assert raw.headers["x-arena-upstream"] == "reference"
        assert raw.parse().choices[0].text == "rrr"
