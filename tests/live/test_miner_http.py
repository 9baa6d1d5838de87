"""The miner's HTTP surface on a real uvicorn server: behaviours, routes and refusals."""

from __future__ import annotations

import random
import time

import httpx
import msgspec
import pytest
from substrateinterface import Keypair

from live.auth import Authenticator, AuthPolicy
from live.miner import MinerApp, MinerConfig, MinerServer, bind_socket
from live.signing import sign_request
from live.tasks.arith import ArithRequest, ArithTask

TASK = ArithTask()
VALIDATOR = Keypair.create_from_uri("//HttpValidator")
MINER = Keypair.create_from_uri("//HttpMiner").ss58_address


@pytest.fixture(scope="module")
def miners():
    stakes = {VALIDATOR.ss58_address: 1000.0}
    servers = {}
    for behaviour in ("correct", "wrong"):
        auth = Authenticator(MINER, AuthPolicy(min_stake=1.0), lambda: stakes)
        app = MinerApp(TASK, auth, MinerConfig(behaviour=behaviour, max_body_bytes=1024))
        servers[behaviour] = MinerServer(app, bind_socket("127.0.0.1", 0))
        servers[behaviour].start()
    yield {b: f"http://127.0.0.1:{s.port}" for b, s in servers.items()}
    for server in servers.values():
        server.stop()


def post(base: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    if headers is None:
        signed = sign_request(
            VALIDATOR, miner=MINER, body=body, timestamp_ms=int(time.time() * 1e3)
        )
        headers = signed.headers()
    return httpx.post(f"{base}/task/arith", content=body, headers=headers, timeout=10)


def test_correct_miner_answers_and_wrong_miner_does_not(miners):
    request = TASK.generate(random.Random(3))
    body = msgspec.json.encode(request)
    for behaviour, expect_correct in (("correct", True), ("wrong", False)):
        reply = post(miners[behaviour], body)
        assert reply.status_code == 200, reply.text
        answer = msgspec.json.decode(reply.content, type=TASK.response_type)
        assert TASK.check(request, answer) is expect_correct


def test_refusals_over_http(miners):
    base = miners["correct"]
    body = msgspec.json.encode(ArithRequest(op="add", a=1, b=2))
    signed = sign_request(VALIDATOR, miner=MINER, body=body, timestamp_ms=int(time.time() * 1e3))
    assert post(base, body, signed.headers()).status_code == 200
    replay = post(base, body, signed.headers())
    assert (replay.status_code, replay.json()["error"]) == (401, "replay")
    tampered = post(base, body.replace(b"2", b"5"), {**signed.headers(), "x-arena-nonce": "1" * 32})
    assert (tampered.status_code, tampered.json()["error"]) == (401, "bad_signature")
    stranger = Keypair.create_from_uri("//HttpStranger")
    foreign = sign_request(stranger, miner=MINER, body=body, timestamp_ms=int(time.time() * 1e3))
    refused = post(base, body, foreign.headers())
    assert (refused.status_code, refused.json()["error"]) == (403, "unknown_caller")
    assert post(base, body, {}).status_code == 400


def test_bad_bodies_and_routes(miners):
    base = miners["correct"]
    assert post(base, b'{"op":"pow","a":1,"b":2}').status_code == 400
    assert post(base, b"x" * 2048).status_code == 413
    assert httpx.get(f"{base}/task/arith").status_code == 405
    assert httpx.get(f"{base}/nope").status_code == 404
    assert httpx.get(f"{base}/health").json() == {"hotkey": MINER, "task": "arith"}
