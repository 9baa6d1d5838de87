"""The root of the harness's errors, under :class:`rules.errors.ArenaError`::

    HarnessError
    ├── SandboxError              the image or container failed (harness.sandbox_errors)
    ├── StreamError               a server's SSE stream broke the protocol (harness.sse)
    ├── InconclusiveError         the gate cannot judge: measure again (harness.gate)
    └── Disqualified              the challenger failed, the miner to blame (harness.eval)

Validator-side faults (engine or registry down) are not harness errors about a miner.
"""

from __future__ import annotations

from rules.errors import ArenaError

__all__ = ["HarnessError"]


class HarnessError(ArenaError):
    """Root of the errors the harness raises about what it evaluates."""
