"""The root of every error Arena raises on purpose.

Each package hangs its own errors under :class:`ArenaError`, so a caller can catch "anything
Arena refused" in one clause and still tell the packages apart::

    ArenaError
    ├── ImageRefError          rules.image_ref: a reference outside the grammar
    ├── HarnessError           harness: an evaluation could not be done as asked
    ├── ChainError             chain: the chain refused or could not be reached
    ├── EventLogError          events: the log refused an append or a decode
    └── ...                    one per package, each defined in that package

Messages say what was attempted, what was found, and what to do.
"""

from __future__ import annotations

__all__ = ["ArenaError"]


class ArenaError(Exception):
    """Raised by Arena code for a refusal or failure it names; never for a bug."""
