"""Evaluate one submitted image end to end, in sandboxes, the way the validator does.

    python -m harness.eval --image REG/REPO@sha256:... [--profile local] [--seed HEX] [--out F]

Order (one container at a time, so both get the whole machine):

1. both images checked against their registry manifests and pulled by digest;
2. baseline up -> measure B (the reference outputs) -> down;
3. challenger up -> a one-request probe (so a broken server fails in seconds) -> measure C -> down;
4. baseline up -> measure B' and re-score C's tokens by teacher forcing (the gate) -> down;
5. score from B, C, B' and the gate; ``noise`` is what B and B' earn against each other.

A fault of the submission ends the eval with ``verdict="fail"`` and its own ``reason`` (crash,
oom, write_models, fork_bomb, unhealthy, hang, network, request_failed, a gate reason, or an
image rejection); a fault of the validator's side (baseline, engine) gives ``verdict="error"``,
which must never be held against the miner. As a Ray job it reserves the eval slot:

    ray job submit --entrypoint-resources '{"arena_eval_slot": 1}' -- python -m harness.eval ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import docker
import httpx
import msgspec

from harness import gate, score
from harness.loadgen import RequestResult, make_client, send_request
from harness.measure import Measurement, measure
from harness.profile import Profile, get_profile
from harness.prompts import sample_prompts
from harness.runner import Sandbox, pull_pinned, sigterm_raises
from harness.sandbox_errors import SandboxError

__all__ = [
    "Disqualified",
    "EvalReport",
    "classify_failure",
    "evaluate",
    "flat_metrics",
    "main",
    "run_challenger",
]

Verdict = Literal["pass", "fail", "error"]
# Words in a server's own logs that tell a failed request came from a blocked network call.
_NETWORK_SIGNS = (
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "network error",
    "ConnectTimeout",
    "ConnectError",
)


class Disqualified(Exception):
    """The challenger failed in a way the miner is to blame for; ``reason`` is the code."""

    def __init__(self, reason: str, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.logs = logs


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


def flat_metrics(measurement: Measurement) -> dict[str, float]:
    """``c<concurrency>_<metric>`` -> value, e.g. ``c1_median_ttft_ms``, for event payloads."""
    return {
        f"c{level.concurrency}_{name}": value
        for level in measurement.levels
        for name, value in level.metrics.as_dict().items()
    }


def classify_failure(result: RequestResult, logs: str) -> str:
    """Reason code for a failed challenger request, from the loadgen's error and the logs."""
    # Network first: a blocked connection often surfaces as a slow or stalled answer.
    if any(sign in logs for sign in _NETWORK_SIGNS):
        return "network"
    if result.error_code in ("stall", "timeout"):
        return "hang"
    return "request_failed"


def _model_fingerprint(model_dir: str) -> list[tuple[str, int, int]]:
    # Names, sizes and mtimes: a write through a broken read-only mount would change one.
    root = Path(model_dir)
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    )


def _failed(measurement: Measurement) -> list[RequestResult]:
    return [r for level in measurement.levels for r in level.results if not r.success]


def _measure(url: str, profile: Profile, seed: str) -> Measurement:
    return asyncio.run(measure(url, profile, seed))


def _probe(box: Sandbox, profile: Profile, seed: str) -> None:
    """One request before the full load: a server that hangs or errors fails in seconds.

    Its stall limit is the whole request timeout, not the measurement's: an honest vLLM CPU
    compiles kernels on its first request, which can be silent for a while on a busy machine.
    """
    prompt = sample_prompts(f"probe:{seed}", 1, profile.input_tokens, profile.output_tokens)[0]

    async def one() -> RequestResult:
        async with make_client(1, profile.request_timeout_s) as client:
            return await send_request(
                client,
                box.url,
                prompt,
                profile.served_model_name,
                request_timeout_s=profile.request_timeout_s,
                stall_timeout_s=profile.request_timeout_s,
            )

    result = asyncio.run(one())
    if not result.success:
        box.check_alive()
        box.logs = box.read_logs()
        raise Disqualified(
            classify_failure(result, box.logs), f"probe request failed: {result.error}", box.logs
        )


def run_challenger(
    client: docker.DockerClient, image_id: str, profile: Profile, seed: str, *, name: str
) -> tuple[Measurement, str]:
    """Start, probe and measure the challenger; returns (measurement, logs).

    Raises :class:`Disqualified` (or a :class:`SandboxError`) when the challenger is at fault.
    """
    before = _model_fingerprint(profile.model_dir)
    box = Sandbox(client, image_id, profile, name=name)
    try:
        with box:
            box.wait_healthy()
            _probe(box, profile, seed)
            measurement = _measure(box.url, profile, seed)
            box.check_alive()
            failed = _failed(measurement)
            if failed:
                box.logs = box.read_logs()
                raise Disqualified(
                    classify_failure(failed[0], box.logs),
                    f"{len(failed)} requests failed, first: {failed[0].error}",
                    box.logs,
                )
    finally:
        if _model_fingerprint(profile.model_dir) != before:
            raise Disqualified("write_models", "the model directory changed during the eval")
    return measurement, box.logs


def _run_baseline(
    client: docker.DockerClient,
    image_id: str,
    profile: Profile,
    seed: str,
    *,
    name: str,
    judge: Callable[[str], gate.GateVerdict] | None = None,
) -> tuple[Measurement, gate.GateVerdict | None, str]:
    with Sandbox(client, image_id, profile, name=name, command=profile.baseline_command) as box:
        box.wait_healthy()
        measurement = _measure(box.url, profile, seed)
        verdict = judge(box.url) if judge else None
    return measurement, verdict, box.logs


def evaluate(
    client: docker.DockerClient,
    image: str,
    profile: Profile,
    seed: str,
    *,
    eval_id: str = "",
    on_baseline: Callable[[str, Measurement], None] | None = None,
) -> EvalReport:
    """Evaluate ``image`` (pinned by digest) against ``profile``'s baseline with round ``seed``.

    ``on_baseline(phase, measurement)`` is called after each baseline pass ("before", "after").
    Never raises for the challenger's faults: they come back as ``verdict="fail"``.
    """
    eval_id = eval_id or secrets.token_hex(4)
    report = EvalReport(image=image, profile=profile.name, seed=seed, verdict="error", reason="")
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        report.seconds[phase] = now - clock
        clock = now

    try:
        baseline_id = pull_pinned(client, profile.baseline_image, profile)
    except SandboxError as exc:
        report.reason, report.detail = f"baseline_{exc.reason}", str(exc)
        return report
    try:
        challenger_id = pull_pinned(client, image, profile)
    except SandboxError as exc:
        report.verdict, report.reason, report.detail = "fail", exc.reason, str(exc)
        return report
    lap("pull")

    try:
        before, _, report.logs["baseline_before"] = _run_baseline(
            client, baseline_id, profile, seed, name=f"{eval_id}-baseline"
        )
    except (SandboxError, httpx.HTTPError) as exc:
        report.reason, report.detail = "baseline_failed", f"baseline before: {exc}"
        report.logs["baseline_before"] = getattr(exc, "logs", "")
        return report
    if failed := _failed(before):
        report.reason = "baseline_failed"
        report.detail = f"baseline before: {len(failed)} requests failed, first: {failed[0].error}"
        return report
    report.baseline_before = flat_metrics(before)
    if on_baseline:
        on_baseline("before", before)
    lap("baseline_before")

    try:
        challenger, report.logs["challenger"] = run_challenger(
            client, challenger_id, profile, seed, name=f"{eval_id}-challenger"
        )
    except (SandboxError, Disqualified) as exc:
        report.verdict, report.reason, report.detail = "fail", exc.reason, str(exc)
        report.logs["challenger"] = exc.logs
        lap("challenger")
        return report
    report.metrics = flat_metrics(challenger)
    lap("challenger")

    def judge(url: str) -> gate.GateVerdict:
        return asyncio.run(gate.check(before, challenger, rescore_url=url, profile=profile))

    try:
        after, verdict, report.logs["baseline_after"] = _run_baseline(
            client, baseline_id, profile, seed, name=f"{eval_id}-baseline-after", judge=judge
        )
    except (SandboxError, httpx.HTTPError) as exc:
        report.reason, report.detail = "baseline_failed", f"baseline after: {exc}"
        report.logs["baseline_after"] = getattr(exc, "logs", "")
        return report
    except gate.InconclusiveError as exc:
        report.reason, report.detail = "inconclusive", f"gate: {exc}"
        return report
    assert verdict is not None
    report.baseline_after = flat_metrics(after)
    if on_baseline:
        on_baseline("after", after)
    lap("baseline_after_and_gate")

    result = score.score(before, challenger, after, verdict)
    report.verdict = "pass" if verdict.passed else "fail"
    report.reason, report.detail = verdict.reason, verdict.details
    report.score, report.noise = result.score, result.noise
    report.metrics |= {
        "raw_score": result.raw_score,
        "ttft_improvement": result.ttft_improvement,
        "throughput_improvement": result.throughput_improvement,
        "exact_match": verdict.exact_match,
        "max_argmax_gap": verdict.max_argmax_gap,
    }
    return report


def _print_report(report: EvalReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    colour = {"pass": "green", "fail": "red", "error": "yellow"}[report.verdict]
    console.print(
        f"[bold {colour}]{report.verdict.upper()}[/] {report.image}\n"
        f"reason: {report.reason}  score: {report.score:.4f}  noise: {report.noise:.4f}"
        + (f"\n{report.detail}" if report.detail else "")
    )
    if not report.metrics:
        return
    table = Table(title=f"profile {report.profile}, seed {report.seed[:16]}")
    for column in ("metric", "baseline before", "challenger", "baseline after"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    shown = ("median_ttft_ms", "median_tpot_ms", "median_itl_ms", "output_throughput_tps")
    for name in sorted(report.metrics):
        if not name.endswith(shown):
            continue
        row = [report.baseline_before.get(name), report.metrics[name]]
        row.append(report.baseline_after.get(name))
        table.add_row(name, *("-" if v is None else f"{v:.2f}" for v in row))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate one image against the baseline.")
    parser.add_argument("--image", required=True, help="REGISTRY/REPO@sha256:<digest>")
    parser.add_argument("--profile", default="local")
    parser.add_argument("--seed", default="", help="round seed (a block hash); random if unset")
    parser.add_argument("--out", type=Path, default=None, help="JSON report path")
    options = parser.parse_args(argv)
    profile = get_profile(options.profile)
    seed = options.seed or "0x" + secrets.token_hex(32)
    client = docker.from_env()
    with sigterm_raises():
        report = evaluate(client, options.image, profile, seed)
    out = options.out or Path(".arena") / "evals" / f"{int(time.time())}-{os.getpid()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    _print_report(report)
    print(f"report: {out}")
    return {"pass": 0, "fail": 1, "error": 2}[report.verdict]


if __name__ == "__main__":
    sys.exit(main())
