"""The event log's errors, under :class:`rules.errors.ArenaError`::

EventLogError                 the log refused or could not do what was asked
├── EventDecodeError          stored or received bytes are not an event this code knows
├── LogLockedError            another process holds the log file (events.log)
├── ReadOnlyQueryError        ``sql`` given anything but one read-only statement (events.log)
└── LogUnavailableError       the log actor stayed unreachable (actors.log_client)
"""

from __future__ import annotations

from rules.errors import ArenaError

__all__ = ["EventDecodeError", "EventLogError"]


class EventLogError(ArenaError):
    """Root of the event log's own errors."""


class EventDecodeError(EventLogError, ValueError):
    """Raised when stored or received bytes are not an event this code understands."""
