"""Which submission copies an earlier one, on plain data.

Two submissions name the same image when they share one of three signals, strongest first:
- the manifest digest: the very same image;
- the config digest: the same config (files, command, environment, labels, history) pushed
  again elsewhere;
- the layers and runtime config (``harness.sandbox_image.runtime_digest``): the same files in
  the same order, run the same way (command, entrypoint, environment, working directory, user,
  ports), under changed labels or history.
Images that share their files but run differently are not copies: honest miners tuning the
command line of one stock engine image share every layer.

Among submissions sharing a signal the earliest commitment (block, then hotkey) is the
original, whatever order they were seen or inspected in. A later submission whose original is
another hotkey's is a copy; a hotkey submitting its own image again copies nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Copy", "Fingerprint", "FingerprintIndex", "Signal", "copy_of", "shared_signal"]

Signal = Literal["manifest digest", "config digest", "layers and runtime config"]


@dataclass(frozen=True)
class Fingerprint:
    """One commitment's image; config and runtime digests stay empty until the image is read."""

    hotkey: str
    block: int
    digest: str
    config_digest: str = ""
    runtime_digest: str = ""

    @property
    def key(self) -> str:
        """The commitment's key, as ``SubmissionCommitted.key``."""
        return f"{self.hotkey}@{self.block}"

    @property
    def order(self) -> tuple[int, str]:
        """Earlier sorts first: commit block, then hotkey."""
        return (self.block, self.hotkey)

    def signals(self) -> list[tuple[Signal, str]]:
        """The signals this fingerprint has a value for (an unread image has only the digest)."""
        out: list[tuple[Signal, str]] = [("manifest digest", self.digest)]
        if self.config_digest:
            out.append(("config digest", self.config_digest))
        if self.runtime_digest:
            out.append(("layers and runtime config", self.runtime_digest))
        return out


@dataclass(frozen=True)
class Copy:
    """``original`` is the earliest submission sharing ``signal`` with the copy."""

    original: Fingerprint
    signal: Signal

    @property
    def reason(self) -> str:
        return f"copy_of {self.original.key} (same {self.signal})"


def shared_signal(a: Fingerprint, b: Fingerprint) -> Signal | None:
    """The strongest signal ``a`` and ``b`` share, if any."""
    theirs = dict(b.signals())
    for signal, value in a.signals():
        if theirs.get(signal) == value:
            return signal
    return None


def copy_of(candidate: Fingerprint, others: Iterable[Fingerprint]) -> Copy | None:
    """The copy ``candidate`` is of the earliest of ``others`` sharing a signal, if another's."""
    matches = [
        Copy(o, signal)
        for o in others
        if o.order < candidate.order and (signal := shared_signal(o, candidate)) is not None
    ]
    if not matches:
        return None
    first = min(matches, key=lambda m: m.original.order)
    return first if first.original.hotkey != candidate.hotkey else None


@dataclass
class FingerprintIndex:
    """Every commitment's fingerprint, found by signal value, so a check reads only matches."""

    by_key: dict[str, Fingerprint] = field(default_factory=dict)
    by_signal: dict[tuple[Signal, str], set[str]] = field(default_factory=dict)

    def add(self, fp: Fingerprint) -> None:
        """Record ``fp``; a commitment seen again (now inspected) replaces its earlier record."""
        self.by_key[fp.key] = fp
        for signal in fp.signals():
            self.by_signal.setdefault(signal, set()).add(fp.key)

    def sharing(self, fp: Fingerprint) -> list[Fingerprint]:
        """Recorded fingerprints sharing at least one signal with ``fp`` (``fp`` among them)."""
        keys = set().union(*(self.by_signal.get(signal, set()) for signal in fp.signals()))
        return [self.by_key[k] for k in sorted(keys)]
