"""Why a miner's container was refused or stopped, as typed errors with a short ``reason`` code.

    SandboxError                      the image or container failed; the submission is at fault
    ├── ImageRejected                 refused before anything ran (digest, size, pull)
    ├── ContainerDied                 exited before or while serving (crash, oom, fork bomb...)
    └── StartupTimeout                never answered ``/health`` within the startup timeout

``reason`` is the machine-readable code (``rules.reasons.SandboxReason``) that ends up in
``EvalFinished.reason``; the message
says what happened in words. Faults of the validator itself (engine down, registry down) are
plain exceptions, never a ``SandboxError``, so they are not blamed on the miner.
"""

from __future__ import annotations

from harness.errors import HarnessError
from rules.reasons import SandboxReason

__all__ = ["ContainerDied", "ImageRejected", "SandboxError", "StartupTimeout"]


class SandboxError(HarnessError):
    """Base: the submission's image or container failed; ``reason`` is a short code."""

    def __init__(self, reason: SandboxReason, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.logs = logs


class ImageRejected(SandboxError):
    """The image was refused before any container ran (not pinned, wrong digest, too large...)."""


class ContainerDied(SandboxError):
    """The container exited; ``exit_code`` and ``oom_killed`` come from the engine."""

    def __init__(
        self,
        reason: SandboxReason,
        message: str,
        logs: str = "",
        exit_code: int = 0,
        oom_killed: bool = False,
    ) -> None:
        super().__init__(reason, message, logs)
        self.exit_code = exit_code
        self.oom_killed = oom_killed


class StartupTimeout(SandboxError):
    """The container kept running but never answered ``/health`` in time."""
