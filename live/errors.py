"""The root of live mode's errors, under :class:`rules.errors.ArenaError`::

LiveError
├── TaskError                 a challenge or answer is not what the task accepts (live.task)
├── BadSignedHeaders          a request's signature headers are missing or wrong (live.signing)
└── NoMinerAvailable          no miner can take an organic request now (live.validator)
"""

from __future__ import annotations

from rules.errors import ArenaError

__all__ = ["LiveError"]


class LiveError(ArenaError):
    """Root of the errors live mode raises."""
