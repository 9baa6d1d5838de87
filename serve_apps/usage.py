"""Organic usage, summed per (API key, minute, upstream) and drained as ``OrganicWindow`` events.

Only finished minutes are drained while the gateway runs: an ``OrganicWindow``'s idempotency key
is ``key_id@minute/upstream``, so a second, later append for the same minute would be dropped.
"""

from __future__ import annotations

from events.types import OrganicWindow

__all__ = ["UsageWindows", "unix_minute"]


def unix_minute(ts: float) -> int:
    return int(ts // 60)


class UsageWindows:
    def __init__(self) -> None:
        # (key_id, minute, upstream) -> [requests, errors, prompt_tokens, completion_tokens]
        self._open: dict[tuple[str, int, str], list[int]] = {}

    def record(
        self,
        *,
        key_id: str,
        minute: int,
        upstream: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        error: bool = False,
    ) -> None:
        counts = self._open.setdefault((key_id, minute, upstream), [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += int(error)
        counts[2] += prompt_tokens
        counts[3] += completion_tokens

    def drain(self, before_minute: int | None = None) -> list[OrganicWindow]:
        """Remove and return the windows of minutes before ``before_minute`` (all when None)."""
        done = [k for k in self._open if before_minute is None or k[1] < before_minute]
        events = []
        for key_id, minute, upstream in sorted(done, key=lambda k: (k[1], k[0], k[2])):
            requests, errors, prompt, completion = self._open.pop((key_id, minute, upstream))
            events.append(
                OrganicWindow(
                    key_id=key_id,
                    minute=minute,
                    requests=requests,
                    errors=errors,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    upstream=upstream,
                )
            )
        return events

    def __len__(self) -> int:
        return len(self._open)
