"""Live mode end to end on the subtensor runtime: real axons, metagraph, weights and log."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time

import httpx
import msgspec
import pytest
from substrateinterface import Keypair

from chain.client import ChainClient
from chain.metagraph import read_neuron_uid
from events.client import LocalLogClient
from events.log import EventLog
from live.auth import AuthPolicy
from live.chain_link import ChainLink, caller_stakes
from live.miner import bind_socket
from live.query import query_miner
from live.ratelimit import stake_share
from live.scoring import ScoringRule
from live.signing import sign_request
from live.tasks.arith import ArithRequest, ArithTask
from live.validator import LiveValidator, LiveValidatorConfig, restore_state
from live.views import with_views
from serve_apps.keys import create_key
from tests.live.livenet import MIN_STAKE, LiveNet, LoopbackResolver, start_miner

pytestmark = pytest.mark.chain

TASK = ArithTask()
ROUNDS = 3


def _validator(net: LiveNet, keypair: Keypair, sink, client: ChainClient) -> LiveValidator:
    config = LiveValidatorConfig(
        netuid=net.netuid, sample_size=16, scoring=ScoringRule(timeout_s=10.0)
    )
    return LiveValidator(
        config,
        keypair,
        TASK,
        ChainLink(client, net.netuid, keypair),
        sink,
        LoopbackResolver(),
        rng=random.Random(0),
    )


@pytest.fixture(scope="module")
def scored_net(live_net: LiveNet, tmp_path_factory):
    """Rounds run and weights set once for the module: (net, log path, validator, outcome)."""
    log_path = tmp_path_factory.mktemp("live") / "log.duckdb"

    async def main():
        with EventLog(log_path) as log:
            sink = LocalLogClient(log)
            validator = _validator(live_net, live_net.subnet.validator, sink, live_net.client)
            await validator.refresh()
            rounds = [await validator.challenge_round() for _ in range(ROUNDS)]
            outcome = await validator.set_weights()
            await validator.aclose()
            return validator, rounds, outcome

    validator, rounds, outcome = asyncio.run(main())
    return live_net, log_path, validator, rounds, outcome


def test_weights_on_chain_rank_correct_above_slow_above_wrong(scored_net):
    net, _, validator, _, outcome = scored_net
    assert outcome is not None
    computed, weights_set = outcome
    assert weights_set.success, weights_set.error
    client = net.client
    uid = read_neuron_uid(client, net.netuid, net.subnet.validator.ss58_address)
    on_chain = dict(client.query("SubtensorModule", "Weights", [net.netuid, uid]))
    uid_of = {b: read_neuron_uid(client, net.netuid, k.ss58_address) for b, (k, _) in
              net.miners.items()}  # fmt: skip
    correct, slow = on_chain.get(uid_of["correct"], 0), on_chain.get(uid_of["slow"], 0)
    wrong, down = on_chain.get(uid_of["wrong"], 0), on_chain.get(uid_of["down"], 0)
    assert correct > slow > wrong, on_chain
    assert wrong == 0 and down == 0
    sent = dict(zip(weights_set.uids, weights_set.weights, strict=True))
    assert {u: w for u, w in sent.items() if w} == {u: w for u, w in on_chain.items() if w}


def test_a_miner_that_is_down_does_not_stop_the_round(scored_net):
    net, _, validator, rounds, _ = scored_net
    down_hotkey = net.miners["down"][0].ss58_address
    for scored in rounds:
        by_miner = {e.hotkey: e for e in scored}
        assert set(by_miner) == {k.ss58_address for k, _ in net.miners.values()}
        assert by_miner[down_hotkey].error_kind == "connect"
        assert by_miner[down_hotkey].score == 0.0
        assert by_miner[net.miners["correct"][0].ss58_address].correct


def test_scores_are_in_the_log_and_views(scored_net):
    net, log_path, validator, _, outcome = scored_net
    with EventLog(log_path) as log:
        client = LocalLogClient(log)
        # A restarted validator folds its averages back from the log.
        assert restore_state(client, validator.hotkey) == validator.state
        _, rows = log.sql(
            with_views("SELECT hotkey, requests, accuracy FROM live_miner_minutes ORDER BY hotkey")
        )
        _, weights = log.sql(with_views("SELECT uid, weight FROM live_weights ORDER BY uid"))
        _, on_chain = log.sql("SELECT success, uids FROM weights")
    accuracy = {hotkey: acc for hotkey, _, acc in rows}
    assert sum(n for _, n, _ in rows) == ROUNDS * len(net.miners)
    assert accuracy[net.miners["correct"][0].ss58_address] == 1.0
    assert accuracy[net.miners["slow"][0].ss58_address] == 1.0
    assert accuracy[net.miners["wrong"][0].ss58_address] == 0.0
    assert {u for u, _ in weights} == set(outcome[0].uids)
    assert on_chain == [(True, outcome[1].uids)]


def _post(port: int, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/task/arith", content=body, headers=headers)


def _signed(keypair: Keypair, miner: str, body: bytes) -> dict[str, str]:
    now_ms = int(time.time() * 1000)
    return sign_request(keypair, miner=miner, body=body, timestamp_ms=now_ms).headers()


def test_miner_refuses_forged_replayed_tampered_and_unregistered(live_net: LiveNet):
    miner, port = live_net.miners["correct"]
    body = msgspec.json.encode(ArithRequest(op="mul", a=6, b=7))
    good = _signed(live_net.subnet.validator, miner.ss58_address, body)
    reply = _post(port, body, good)
    assert reply.status_code == 200 and reply.json() == {"result": 42}

    def refusal(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        reply = _post(port, body, headers)
        return reply.status_code, reply.json()["error"]

    assert refusal(body, good) == (401, "replay")
    fresh = _signed(live_net.subnet.validator, miner.ss58_address, body)
    assert refusal(body.replace(b"6", b"9"), fresh) == (401, "bad_signature")
    forged = _signed(live_net.subnet.outsider, miner.ss58_address, body)
    forged["x-arena-validator"] = live_net.subnet.validator.ss58_address
    assert refusal(body, forged) == (401, "bad_signature")
    outsider = _signed(live_net.subnet.outsider, miner.ss58_address, body)
    assert refusal(body, outsider) == (403, "unknown_caller")
    assert refusal(body, _signed(live_net.poor, miner.ss58_address, body)) == (403, "low_stake")
    # After all that, the untouched fresh request is still good.
    assert _post(port, body, fresh).status_code == 200


def test_rate_limits_hold_under_concurrent_validators(live_net: LiveNet):
    # A fresh server for the slow miner's hotkey, so the shared miners' buckets stay untouched;
    # its capacity is a total burst of 12 requests, refilled at one per 1000 s.
    miner_key = live_net.miners["slow"][0]
    policy = AuthPolicy(min_stake=MIN_STAKE, capacity_rps=0.001, burst_s=12_000)
    server = start_miner(
        live_net.client, live_net.netuid, miner_key.ss58_address, "correct", policy
    )
    validators = [live_net.subnet.validator, live_net.second_validator]
    stakes = caller_stakes(live_net.client, live_net.netuid)
    eligible = {hk: s for hk, s in stakes.items() if s >= MIN_STAKE}
    assert {v.ss58_address for v in validators} <= set(eligible)
    shares = {
        v.ss58_address: stake_share(
            eligible, v.ss58_address, capacity_rps=policy.capacity_rps, burst_s=policy.burst_s
        )
        for v in validators
    }
    url = f"http://127.0.0.1:{server.port}/task/arith"
    body = msgspec.json.encode(ArithRequest(op="add", a=1, b=1))

    async def flood(client: httpx.AsyncClient, keypair: Keypair) -> list[int]:
        results = await asyncio.gather(
            *[
                query_miner(client, url, keypair, miner_key.ss58_address, body, timeout_s=30)
                for _ in range(20)
            ]
        )
        return [r.status for r in results]

    async def main() -> tuple[dict[str, list[int]], float]:
        start = time.monotonic()
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
            statuses = await asyncio.gather(*[flood(client, v) for v in validators])
        return dict(zip((v.ss58_address for v in validators), statuses, strict=True)), (
            time.monotonic() - start
        )

    try:
        statuses, elapsed = asyncio.run(main())
    finally:
        server.stop()
    for hotkey, codes in statuses.items():
        share = shares[hotkey]
        accepted = codes.count(200)
        assert set(codes) <= {200, 429}, codes
        assert int(share.burst) <= accepted <= share.burst + share.rate * elapsed, (hotkey, codes)
    # Stake-proportional: the validator with more stake got more.
    big, small = (v.ss58_address for v in validators)
    assert shares[big].burst > shares[small].burst
    assert statuses[big].count(200) > statuses[small].count(200)


def test_organic_requests_through_the_live_gateway(scored_net, tmp_path):
    from live.organic import create_organic_app

    net, _, _, _, _ = scored_net
    keys_file = tmp_path / "keys.json"
    _, secret = create_key(keys_file, "app", rate_per_s=100, burst=100)

    async def main():
        with EventLog(tmp_path / "log.duckdb") as log:
            validator = _validator(net, net.subnet.validator, LocalLogClient(log), net.client)
            await validator.refresh()
            await validator.challenge_round()  # scores, so organic goes to the best miner
            app = create_organic_app(validator, keys_file)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                auth = {"authorization": f"Bearer {secret}"}
                path = "/v1/live/arith"
                ok = await client.post(path, json={"op": "mul", "a": 7, "b": 8}, headers=auth)
                bad = await client.post(path, json={"op": "pow"}, headers=auth)
                anonymous = await client.post(path, json={"op": "add", "a": 1, "b": 2})
            await validator.aclose()
            organic = [e for e in validator_events(log) if e.kind == "organic"]
            return ok, bad, anonymous, organic

    ok, bad, anonymous, organic = asyncio.run(main())
    assert ok.status_code == 200 and ok.json() == {"result": 56}
    assert ok.headers["x-arena-miner-uid"] == str(organic[0].uid)
    assert organic[0].hotkey == net.miners["correct"][0].ss58_address and organic[0].correct
    assert bad.status_code == 400 and anonymous.status_code == 401


def validator_events(log: EventLog):
    return [r.event for r in log.replay(types=["LiveChallengeScored"])]


def test_validator_loop_challenges_on_schedule_and_sets_weights(live_net: LiveNet, tmp_path):
    async def main():
        with EventLog(tmp_path / "log.duckdb") as log:
            sink = LocalLogClient(log)
            validator = _validator(live_net, live_net.subnet.validator, sink, live_net.client)
            stop = asyncio.Event()
            loop = asyncio.create_task(
                validator.run(stop, round_interval_s=0.0, weights_every_rounds=2)
            )
            weights = await sink.wait_for(0, ["WeightsSet"], timeout_s=120)
            stop.set()
            await loop
            await validator.aclose()
            scored = [r.event for r in log.replay(types=["LiveChallengeScored"])]
            return weights, scored

    weights, scored = asyncio.run(main())
    assert weights, "the loop set no weights within 120 s"
    assert weights[0].event.success, weights[0].event.error
    # Two rounds before the first weights, every served miner challenged in each.
    assert len(scored) >= 2 * len(live_net.miners)


def test_miner_command_serves_signed_requests(live_net: LiveNet):
    miner = live_net.miners["correct"][0]
    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "cli.main", "live", "miner", "--network", live_net.url,
        "--netuid", str(live_net.netuid), "--hotkey-uri", "//Bob//miner0", "--port", str(port),
        "--min-stake", str(MIN_STAKE),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "arena live miner did not come up in 120 s"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            time.sleep(0.2)  # polling for readiness, bounded by the deadline above
        body = msgspec.json.encode(ArithRequest(op="add", a=20, b=22))
        reply = _post(port, body, _signed(live_net.subnet.validator, miner.ss58_address, body))
        assert reply.status_code == 200 and reply.json() == {"result": 42}
        assert (
            _post(port, body, _signed(live_net.poor, miner.ss58_address, body)).status_code == 403
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
