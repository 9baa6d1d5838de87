"""Evaluate submitted images end to end, in sandboxes, the way the validator does.

    python -m harness.eval --image REG/REPO@sha256:... [--image ...] [--profile local] [--seed HEX]
    python -m harness.eval --image ... --profile sn-h200 --dry-run     # the container specs only

One *round* judges any number of challengers against one baseline container kept up for the
whole round, each challenger bracketed by two baseline measurements, with the profile's
``challengers_per_baseline`` measured in a row between them (two in this picture):

    B0, C1, C2, B1, C3, C4, B2, ...  (C1 and C2 are scored against B0 and B1; noise is B0 vs B1)

1. the baseline and every challenger are checked against their registry manifests and pulled by
   digest, all before the first measurement;
2. the baseline starts (and is started again if its health fails between measurements, or
   before each baseline measurement where the node has no GPUs to keep it up beside a
   challenger);
3. the challengers of a bracket in turn: up -> measured -> down; then the baseline is measured
   again, and each challenger's tokens are re-scored on it by teacher forcing (the gate); score
   from the two baseline measurements around it. Its noise is the largest of the profile's
   floor and what any baseline measurement of the round so far earned against the next.

Every measurement has its own prompt plan (``harness.plan``): a challenger shares its plan with
the baseline measurement before it, so the gate pairs answers to the same prompts, and no
server is ever sent the same request twice. Both arms get the same warm-up, whose first request
is the probe: a broken server fails in seconds.

A fault of a submission ends its eval with ``verdict="fail"`` and its own ``reason`` (crash,
oom, write_models, fork_bomb, unhealthy, hang, network, request_failed, a gate reason, or an
image rejection); a fault of the validator's side (baseline, engine, weights that do not match
the profile's manifest: ``model_mismatch``, checked before anything is pulled) gives
``verdict="error"``,
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

import docker
import httpx
import msgspec

from harness import gate, score
from harness.errors import HarnessError
from harness.eval_report import EvalReport
from harness.evidence import EVIDENCE_DIR, Evidence
from harness.evidence import write as write_evidence
from harness.loadgen import RequestResult
from harness.measure import measure
from harness.measurement import Measurement
from harness.plan import PromptPlan, plan_measurement
from harness.preflight import PreflightError, preflight
from harness.profile import Profile, get_profile
from harness.report_html import render_html
from harness.runner import Sandbox, assigned_gpus, container_spec, pull_pinned, sigterm_raises
from harness.sandbox_errors import SandboxError
from harness.sandbox_image import require_pinned_baseline
from harness.weights import ModelMismatch, fingerprint, require_model
from rules.reasons import RequestFailure

__all__ = [
    "Disqualified",
    "EvalReport",
    "challenger_gpu_slot",
    "Progress",
    "classify_failure",
    "dry_run_specs",
    "evaluate",
    "evaluate_round",
    "flat_metrics",
    "main",
    "run_challenger",
]

# Words in a server's own logs that tell a failed request came from a blocked network call.
_NETWORK_SIGNS = (
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "network error",
    "ConnectTimeout",
    "ConnectError",
)


class Disqualified(HarnessError):
    """The challenger failed in a way the miner is to blame for; ``reason`` is the code."""

    def __init__(self, reason: str, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.logs = logs


class _BaselineFailed(HarnessError):
    """The baseline could not be measured: every eval still open in the round ends in error."""

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.logs = logs


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a round is, for a live display (plain data: rendering is the caller's business).

    ``phase`` is one of "pull", "baseline_before", "challenger", "baseline_after", "gate",
    "done"; within a measurement, ``concurrency`` and ``pass_index`` name the pass being sent
    (concurrency 0: the warm-up) and ``done`` counts its finished requests of ``requests``.
    """

    image: int
    images: int
    phase: str
    concurrency: int = 0
    pass_index: int = 0
    passes: int = 0
    requests: int = 0
    done: int = 0


class _Progress:
    """Builds :class:`Progress` values from the harness's callbacks and hands them to ``sink``."""

    def __init__(self, sink: Callable[[Progress], None] | None, images: int, passes: int):
        self.sink = sink
        self.state = Progress(image=0, images=images, phase="", passes=passes)

    def _emit(self, **changes: object) -> None:
        self.state = msgspec.structs.replace(self.state, **changes)
        if self.sink is not None:
            self.sink(self.state)

    def phase(self, image: int, phase: str) -> None:
        self._emit(image=image, phase=phase, concurrency=0, pass_index=0, requests=0, done=0)

    def pass_started(self, concurrency: int, pass_index: int, requests: int) -> None:
        self._emit(concurrency=concurrency, pass_index=pass_index, requests=requests, done=0)

    def request_done(self, _: RequestResult) -> None:
        self._emit(done=self.state.done + 1)


def flat_metrics(measurement: Measurement) -> dict[str, float]:
    """``c<concurrency>_<metric>`` -> value, e.g. ``c1_median_ttft_ms``, for event payloads."""
    return {
        f"c{level.concurrency}_{name}": value
        for level in measurement.levels
        for name, value in level.metrics.as_dict().items()
    }


def classify_failure(result: RequestResult, logs: str) -> RequestFailure:
    """Reason code for a failed challenger request, from the loadgen's error and the logs."""
    # Network first: a blocked connection often surfaces as a slow or stalled answer.
    if any(sign in logs for sign in _NETWORK_SIGNS):
        return "network"
    if result.error_code in ("stall", "timeout"):
        return "hang"
    return "request_failed"


def _measure(
    url: str, profile: Profile, plan: PromptPlan, progress: _Progress | None = None
) -> Measurement:
    if progress is None:
        return asyncio.run(measure(url, profile, plan))
    return asyncio.run(
        measure(
            url,
            profile,
            plan,
            on_pass=progress.pass_started,
            on_request_done=progress.request_done,
        )
    )


def challenger_gpu_slot(profile: Profile) -> int:
    """Beside a kept-up baseline the challenger takes the next block of GPUs."""
    return 1 if profile.baseline_stays_up and profile.gpus_per_container else 0


def run_challenger(
    client: docker.DockerClient,
    image_id: str,
    profile: Profile,
    plan: PromptPlan,
    *,
    name: str,
    progress: _Progress | None = None,
) -> tuple[Measurement, str]:
    """Start and measure the challenger with ``plan``; returns (measurement, logs).

    Raises :class:`Disqualified` (or a :class:`SandboxError`) when the challenger is at fault.
    """
    before = fingerprint(profile.model_dir)
    box = Sandbox(client, image_id, profile, name=name, gpu_slot=challenger_gpu_slot(profile))
    try:
        with box:
            box.wait_healthy()
            measurement = _measure(box.url, profile, plan, progress)
            box.check_alive()
            failed = measurement.failed()
            if failed:
                box.logs = box.read_logs()
                where = "the warm-up" if not measurement.runs else "the measurement"
                raise Disqualified(
                    classify_failure(failed[0], box.logs),
                    f"{len(failed)} requests of {where} failed, first: {failed[0].error}",
                    box.logs,
                )
    finally:
        if fingerprint(profile.model_dir) != before:
            raise Disqualified("write_models", "the model directory changed during the eval")
    return measurement, box.logs


class _Baseline:
    """The baseline container of one round: started once, restarted if its health fails.

    Where the node cannot hold it beside a challenger (``Profile.baseline_stays_up``), it is
    stopped while each challenger runs and started again to be measured after it.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        image_id: str,
        profile: Profile,
        name: str,
        progress: _Progress,
    ):
        self.client, self.image_id, self.profile, self.name = client, image_id, profile, name
        self.progress = progress
        self.box: Sandbox | None = None
        self.logs = ""

    def url(self) -> str:
        """The URL of a live, healthy baseline (starting one if there is none)."""
        if self.box is not None:
            try:
                self.box.check_alive()
                httpx.get(f"{self.box.url}/health", timeout=5.0).raise_for_status()
                return self.box.url
            except (SandboxError, httpx.HTTPError):
                self.close()  # dead or unwell: measure on a fresh one
        box = Sandbox(
            self.client, self.image_id, self.profile, name=self.name,
            command=self.profile.baseline_command,
        )  # fmt: skip
        try:
            box.__enter__()
            self.box = box
            box.wait_healthy()
        except (SandboxError, httpx.HTTPError, docker.errors.DockerException) as exc:
            self.close()
            raise _BaselineFailed(f"the baseline did not start: {exc}", self.logs) from exc
        return box.url

    def measure(self, plan: PromptPlan) -> Measurement:
        measurement = _measure(self.url(), self.profile, plan, self.progress)
        if failed := measurement.failed():
            raise _BaselineFailed(
                f"{len(failed)} baseline requests failed, first: {failed[0].error}",
                self.box.read_logs() if self.box else "",
            )
        return measurement

    def close(self) -> None:
        if self.box is not None:
            self.box.close()
            self.logs = self.box.logs
            self.box = None


def evaluate_round(
    client: docker.DockerClient,
    images: list[str],
    profile: Profile,
    seed: str,
    *,
    eval_ids: list[str] | None = None,
    on_baseline: Callable[[int, str, Measurement], None] | None = None,
    on_report: Callable[[int, EvalReport], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    keep_evidence: Callable[[Evidence], dict[str, str]] | None = None,
) -> list[EvalReport]:
    """Evaluate every image (pinned by digest) against the baseline in one round seeded ``seed``.

    Returns one report per image, in order. ``on_baseline(i, phase, measurement)`` is called
    with each baseline measurement taken for image ``i`` ("before", "after"; one measurement
    is the "after" of one bracket's images and the "before" of the next bracket's);
    ``on_report(i, report)`` as soon as image ``i`` is judged; ``on_progress`` with each
    :class:`Progress`.
    ``keep_evidence(evidence)`` stores what image ``i`` was judged on (harness.evidence) just
    before its ``on_report``, and returns the files' sha256s for ``EvalReport.evidence``. Never
    raises for a challenger's faults.
    """
    ids = eval_ids or [secrets.token_hex(4) for _ in images]
    progress = _Progress(on_progress, len(images), profile.passes)
    reports = [
        EvalReport(
            image=image, profile=profile.name, seed=seed, verdict="error", reason="", eval_id=id_
        )
        for image, id_ in zip(images, ids, strict=True)
    ]
    evidence = [Evidence(eval_id=id_) for id_ in ids]
    clock = time.monotonic()

    def lap(report: EvalReport, phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        report.seconds[phase] = report.seconds.get(phase, 0.0) + now - clock
        clock = now

    def done(i: int) -> None:
        progress.phase(i, "done")
        if keep_evidence is not None:
            evidence[i].logs = reports[i].logs
            reports[i].evidence = keep_evidence(evidence[i])
        if on_report is not None:
            on_report(i, reports[i])

    progress.phase(0, "pull")
    try:
        # The validator's fault, never a miner's: every eval of the round ends in error.
        if profile.model_manifest:
            require_model(profile.model_dir, profile.model_manifest)
    except ModelMismatch as exc:
        for i, report in enumerate(reports):
            report.reason, report.detail = "model_mismatch", str(exc)
            done(i)
        return reports
    try:
        baseline_id = pull_pinned(client, profile.baseline_image, profile)
    except SandboxError as exc:
        for i, report in enumerate(reports):
            report.reason, report.detail = f"baseline_{exc.reason}", str(exc)
            done(i)
        return reports
    pulled: list[tuple[int, str]] = []
    for i, report in enumerate(reports):
        progress.phase(i, "pull")
        try:
            pulled.append((i, pull_pinned(client, report.image, profile)))
        except SandboxError as exc:
            report.verdict, report.reason, report.detail = "fail", exc.reason, str(exc)
            done(i)
        lap(report, "pull")

    baseline = _Baseline(client, baseline_id, profile, f"{ids[0]}-baseline", progress)
    slot, before = 0, None
    # Measured challengers waiting for the baseline measurement after them.
    waiting: list[int] = []
    # The largest score one baseline measurement of this round earned against the next: every
    # later challenger's noise is at least this (harness.score.score says why).
    round_noise = profile.noise_floor
    try:
        for n, (i, image_id) in enumerate(pulled):
            report = reports[i]
            plan = plan_measurement(seed, slot, profile)
            if before is None:
                progress.phase(i, "baseline_before")
                before = baseline.measure(plan)
            report.baseline_before = flat_metrics(before)
            evidence[i].measurements["baseline_before"] = before
            if on_baseline:
                on_baseline(i, "before", before)
            lap(report, "baseline_before")
            if not profile.baseline_stays_up:
                baseline.close()  # its GPUs are the challenger's now
            progress.phase(i, "challenger")
            try:
                challenger, report.logs["challenger"] = run_challenger(
                    client, image_id, profile, plan, name=f"{ids[i]}-challenger", progress=progress
                )
            except (SandboxError, Disqualified) as exc:
                # The baseline has served this plan, the next challenger has not: it reuses it.
                report.verdict, report.reason, report.detail = "fail", exc.reason, str(exc)
                report.logs["challenger"] = exc.logs
                lap(report, "challenger")
                done(i)
            else:
                report.metrics = flat_metrics(challenger)
                evidence[i].measurements["challenger"] = challenger
                lap(report, "challenger")
                waiting.append(i)
            last = n == len(pulled) - 1
            if not waiting or (len(waiting) < profile.challengers_per_baseline and not last):
                continue  # the next challenger shares this plan and this bracket
            slot += 1
            progress.phase(i, "baseline_after")
            after = baseline.measure(plan_measurement(seed, slot, profile))
            round_noise = max(round_noise, score.pair_noise(before, after))
            for j in waiting:
                reports[j].baseline_after = flat_metrics(after)
                evidence[j].measurements["baseline_after"] = after
                if on_baseline:
                    on_baseline(j, "after", after)
                progress.phase(j, "gate")
                evidence[j].noise_floor = round_noise
                _judge(reports[j], evidence[j], baseline, profile)
                lap(reports[j], "baseline_after_and_gate")
                done(j)
            waiting, before = [], after
    except _BaselineFailed as exc:
        for i, _ in pulled:
            if not reports[i].reason:
                reports[i].reason, reports[i].detail = "baseline_failed", str(exc)
                reports[i].logs["baseline"] = exc.logs
                done(i)
    finally:
        baseline.close()
    return reports


def _judge(report: EvalReport, evidence: Evidence, baseline: _Baseline, profile: Profile) -> None:
    """Gate and score the challenger into ``report``, keeping what they used in ``evidence``.

    The gate re-scores on the live baseline; the score's noise floor is the round's so far.
    """
    measured = evidence.measurements
    before, challenger = measured["baseline_before"], measured["challenger"]
    try:
        verdict, evidence.rescored = asyncio.run(
            gate.check_with_evidence(
                before, challenger, rescore_url=baseline.url(), profile=profile
            )
        )
    except gate.InconclusiveError as exc:
        report.reason, report.detail = "inconclusive", f"gate: {exc}"
        return
    evidence.verdict = verdict
    result = score.score(
        before, challenger, measured["baseline_after"], verdict, noise_floor=evidence.noise_floor
    )
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


def evaluate(
    client: docker.DockerClient,
    image: str,
    profile: Profile,
    seed: str,
    *,
    eval_id: str = "",
    on_baseline: Callable[[str, Measurement], None] | None = None,
) -> EvalReport:
    """Evaluate one image: a round of one (B, C, B'). ``on_baseline(phase, measurement)``."""
    (report,) = evaluate_round(
        client,
        [image],
        profile,
        seed,
        eval_ids=[eval_id] if eval_id else None,
        on_baseline=None if on_baseline is None else lambda _, phase, m: on_baseline(phase, m),
    )
    return report


def dry_run_specs(
    profile: Profile, images: list[str], gpu_ids: tuple[str, ...] = ()
) -> dict[str, object]:
    """What a round would start, as :func:`harness.runner.container_spec` gives it to Docker."""
    return {
        "profile": profile.name,
        "baseline": container_spec(
            profile, profile.baseline_image, command=profile.baseline_command, gpu_ids=gpu_ids
        ),
        "challengers": [
            container_spec(profile, image, gpu_ids=gpu_ids, gpu_slot=challenger_gpu_slot(profile))
            for image in images
        ],
    }


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


def main(
    argv: list[str] | None = None, on_progress: Callable[[Progress], None] | None = None
) -> int:
    """``python -m harness.eval``; ``on_progress`` as in :func:`evaluate_round`."""
    parser = argparse.ArgumentParser(
        description="Evaluate images against the baseline, all in one round."
    )
    parser.add_argument(
        "--image", required=True, action="append", help="REGISTRY/REPO@sha256:<digest> (repeat)"
    )
    parser.add_argument("--profile", default="local")
    parser.add_argument("--seed", default="", help="round seed (a block hash); random if unset")
    parser.add_argument("--out", type=Path, default=None, help="JSON report path")
    parser.add_argument(
        "--baseline-image",
        help="the baseline, pinned by digest (default: the profile's)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the baseline's and the challengers' container specs as JSON; run nothing",
    )
    options = parser.parse_args(argv)
    try:
        profile = get_profile(options.profile)
        profile = msgspec.structs.replace(
            profile, baseline_image=require_pinned_baseline(profile, options.baseline_image)
        )
    except ValueError as exc:
        print(f"arena eval: {exc}", file=sys.stderr)
        return 2
    if options.dry_run:
        specs = dry_run_specs(profile, options.image, assigned_gpus())
        print(msgspec.json.format(msgspec.json.encode(specs)).decode())
        return 0
    try:
        client = preflight(options.image, profile)
    except (ValueError, PreflightError) as exc:
        print(f"arena eval: {exc}", file=sys.stderr)
        return 2
    seed = options.seed or "0x" + secrets.token_hex(32)
    out = options.out or Path(".arena") / "evals" / f"{int(time.time())}-{os.getpid()}.json"
    kept = out.parent / EVIDENCE_DIR
    evidence: dict[str, Evidence] = {}

    def keep(judged: Evidence) -> dict[str, str]:
        evidence[judged.eval_id] = judged
        return write_evidence(kept, judged)

    with sigterm_raises():
        reports = evaluate_round(
            client,
            options.image,
            profile,
            seed,
            on_progress=on_progress,
            keep_evidence=keep,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    body = reports[0] if len(reports) == 1 else reports
    out.write_bytes(msgspec.json.format(msgspec.json.encode(body)))
    page = out.with_suffix(".html")
    page.write_text(render_html(reports, evidence), encoding="utf-8")
    for report in reports:
        _print_report(report)
    print(f"report: {out} (and {page.name} beside it; evidence in {kept})")
    worst = max(reports, key=lambda r: {"pass": 0, "fail": 1, "error": 2}[r.verdict])
    return {"pass": 0, "fail": 1, "error": 2}[worst.verdict]


if __name__ == "__main__":
    sys.exit(main())
