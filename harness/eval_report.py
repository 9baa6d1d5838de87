"""The report of one evaluation: what ``harness.eval`` returns and the HTML report renders."""

from __future__ import annotations

import msgspec

from rules.reasons import Verdict

__all__ = ["EvalReport"]


class EvalReport(msgspec.Struct, kw_only=True):
    image: str
    profile: str
    seed: str
    verdict: Verdict
    reason: str  # "ok" on a pass
    detail: str = ""
    score: float = 0.0
    noise: float = 0.0
    metrics: dict[str, float] = {}  # the challenger's, flattened; see flat_metrics
    baseline_before: dict[str, float] = {}
    baseline_after: dict[str, float] = {}
    logs: dict[str, str] = {}  # role -> bounded tail of the container's output
    seconds: dict[str, float] = {}  # phase -> wall seconds
    eval_id: str = ""
    evidence: dict[str, str] = {}  # evidence file -> sha256, when it was kept (harness.evidence)
