"""Usage windows: summed per key, minute and upstream; only finished minutes drain early."""

from __future__ import annotations

from events.types import OrganicWindow
from serve_apps.usage import UsageWindows, unix_minute


def test_windows_sum_per_key_minute_upstream_and_drain_finished_minutes_only() -> None:
    usage = UsageWindows()
    usage.record(key_id="k1", minute=10, upstream="u", prompt_tokens=5, completion_tokens=7)
    usage.record(key_id="k1", minute=10, upstream="u", prompt_tokens=1, error=True)
    usage.record(key_id="k2", minute=10, upstream="u", completion_tokens=3)
    usage.record(key_id="k1", minute=11, upstream="u", completion_tokens=2)

    assert usage.drain(before_minute=11) == [
        OrganicWindow(
            key_id="k1",
            minute=10,
            requests=2,
            errors=1,
            prompt_tokens=6,
            completion_tokens=7,
            upstream="u",
        ),
        OrganicWindow(
            key_id="k2",
            minute=10,
            requests=1,
            errors=0,
            prompt_tokens=0,
            completion_tokens=3,
            upstream="u",
        ),
    ]
    assert len(usage) == 1
    (last,) = usage.drain()
    assert (last.minute, last.completion_tokens) == (11, 2)
    assert usage.drain() == []


def test_unix_minute() -> None:
    assert unix_minute(0.0) == 0
    assert unix_minute(119.9) == 1
    assert unix_minute(120.0) == 2
