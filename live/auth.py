"""The miner's gate: which signed requests it serves, decided before any work is done.

Checks run cheapest first, and the nonce is claimed only after the signature verifies, so an
attacker cannot burn a validator's nonces or fill the store with forged requests. Refusals carry
an HTTP status and a message that says what to fix.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping

import msgspec

from live.nonces import NonceStore
from live.ratelimit import PairLimiter, stake_share
from live.signing import BadSignedHeaders, parse_headers, verify_signature

__all__ = ["AuthPolicy", "Authenticator", "Refusal", "Refused"]


class Refusal(enum.StrEnum):
    BAD_HEADERS = "bad_headers"
    STALE = "stale"
    FUTURE = "future"
    WRONG_MINER = "wrong_miner"
    UNKNOWN_CALLER = "unknown_caller"
    LOW_STAKE = "low_stake"
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    RATE_LIMITED = "rate_limited"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    Refusal.BAD_HEADERS: 400,
    Refusal.STALE: 401,
    Refusal.FUTURE: 401,
    Refusal.WRONG_MINER: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.REPLAY: 401,
    Refusal.UNKNOWN_CALLER: 403,
    Refusal.LOW_STAKE: 403,
    Refusal.RATE_LIMITED: 429,
}


class Refused(msgspec.Struct, frozen=True):
    reason: Refusal
    detail: str


class AuthPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Requests older than this are stale; it is also how long a nonce is remembered.
    max_age_s: float = 30.0
    # Allowance for validator clocks running ahead of the miner's.
    max_future_s: float = 5.0
    # Stake (whole alpha units on the subnet) a caller's hotkey needs to be served at all.
    min_stake: float = 0.0
    # Requests per second the miner serves in total, shared among callers by stake.
    capacity_rps: float = 50.0
    # Seconds of a caller's rate it may spend at once.
    burst_s: float = 2.0


class Authenticator:
    """Decides for one miner hotkey; ``callers`` returns the current stake of registered hotkeys."""

    def __init__(
        self,
        miner_hotkey: str,
        policy: AuthPolicy,
        callers: Callable[[], Mapping[str, float]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.miner_hotkey = miner_hotkey
        self.policy = policy
        self._callers = callers
        self._clock = clock
        self._nonces = NonceStore()
        self._limiter = PairLimiter()

    def check(self, headers: Mapping[str, str], body: bytes) -> Refused | None:
        """None if the request may be served, else why not."""
        try:
            signed = parse_headers(headers)
        except BadSignedHeaders as exc:
            return Refused(Refusal.BAD_HEADERS, str(exc))
        now = self._clock()
        age_s = now - signed.timestamp_ms / 1000.0
        if age_s > self.policy.max_age_s:
            return Refused(
                Refusal.STALE,
                f"request signed {age_s:.1f}s ago; sign each request just before sending it "
                f"(limit {self.policy.max_age_s:.0f}s) and keep the validator's clock in sync",
            )
        if -age_s > self.policy.max_future_s:
            return Refused(
                Refusal.FUTURE,
                f"request timestamp is {-age_s:.1f}s in the future; sync the validator's clock",
            )
        if signed.miner != self.miner_hotkey:
            return Refused(
                Refusal.WRONG_MINER,
                f"request was signed for miner {signed.miner}, this is {self.miner_hotkey}",
            )
        callers = self._callers()
        stake = callers.get(signed.validator)
        if stake is None:
            return Refused(
                Refusal.UNKNOWN_CALLER,
                f"hotkey {signed.validator} is not registered on this subnet",
            )
        if stake < self.policy.min_stake:
            return Refused(
                Refusal.LOW_STAKE,
                f"hotkey {signed.validator} has {stake:g} stake, "
                f"below this miner's floor of {self.policy.min_stake:g}",
            )
        if not verify_signature(signed, body):
            return Refused(
                Refusal.BAD_SIGNATURE,
                "signature does not match the validator hotkey, nonce, timestamp and body",
            )
        if not self._nonces.claim(
            signed.validator,
            signed.nonce,
            expires_at=signed.timestamp_ms / 1000.0 + self.policy.max_age_s,
            now=now,
        ):
            return Refused(Refusal.REPLAY, f"nonce {signed.nonce} was already used")
        eligible = {hk: s for hk, s in callers.items() if s >= self.policy.min_stake}
        share = stake_share(
            eligible,
            signed.validator,
            capacity_rps=self.policy.capacity_rps,
            burst_s=self.policy.burst_s,
        )
        if not self._limiter.acquire((signed.validator, self.miner_hotkey), share, now):
            return Refused(
                Refusal.RATE_LIMITED,
                f"over this validator's stake share of {share.rate:.2f} requests/s; slow down",
            )
        return None
