"""A live-mode validator: challenges miners' endpoints, forwards organic requests, sets weights.

Decisions live in pure modules (:mod:`live.endpoints` samples, :mod:`live.ratelimit` limits,
:mod:`live.scoring` scores); this class wires them to the network, the chain and the event log.
Its state (the per-miner averages) is a fold of its own ``LiveChallengeScored`` events, so a
restarted validator continues where it stopped: build it with ``state=project(events)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import httpx
import msgspec
from substrateinterface import Keypair

from chain.client import ChainError
from events.recorded import Recorded
from events.types import Event, LiveChallengeScored, LiveWeightsComputed, WeightsSet
from live.endpoints import AxonResolver, Neuron, sample_miners, servable
from live.errors import LiveError
from live.query import QueryResult, query_miner
from live.ratelimit import RateShare, TrafficKind, TrafficLimiter, stake_share
from live.scoring import (
    ScoreState,
    ScoringRule,
    challenge_score,
    ema,
    evolve,
    project,
    should_count,
    weights_from_scores,
    window_of,
)
from live.task import Task, TaskError, decode_request, decode_response

__all__ = [
    "EventSink",
    "LiveChain",
    "LiveValidator",
    "LiveValidatorConfig",
    "NoMinerAvailable",
    "OrganicReply",
    "WeightsOutcome",
    "restore_state",
]

log = logging.getLogger(__name__)


def restore_state(sink: EventSink, validator_hotkey: str) -> ScoreState:
    """This validator's averages, folded from its own past ``LiveChallengeScored`` events."""
    return project(
        r.event
        for r in sink.replay(types=["LiveChallengeScored"])
        if r.event.validator == validator_hotkey
    )


class WeightsOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What setting weights did: the block, and the u16 weights sent when it succeeded."""

    block: int
    success: bool
    uids: list[int] = []
    weights: list[int] = []
    extrinsic_hash: str = ""
    error: str = ""


class LiveChain(Protocol):
    """The chain as live mode uses it (see :mod:`live.chain_link` for the real one)."""

    def neurons(self) -> list[Neuron]: ...

    def block(self) -> int: ...

    def set_weights(self, scores: dict[int, float]) -> WeightsOutcome: ...


class EventSink(Protocol):
    """Where events go: :class:`events.client.LocalLogClient` or the actors' ``LogClient``."""

    async def append_async(self, events: Sequence[Event]) -> object: ...

    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]: ...


class NoMinerAvailable(LiveError, RuntimeError):
    """No miner could take an organic request (none served, or all over their rate limit)."""


class LiveValidatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    netuid: int
    # Miners challenged per round.
    sample_size: int = 16
    # Requests per second a miner serves in total; keep it at or below the miners' own setting.
    miner_capacity_rps: float = 50.0
    burst_s: float = 2.0
    # Fraction of this validator's share at each miner kept for organic requests.
    organic_reserve: float = 0.25
    # Hotkeys with less stake (alpha units) do not count as validators when shares are split.
    min_validator_stake: float = 0.0
    # Organic requests try at most this many miners before giving up.
    organic_attempts: int = 2
    scoring: ScoringRule = ScoringRule(timeout_s=2.0)


class OrganicReply(msgspec.Struct, frozen=True):
    uid: int
    hotkey: str
    body: bytes


class LiveValidator:
    def __init__(
        self,
        config: LiveValidatorConfig,
        keypair: Keypair,
        task: Task,
        chain: LiveChain,
        sink: EventSink,
        resolver: AxonResolver,
        *,
        state: ScoreState | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.keypair = keypair
        self.hotkey: str = keypair.ss58_address
        self.task = task
        self.chain = chain
        self.sink = sink
        self.resolver = resolver
        self.state = state or ScoreState()
        # Challenges must be unpredictable to miners: seed from the OS unless a test pins it.
        self.rng = rng or random.Random(secrets.randbits(128))
        self.clock = clock
        self.limiter = TrafficLimiter(config.organic_reserve)
        self.neurons: list[Neuron] = []
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def refresh(self) -> None:
        """Re-read the metagraph (the chain client is blocking, so off the event loop)."""
        self.neurons = await asyncio.to_thread(self.chain.neurons)

    # --- synthetic challenges -----------------------------------------------------------------

    async def challenge_round(self) -> list[LiveChallengeScored]:
        """Challenge a sample of miners once each, concurrently; one miner down stops nothing."""
        candidates = servable(self.neurons, self.hotkey)
        picked = sample_miners(candidates, self.config.sample_size, self.rng)
        now, share = self.clock(), self._share()
        sends = []
        for neuron in picked:
            if not self.limiter.acquire(neuron.hotkey, "synthetic", share, now):
                continue
            request = self.task.generate(self.rng)
            sends.append(self._send(neuron, msgspec.json.encode(request), "synthetic"))
        scored = [event for event, _ in await asyncio.gather(*sends)]
        await self.sink.append_async(scored)
        return scored

    # --- organic requests ---------------------------------------------------------------------

    async def forward_organic(self, body: bytes) -> OrganicReply:
        """Send a user's request to the best-scored miner with organic capacity left.

        Raises :class:`live.task.TaskError` for a body that is not a valid request (before any
        miner sees it) and :class:`NoMinerAvailable` when no miner answered.
        """
        decode_request(self.task, body)
        candidates = sorted(
            servable(self.neurons, self.hotkey),
            key=lambda n: (-self.state.ema.get(n.hotkey, 0.0), n.uid),
        )
        errors: list[str] = []
        share = self._share()
        for neuron in candidates:
            if len(errors) >= self.config.organic_attempts:
                break
            if not self.limiter.acquire(neuron.hotkey, "organic", share, self.clock()):
                continue
            event, result = await self._send(neuron, body, "organic")
            await self.sink.append_async([event])
            if event.correct:
                return OrganicReply(uid=neuron.uid, hotkey=neuron.hotkey, body=result.body)
            errors.append(f"uid {neuron.uid}: {event.error or 'wrong answer'}")
        raise NoMinerAvailable(
            "no miner could take the request"
            + (f" ({'; '.join(errors)})" if errors else " (none served or all over rate limit)")
        )

    # --- weights ------------------------------------------------------------------------------

    async def set_weights(self) -> tuple[LiveWeightsComputed, WeightsSet] | None:
        """Set weights from the current averages; None when no miner has a positive score."""
        uid_of = {n.hotkey: n.uid for n in self.neurons}
        scores = {uid_of[hk]: value for hk, value in self.state.ema.items() if hk in uid_of}
        weights = weights_from_scores(scores)
        if not weights:
            return None
        block = await asyncio.to_thread(self.chain.block)
        uids, values = list(weights), list(weights.values())
        computed = LiveWeightsComputed(
            validator=self.hotkey,
            netuid=self.config.netuid,
            block=block,
            uids=uids,
            weights=values,
            scores={str(uid): s for uid, s in sorted(scores.items())},
        )
        await self.sink.append_async([computed])
        outcome = await asyncio.to_thread(self.chain.set_weights, weights)
        result = WeightsSet(
            netuid=self.config.netuid,
            uids=outcome.uids,
            weights=outcome.weights,
            block=outcome.block,
            success=outcome.success,
            extrinsic_hash=outcome.extrinsic_hash,
            error=outcome.error,
            reason_eval_id=computed.key,
        )
        await self.sink.append_async([result])
        return computed, result

    # --- the loop -----------------------------------------------------------------------------

    async def run(
        self,
        stop: asyncio.Event,
        *,
        round_interval_s: float,
        weights_every_rounds: int,
        refresh_every_rounds: int = 10,
    ) -> None:
        """Challenge on a schedule until ``stop`` is set; refresh the metagraph and set weights
        every so many rounds."""
        n = 0
        while not stop.is_set():
            try:
                if n % refresh_every_rounds == 0 or not self.neurons:
                    await self.refresh()
                await self.challenge_round()
                if (n + 1) % weights_every_rounds == 0:
                    await self.set_weights()
            except ChainError as exc:
                # The node is unreachable or refused: the next round tries again.
                log.warning("live round %d: chain error (retrying next round): %s", n, exc)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=round_interval_s)

    # --- internals ----------------------------------------------------------------------------

    def _share(self) -> RateShare:
        stakes = {
            n.hotkey: n.stake for n in self.neurons if n.stake >= self.config.min_validator_stake
        }
        stakes.setdefault(self.hotkey, 0.0)
        return stake_share(
            stakes,
            self.hotkey,
            capacity_rps=self.config.miner_capacity_rps,
            burst_s=self.config.burst_s,
        )

    async def _send(
        self, neuron: Neuron, body: bytes, kind: TrafficKind
    ) -> tuple[LiveChallengeScored, QueryResult]:
        url = f"{self.resolver.base_url(neuron)}/task/{self.task.name}"
        result = await query_miner(
            self._client,
            url,
            self.keypair,
            neuron.hotkey,
            body,
            timeout_s=self.config.scoring.timeout_s,
            clock=self.clock,
        )
        correct, error_kind, error = self._judge(body, result)
        return self._record(neuron, kind, correct, result, error_kind, error), result

    def _judge(self, body: bytes, result: QueryResult) -> tuple[bool, str, str]:
        if not result.ok:
            return False, result.error_kind, result.error
        try:
            request = decode_request(self.task, body)
            response = decode_response(self.task, result.body)
        except TaskError as exc:
            return False, "bad_response", str(exc)
        if not self.task.check(request, response):
            return False, "", ""
        return True, "", ""

    def _record(
        self,
        neuron: Neuron,
        kind: TrafficKind,
        correct: bool,
        result: QueryResult,
        error_kind: str,
        error: str,
    ) -> LiveChallengeScored:
        rule = self.config.scoring
        answered = result.ok
        score = challenge_score(correct, result.latency_s if answered else None, rule)
        window = window_of(self.clock(), rule)
        counted = should_count(self.state, neuron.hotkey, window, rule)
        previous = self.state.ema.get(neuron.hotkey)
        average = ema(previous, score, rule.ema_alpha) if counted else (previous or 0.0)
        event = LiveChallengeScored(
            validator=self.hotkey,
            netuid=self.config.netuid,
            uid=neuron.uid,
            hotkey=neuron.hotkey,
            task=self.task.name,
            kind=kind,
            request_id=f"{self.hotkey}/{uuid.uuid4().hex}",
            window=window,
            correct=correct,
            latency_ms=result.latency_s * 1000.0 if answered else -1.0,
            score=score,
            ema=average,
            counted=counted,
            error_kind=error_kind,
            error=error,
        )
        self.state = evolve(self.state, event)
        return event
