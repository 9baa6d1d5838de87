"""Turn one subnet's chain activity into events: registrations, deregistrations, hotkey swaps,
submissions.

``ChainScanner`` reads what a block changed (its events, then only the storage they point
at), so a block costs two requests plus a few per change, whatever the number of miners.
Every event's key comes from chain facts (hotkey, uid, block), so rescanning a block, or
snapshotting state a scan already saw, yields the same keys and the log drops the repeats.
``ChainWatch`` is the loop; ``ChainWatcher`` is the thin Ray actor around it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from substrateinterface import Keypair

from chain.client import ChainClient, ChainError
from chain.commitment import StoredCommitment, decode_fields, read_commitments
from chain.follow import follow_finalized
from events.client import BaseLogClient
from events.log import type_name
from events.types import (
    Event,
    HotkeySwapped,
    MinerDeregistered,
    MinerRegistered,
    SubmissionCommitted,
    SubmissionRejected,
)
from rules.image_ref import ImageRefError

__all__ = [
    "CHAIN_EVENT_TYPES",
    "MAX_CATCH_UP_BLOCKS",
    "ChainScanner",
    "ChainWatch",
    "ChainWatcher",
    "WatchState",
    "start_chain_watcher",
    "submission_event",
]

if TYPE_CHECKING:
    from actors.validator_config import ValidatorConfig

log = logging.getLogger(__name__)

CHAIN_EVENT_TYPES = (
    MinerRegistered,
    MinerDeregistered,
    HotkeySwapped,
    SubmissionCommitted,
    SubmissionRejected,
)
# Past this many unscanned blocks a restart reads the current state instead of every block.
MAX_CATCH_UP_BLOCKS = 600
# What ``Keys`` holds for a uid with no neuron (its default, the all-zero account).
_ZERO_ACCOUNT = Keypair(public_key=bytes(32), ss58_format=42).ss58_address


def submission_event(netuid: int, uid: int, stored: StoredCommitment) -> Event:
    """``SubmissionCommitted`` for a valid payload, else ``SubmissionRejected`` saying why."""
    try:
        ref = stored.parse()
    except ImageRefError as exc:
        return SubmissionRejected(
            netuid=netuid,
            hotkey=stored.hotkey,
            block=stored.block,
            raw=stored.raw.decode(errors="replace"),
            reason=exc.reason,
        )
    return SubmissionCommitted(
        netuid=netuid,
        uid=uid,
        hotkey=stored.hotkey,
        block=stored.block,
        image=ref.image,
        digest=ref.digest,
    )


class ChainScanner:
    """Reads chain changes of one netuid as events; holds no state between calls."""

    def __init__(self, client: ChainClient, netuid: int) -> None:
        self.client = client
        self.netuid = netuid

    def scan(self, first: int, last: int) -> list[Event]:
        """Events of blocks ``first..=last`` in chain order."""
        out: list[Event] = []
        for number in range(first, last + 1):
            out += self.scan_block(number)
        return out

    def scan_block(self, number: int) -> list[Event]:
        block_hash = self.client.block_hash(number)
        if block_hash is None:  # a height the chain skipped (or has not reached)
            return []
        registered: list[tuple[int, str]] = []
        swapped: list[tuple[str, str]] = []
        committed: list[str] = []
        for event in self.client.events(block_hash):
            kind = (event["module_id"], event["event_id"])
            attrs = event["attributes"]
            if kind == ("SubtensorModule", "NeuronRegistered") and attrs[0] == self.netuid:
                registered.append((int(attrs[1]), attrs[2]))
            elif kind == ("SubtensorModule", "NetworkAdded") and attrs[0] == self.netuid:
                # Creating a subnet registers its owner hotkey without a NeuronRegistered event.
                keys = self.client.query_map("SubtensorModule", "Keys", [self.netuid], block_hash)
                registered += [(int(uid), hotkey) for uid, hotkey in keys]
            elif kind == ("SubtensorModule", "HotkeySwapped"):
                # A swap moves the hotkey on every subnet at once: the event names no netuid.
                if isinstance(attrs, dict):
                    swapped.append((attrs["old_hotkey"], attrs["new_hotkey"]))
                else:
                    swapped.append((attrs[1], attrs[2]))
            elif kind == ("Commitments", "Commitment") and attrs["netuid"] == self.netuid:
                committed.append(attrs["who"])
        out: list[Event] = []
        if registered:
            out += self._registrations(number, block_hash, registered)
        if swapped:
            out += self._swaps(number, block_hash, swapped)
        if committed:
            out += self._commitments(number, block_hash, committed)
        return out

    def _registrations(
        self, number: int, block_hash: str, registered: list[tuple[int, str]]
    ) -> list[Event]:
        parent = self.client.rpc("chain_getHeader", [block_hash])["parentHash"]
        uids = [uid for uid, _ in registered]
        before = self.client.query_many(
            "SubtensorModule", "Keys", [[self.netuid, uid] for uid in uids], parent
        )
        owners = self.client.query_many(
            "SubtensorModule", "Owner", [[hotkey] for _, hotkey in registered], block_hash
        )
        # A registration into a taken uid replaces its neuron: that is the deregistration.
        previous = {uid: hotkey for uid, hotkey in zip(uids, before, strict=True) if hotkey}
        out: list[Event] = []
        for (uid, hotkey), coldkey in zip(registered, owners, strict=True):
            old = previous.get(uid)
            if old and old != hotkey and old != _ZERO_ACCOUNT:
                out.append(MinerDeregistered(netuid=self.netuid, uid=uid, hotkey=old, block=number))
            previous[uid] = hotkey
            out.append(
                MinerRegistered(
                    netuid=self.netuid, uid=uid, hotkey=hotkey, coldkey=coldkey, block=number
                )
            )
        return out

    def _swaps(self, number: int, block_hash: str, swapped: list[tuple[str, str]]) -> list[Event]:
        # The new hotkey was registered nowhere before the swap: a uid here is the old one's.
        uids = self.client.query_many(
            "SubtensorModule", "Uids", [[self.netuid, new] for _, new in swapped], block_hash
        )
        return [
            HotkeySwapped(netuid=self.netuid, uid=uid, old_hotkey=old, new_hotkey=new, block=number)
            for (old, new), uid in zip(swapped, uids, strict=True)
            if uid is not None
        ]

    def _commitments(self, number: int, block_hash: str, hotkeys: list[str]) -> list[Event]:
        values = self.client.query_many(
            "Commitments", "CommitmentOf", [[self.netuid, h] for h in hotkeys], block_hash
        )
        uids = self.client.query_many(
            "SubtensorModule", "Uids", [[self.netuid, h] for h in hotkeys], block_hash
        )
        out: list[Event] = []
        for hotkey, value, uid in zip(hotkeys, values, uids, strict=True):
            if value is None or uid is None:
                continue
            stored = StoredCommitment(hotkey=hotkey, block=number, raw=decode_fields(value["info"]))
            out.append(submission_event(self.netuid, uid, stored))
        return out

    def snapshot(
        self,
        number: int,
        known: dict[int, str] | None = None,
        known_since: dict[int, int] | None = None,
    ) -> list[Event]:
        """The state at block ``number`` as the events a full scan would have produced.

        ``known`` (uid -> hotkey, from the log) lets it report uids whose neuron was replaced
        since; ``known_since`` (uid -> registration block) tells a replaced neuron from one that
        swapped its hotkey, which keeps its registration block (its swap is reported at
        ``number``). Older commitments a hotkey replaced are gone from the chain and are not
        reported.
        """
        block_hash = self.client.block_hash(number)
        if block_hash is None:
            raise ChainError(f"block {number} has no hash; cannot snapshot netuid {self.netuid}")
        keys = sorted(self.client.query_map("SubtensorModule", "Keys", [self.netuid], block_hash))
        hotkeys = [hotkey for _, hotkey in keys]
        owners = self.client.query_many(
            "SubtensorModule", "Owner", [[h] for h in hotkeys], block_hash
        )
        since = self.client.query_many(
            "SubtensorModule",
            "BlockAtRegistration",
            [[self.netuid, uid] for uid, _ in keys],
            block_hash,
        )
        out: list[Event] = []
        for (uid, hotkey), coldkey, block in zip(keys, owners, since, strict=True):
            old = (known or {}).get(uid)
            if old and old != hotkey and (known_since or {}).get(uid) == block:
                out.append(
                    HotkeySwapped(
                        netuid=self.netuid, uid=uid, old_hotkey=old, new_hotkey=hotkey, block=number
                    )
                )
            elif old and old != hotkey:
                out.append(MinerDeregistered(netuid=self.netuid, uid=uid, hotkey=old, block=block))
            out.append(
                MinerRegistered(
                    netuid=self.netuid, uid=uid, hotkey=hotkey, coldkey=coldkey, block=block
                )
            )
        uid_of = {hotkey: uid for uid, hotkey in keys}
        for stored in read_commitments(self.client, self.netuid, block_hash):
            if stored.hotkey in uid_of:
                out.append(submission_event(self.netuid, uid_of[stored.hotkey], stored))
        return out


@dataclass(frozen=True)
class WatchState:
    """What the log says the watcher has seen: the last block with an event, uid -> hotkey, and
    uid -> the block its neuron registered at."""

    last_block: int = 0
    hotkeys: dict[int, str] = field(default_factory=dict)
    since: dict[int, int] = field(default_factory=dict)

    def apply(self, event: Event) -> WatchState:
        block = max(self.last_block, getattr(event, "block", 0))
        if isinstance(event, MinerRegistered):
            return WatchState(
                block,
                {**self.hotkeys, event.uid: event.hotkey},
                {**self.since, event.uid: event.block},
            )
        if isinstance(event, HotkeySwapped) and self.hotkeys.get(event.uid) == event.old_hotkey:
            return replace(
                self, last_block=block, hotkeys={**self.hotkeys, event.uid: event.new_hotkey}
            )
        if isinstance(event, MinerDeregistered) and self.hotkeys.get(event.uid) == event.hotkey:
            hotkeys = dict(self.hotkeys)
            del hotkeys[event.uid]
            return replace(self, last_block=block, hotkeys=hotkeys)
        return replace(self, last_block=block)

    def fold(self, events: Iterable[Event]) -> WatchState:
        state = self
        for event in events:
            state = state.apply(event)
        return state


class ChainWatch:
    """The watcher's loop without Ray: catch up to each finalized head, hand events to ``emit``."""

    def __init__(self, client: ChainClient, netuid: int, state: WatchState | None = None) -> None:
        self.scanner = ChainScanner(client, netuid)
        self.netuid = netuid
        self.state = state or WatchState()
        # The last block known to be fully scanned. The log only knows blocks that had events,
        # and the newest of those may have been cut short by a crash: scan it again.
        self.scanned = max(0, self.state.last_block - 1)

    @classmethod
    def from_log(cls, client: ChainClient, netuid: int, log_client: BaseLogClient) -> ChainWatch:
        names = [type_name(t) for t in CHAIN_EVENT_TYPES]
        events = (r.event for r in log_client.replay(0, names))
        return cls(client, netuid, WatchState().fold(e for e in events if e.netuid == netuid))

    def catch_up(self, head: int) -> list[Event]:
        """Events after what was scanned, up to ``head``; :meth:`commit` once they are stored."""
        if self.scanned and head <= self.scanned:
            return []
        if not self.scanned or head - self.scanned > MAX_CATCH_UP_BLOCKS:
            return self.scanner.snapshot(head, self.state.hotkeys, self.state.since)
        return self.scanner.scan(self.scanned + 1, head)

    def commit(self, head: int, events: list[Event]) -> None:
        self.state = self.state.fold(events)
        self.scanned = max(self.scanned, head)

    def run(self, url: str, stop: threading.Event, emit: Callable[[list[Event]], object]) -> None:
        """Follow finalized heads until ``stop``; chain outages are logged and retried."""
        for head in follow_finalized(url, stop):
            try:
                events = self.catch_up(head)
                if events:
                    emit(events)
            except ChainError as exc:
                log.warning("netuid %d: scanning up to block %d failed: %s", self.netuid, head, exc)
                continue
            self.commit(head, events)


class ChainWatcher:
    """Ray actor body: ``arena.chain_watcher``, detached; folds the log, then follows the chain."""

    def __init__(self, config: ValidatorConfig) -> None:
        from actors.log_client import LogClient

        self.config = config
        self.log = LogClient()
        self.client = ChainClient(config.chain_url)
        self.watch = ChainWatch.from_log(self.client, config.netuid, self.log)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chain-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.watch.run(self.config.chain_url, self.stop, self.log.append)
            except Exception:  # keep watching; the log makes a repeated scan harmless
                log.exception("chain watch loop failed; restarting it in 5 s")
                self.stop.wait(5)

    def status(self) -> dict:
        return {
            "netuid": self.watch.netuid,
            "scanned": self.watch.scanned,
            "last_event_block": self.watch.state.last_block,
            "neurons": len(self.watch.state.hotkeys),
            "rpc_calls": self.client.rpc_calls,
        }


def start_chain_watcher(config: ValidatorConfig) -> Any:
    """Start (or find) the detached ``arena.chain_watcher`` actor for ``config``."""
    import ray

    from actors.placement import service_options

    options = {**service_options("chain_watcher"), "max_concurrency": 2}
    return ray.remote(ChainWatcher).options(**options, get_if_exists=True).remote(config)
