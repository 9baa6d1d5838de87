"""The dashboard's pages as plain data and as HTML: pure functions of log rows, events, evidence.

:mod:`serve_apps.dashboard` reads the event log and the evidence and calls these; each page's
data (a msgspec Struct) is also what the page's JSON endpoint returns. Three pages::

    overview   the king, the leaderboard (each submission's latest verdict, reason, score and
               noise), the crown history, recent evaluations, recent weights
    eval       one evaluation: its events, metrics per level, throughput/TTFT/ITL plots, the
               gate's details, the containers' log tails (the last three from its evidence)
    weights    every weight setting

Everything taken from the log is escaped: images, reasons and container logs are written by
miners. The plots and tables of an evaluation are ``harness.report_html``'s, as in ``arena eval``'s
report.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import msgspec

from events.recorded import Recorded
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    RoundDecided,
    RoundOpened,
)
from harness.evidence import Evidence
from harness.metrics import percentile
from harness.report_html import (
    distributions_svg,
    html_document,
    level_plots,
    levels_of,
    levels_table,
    logs_html,
    number_table,
    overall_metrics,
    timings_ms,
    verdict_html,
)
from rules.king import King, follow_crown

__all__ = [
    "Attempt",
    "CrownChange",
    "Distribution",
    "EvalPage",
    "EvalRow",
    "EvidencePart",
    "GateDetails",
    "Overview",
    "Spread",
    "Standing",
    "WeightsPage",
    "WeightsRow",
    "current_king",
    "eval_page",
    "eval_plots",
    "evidence_part",
    "leaderboard",
    "missing_page",
    "render_eval",
    "render_overview",
    "render_weights",
    "rows_as",
]

S = TypeVar("S", bound=msgspec.Struct)
# The page's own additions to harness.report_html's STYLE.
_STYLE = """
nav { margin-bottom: 1em } nav a { margin-right: 1.2em } .muted { color: #656d76 }
.king { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.6em 1em; background: #f6f8fa }
.king b { font-size: 1.1em } td.wrap { max-width: 28em; overflow-wrap: anywhere }
td a, td span[title], td.time { white-space: nowrap }
"""


# --- page data ----------------------------------------------------------------------------------


class CrownChange(msgspec.Struct, kw_only=True):
    """A row of the ``kings`` view: a crowning, a defence or a dethronement."""

    seq: int
    ts: datetime
    change: str
    hotkey: str
    digest: str | None = None
    image: str | None = None
    score: float | None = None
    block: int | None = None
    eval_id: str | None = None
    previous_hotkey: str | None = None
    reason: str | None = None


class EvalRow(msgspec.Struct, kw_only=True):
    """A row of the ``evaluations`` view."""

    seq: int
    ts: datetime
    eval_id: str
    hotkey: str
    role: str
    image: str | None
    digest: str
    verdict: str
    reason: str
    score: float
    noise: float


class Standing(msgspec.Struct, kw_only=True):
    """A submission (hotkey and digest) on the leaderboard, by its latest evaluation."""

    rank: int
    latest: EvalRow
    evaluations: int  # how many times it was measured (a king is re-measured every round)


class WeightsRow(msgspec.Struct, kw_only=True):
    """A row of the ``weights`` view: one attempt to set weights on chain."""

    seq: int
    ts: datetime
    netuid: int
    block: int
    success: bool
    uids: list[int]
    weights: list[int]
    extrinsic_hash: str | None = None
    error: str | None = None
    attempt: int | None = None
    reason_eval_id: str | None = None


class Overview(msgspec.Struct, kw_only=True):
    king: King | None  # its score refreshed by the latest round that re-measured it
    rounds_decided: int
    last_seq: int
    leaderboard: list[Standing]
    crown_history: list[CrownChange]  # newest first
    evaluations: list[EvalRow]  # the newest, newest first
    weights: list[WeightsRow]  # the newest, newest first


class WeightsPage(msgspec.Struct, kw_only=True):
    weights: list[WeightsRow]  # newest first


class Attempt(msgspec.Struct, kw_only=True):
    attempt: int
    worker: str
    ts: datetime


class GateDetails(msgspec.Struct, kw_only=True):
    """The correctness gate's verdict as kept in the evidence (``harness.gate.GateVerdict``)."""

    passed: bool
    reason: str
    details: str
    max_argmax_gap: float
    max_reported_gap: float
    exact_match: float
    noise_floor: float
    answers_rescored: int


class Spread(msgspec.Struct, kw_only=True):
    """Order statistics of a sample, in ms."""

    count: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float


class Distribution(msgspec.Struct, kw_only=True):
    """An arm's time to first token and inter-token gaps over its counted requests."""

    ttft_ms: Spread
    itl_ms: Spread


class EvidencePart(msgspec.Struct, kw_only=True):
    """What an evaluation's page shows from its evidence."""

    gate: GateDetails | None  # None: judged before the gate ran (refused, crashed, ...)
    distributions: dict[str, Distribution]  # by arm
    logs: dict[str, str]  # role -> the container's log tail


class EvalPage(msgspec.Struct, kw_only=True):
    eval_id: str
    status: Literal["queued", "running", "finished"]
    hotkey: str
    role: str
    image: str
    digest: str
    submitted_block: int | None
    round: int | None
    round_seed: str
    queued_at: datetime | None
    attempts: list[Attempt]
    finished_at: datetime | None
    verdict: str  # "" until finished
    reason: str
    score: float | None
    noise: float | None
    metrics: dict[str, float]  # the challenger's (``c<concurrency>_<metric>``, gate and score)
    baseline_before: dict[str, float]
    baseline_after: dict[str, float]
    crown: list[CrownChange]  # what the crown keeper did with this evaluation
    evidence: dict[str, str]  # evidence file -> sha256, as EvalFinished recorded it
    evidence_note: str  # why the evidence is not shown; "" when it is
    kept: EvidencePart | None


# --- building the data --------------------------------------------------------------------------


def rows_as(kind: type[S], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[S]:
    """SQL result rows (``EventLog.sql``'s ``(columns, rows)``) as ``kind`` Structs."""
    return [msgspec.convert(dict(zip(columns, row, strict=True)), kind) for row in rows]


def current_king(records: Iterable[Recorded]) -> tuple[King | None, int]:
    """(the king, rounds decided) after ``records`` of crown events and ``RoundDecided``.

    Who reigns is ``rules.king.follow_crown``'s fold, the one the king's server follows; each
    ``RoundDecided`` naming the same king refreshes its score with that round's re-measurement.
    """
    king, rounds = None, 0
    for record in records:
        event = record.event
        if not isinstance(event, RoundDecided):
            king = follow_crown(king, event)
            continue
        rounds += 1
        if king is not None and (event.king_hotkey, event.king_digest) == (
            king.hotkey,
            king.digest,
        ):
            king = dataclasses.replace(king, score=event.king_score)
    return king, rounds


def leaderboard(evaluations: Iterable[EvalRow]) -> list[Standing]:
    """Each submission by its latest evaluation: passes by score (highest first), then the rest,
    newest first."""
    latest: dict[tuple[str, str], EvalRow] = {}
    counts: dict[tuple[str, str], int] = {}
    for row in sorted(evaluations, key=lambda r: r.seq):
        key = (row.hotkey, row.digest)
        latest[key] = row
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(latest.items(), key=lambda kv: _rank_key(kv[1]))
    return [
        Standing(rank=rank, latest=row, evaluations=counts[key])
        for rank, (key, row) in enumerate(ordered, 1)
    ]


def _rank_key(row: EvalRow) -> tuple[bool, float, int]:
    passed = row.verdict == "pass"
    return (not passed, -row.score if passed else 0.0, -row.seq)


def evidence_part(evidence: Evidence) -> EvidencePart:
    """The gate's details, the timing distributions and the log tails kept for an evaluation."""
    verdict = evidence.verdict
    gate = None
    if verdict is not None:
        gate = GateDetails(
            passed=verdict.passed,
            reason=verdict.reason,
            details=verdict.details,
            max_argmax_gap=verdict.max_argmax_gap,
            max_reported_gap=verdict.max_reported_gap,
            exact_match=verdict.exact_match,
            noise_floor=evidence.noise_floor,
            answers_rescored=len(evidence.rescored),
        )
    distributions = {
        arm: Distribution(ttft_ms=_spread(ttfts), itl_ms=_spread(gaps))
        for arm, (ttfts, gaps) in timings_ms(evidence).items()
    }
    return EvidencePart(gate=gate, distributions=distributions, logs=dict(evidence.logs))


def eval_page(
    eval_id: str,
    records: Iterable[Recorded],
    crown: list[CrownChange],
    kept: EvidencePart | None,
    evidence_note: str,
) -> EvalPage | None:
    """The page of ``eval_id`` from the events that name it (``crown``: its rows of the ``kings``
    view); None when none does."""
    queued: EvalQueued | None = None
    finished: EvalFinished | None = None
    queued_at = finished_at = None
    attempts: list[Attempt] = []
    baselines: dict[str, dict[str, float]] = {}
    round_no = None
    for ts, event in ((r.ts, r.event) for r in records):
        match event:
            case EvalQueued(eval_id=found) if found == eval_id:
                queued, queued_at = event, ts
            case EvalStarted(eval_id=found) if found == eval_id:
                attempts.append(Attempt(attempt=event.attempt, worker=event.worker, ts=ts))
            case BaselineMeasured(eval_id=found) if found == eval_id:
                baselines[event.phase] = event.metrics
            case EvalFinished(eval_id=found) if found == eval_id:
                finished, finished_at = event, ts
            case RoundOpened() if eval_id in event.eval_ids:
                round_no = event.round
    known = finished or queued
    if known is None:
        return None
    status: Literal["queued", "running", "finished"] = (
        "finished" if finished else "running" if attempts else "queued"
    )
    return EvalPage(
        eval_id=eval_id,
        status=status,
        hotkey=known.hotkey,
        role=known.role,
        image=queued.image if queued else "",
        digest=known.digest,
        submitted_block=queued.submitted_block if queued else None,
        round=round_no,
        round_seed=queued.round_seed if queued else "",
        queued_at=queued_at,
        attempts=attempts,
        finished_at=finished_at,
        verdict=finished.verdict if finished else "",
        reason=finished.reason if finished else "",
        score=finished.score if finished else None,
        noise=finished.noise if finished else None,
        metrics=dict(finished.metrics) if finished else {},
        baseline_before=baselines.get("before", {}),
        baseline_after=baselines.get("after", {}),
        crown=crown,
        evidence=dict(finished.evidence) if finished else {},
        evidence_note=evidence_note,
        kept=kept,
    )


def _spread(values: Sequence[float]) -> Spread:
    return Spread(
        count=len(values),
        min=min(values, default=0.0),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=max(values, default=0.0),
    )


# --- HTML ---------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return "" if value is None else html.escape(str(value))


def _when(ts: datetime | None) -> str:
    return "" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _short(text: str | None, keep: int = 10) -> str:
    """A long hotkey or digest cut to its ends, whole in the tooltip."""
    if not text:
        return ""
    shown = text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-6:]}"
    return f'<span title="{_e(text)}">{_e(shown)}</span>'


def _eval_link(base: str, eval_id: str | None) -> str:
    if not eval_id:
        return ""
    return f'<a href="{_e(base)}/eval/{_e(quote(eval_id, safe=""))}">{_e(eval_id)}</a>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    """A table of cells that are markup already (escaped by the caller)."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    """A table of named facts; names are ours, values markup already (escaped by the caller)."""
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _td(markup: str, cls: str = "") -> str:
    return f'<td class="{cls}">{markup}</td>' if cls else f"<td>{markup}</td>"


def _page(base: str, title: str, api: str, body: str) -> str:
    nav = (
        f'<nav><a href="{_e(base)}/">overview</a><a href="{_e(base)}/weights">weights</a>'
        f'<a href="{_e(base)}/api/{_e(api)}">JSON</a></nav>'
    )
    return html_document(f"{title} · arena", f"{nav}\n{body}", _STYLE)


def _king_html(king: King | None, base: str) -> str:
    if king is None:
        return '<div class="king">No king: the throne is empty.</div>'
    return (
        f'<div class="king">King <b class="hotkey">{_e(king.hotkey)}</b> (uid {king.uid})<br>'
        f"{_e(king.image)}@{_short(king.digest, 14)}, score <b>{_num(king.score)}</b>, "
        f"since block {king.since_block}, crowned by {_eval_link(base, king.eval_id)}</div>"
    )


def _standing_row(s: Standing, base: str) -> list[str]:
    r = s.latest
    return [
        _td(str(s.rank), "n"),
        _td(_short(r.hotkey)),
        _td(f"{_e(r.image)}@{_short(r.digest, 14)}", "wrap"),
        _td(verdict_html(r.verdict)),
        _td(_e(r.reason), "wrap"),
        _td(_num(r.score), "n"),
        _td(_num(r.noise), "n"),
        _td(str(s.evaluations), "n"),
        _td(_eval_link(base, r.eval_id)),
    ]


def _crown_row(c: CrownChange, base: str) -> list[str]:
    return [
        _td(_when(c.ts), "time"),
        _td(_e(c.change)),
        _td(_short(c.hotkey)),
        _td(_num(c.score), "n"),
        _td(_e(c.block)),
        _td(_eval_link(base, c.eval_id)),
        _td(_short(c.previous_hotkey)),
        _td(_e(c.reason), "wrap"),
    ]


def _eval_row(r: EvalRow, base: str) -> list[str]:
    return [
        _td(_when(r.ts), "time"),
        _td(_eval_link(base, r.eval_id)),
        _td(_short(r.hotkey)),
        _td(_e(r.role)),
        _td(verdict_html(r.verdict)),
        _td(_e(r.reason), "wrap"),
        _td(_num(r.score), "n"),
        _td(_num(r.noise), "n"),
    ]


def _weights_row(w: WeightsRow, base: str) -> list[str]:
    total = sum(w.weights) or 1
    shares = ", ".join(
        f"{uid}: {weight / total:.1%}" for uid, weight in zip(w.uids, w.weights, strict=False)
    )
    outcome = "set" if w.success else f"failed: {w.error or ''}"
    return [
        _td(_when(w.ts), "time"),
        _td(_e(w.block)),
        _td(_e(outcome), "wrap"),
        _td(_e(shares), "wrap"),
        _td(_short(w.extrinsic_hash)),
        _td(_e(w.attempt), "n"),
        _td(_eval_link(base, w.reason_eval_id)),
    ]


_CROWN_HEADERS = ("time", "change", "hotkey", "score", "block", "eval", "previous", "reason")
_WEIGHTS_HEADERS = ("time", "block", "outcome", "uid: share", "extrinsic", "attempt", "because of")


def render_overview(page: Overview, base: str) -> str:
    """The overview page; ``base`` is where the dashboard is mounted (``/dashboard``)."""
    body = [
        "<h1>Arena</h1>",
        _king_html(page.king, base),
        f'<p class="muted">{page.rounds_decided} rounds decided; the event log is at seq '
        f"{page.last_seq}.</p>",
        "<h2>Leaderboard</h2>",
        '<p class="muted">Each submission by its latest evaluation: passes by score, then the '
        "rest, newest first.</p>",
        _table(
            ("#", "hotkey", "image", "verdict", "reason", "score", "noise", "evals", "latest"),
            [_standing_row(s, base) for s in page.leaderboard],
            "No evaluation has finished yet.",
        ),
        "<h2>Crown history</h2>",
        _table(
            _CROWN_HEADERS,
            [_crown_row(c, base) for c in page.crown_history],
            "No one has been crowned yet.",
        ),
        "<h2>Recent evaluations</h2>",
        _table(
            ("finished", "eval", "hotkey", "role", "verdict", "reason", "score", "noise"),
            [_eval_row(r, base) for r in page.evaluations],
            "No evaluation has finished yet.",
        ),
        f'<h2>Weights <a class="muted" href="{_e(base)}/weights">(all)</a></h2>',
        _table(
            _WEIGHTS_HEADERS,
            [_weights_row(w, base) for w in page.weights],
            "No weights were set yet.",
        ),
    ]
    return _page(base, "overview", "overview", "\n".join(body))


def render_weights(page: WeightsPage, base: str) -> str:
    body = [
        "<h1>Weights</h1>",
        _table(
            _WEIGHTS_HEADERS,
            [_weights_row(w, base) for w in page.weights],
            "No weights were set yet.",
        ),
    ]
    return _page(base, "weights", "weights", "\n".join(body))


def eval_plots(page: EvalPage, evidence: Evidence | None) -> str:
    """The evaluation's inline SVG plots: per level (throughput, TTFT, ITL by arm) and, with its
    evidence, the TTFT and ITL distributions. Costly (matplotlib): worth keeping once finished."""
    levels = levels_of(page.baseline_before, page.metrics, page.baseline_after)
    plots = level_plots(levels, "eval") if levels else []
    if evidence is not None and evidence.measurements:
        plots.append(distributions_svg(evidence, "eval-distributions"))
    return f'<div class="plots">{"".join(plots)}</div>' if plots else ""


def render_eval(page: EvalPage, plots: str, base: str) -> str:
    """The page of one evaluation; ``plots`` from :func:`eval_plots`."""
    facts = [
        ("status", _e(page.status)),
        ("hotkey", _e(page.hotkey)),
        ("role", _e(page.role)),
        ("image", f"{_e(page.image)}@{_e(page.digest)}"),
        ("round", _e(page.round)),
        ("round seed", _e(page.round_seed)),
        ("submitted at block", _e(page.submitted_block)),
        ("queued", _when(page.queued_at)),
        *((f"attempt {a.attempt}", f"{_when(a.ts)} on {_e(a.worker)}") for a in page.attempts),
        ("finished", _when(page.finished_at)),
    ]
    body = [
        f"<h1>Evaluation {_e(page.eval_id)}</h1>",
        _facts(facts),
    ]
    if page.verdict:
        body.append(
            f"<p>{verdict_html(page.verdict, page.verdict.upper())} {_e(page.reason)}, "
            f"score {_num(page.score)}, noise {_num(page.noise)}</p>"
        )
    if page.crown:
        body += [
            "<h2>Crown</h2>",
            _table(_CROWN_HEADERS, [_crown_row(c, base) for c in page.crown], ""),
        ]
    levels = levels_of(page.baseline_before, page.metrics, page.baseline_after)
    if levels:
        body += ["<h2>Metrics per level</h2>", levels_table(levels), plots]
    body.append(_gate_html(page))
    if others := overall_metrics(page.metrics):
        body += ["<h2>Gate and score metrics</h2>", number_table(others)]
    if page.kept is not None and page.kept.logs:
        body += ["<h2>Container logs</h2>", logs_html(page.kept.logs, "h3")]
    api = f"eval/{quote(page.eval_id, safe='')}"
    return _page(base, f"eval {page.eval_id}", api, "\n".join(body))


def _gate_html(page: EvalPage) -> str:
    head = "<h2>Gate</h2>"
    if page.kept is None:
        note = page.evidence_note or "no evidence was kept for this evaluation"
        return f'{head}<p class="muted">{_e(note)}</p>'
    gate = page.kept.gate
    if gate is None:
        return f'{head}<p class="muted">The gate did not run: judged before it.</p>'
    rows = [
        ("verdict", verdict_html("pass" if gate.passed else "fail")),
        ("reason", _e(gate.reason)),
        ("max argmax gap", _num(gate.max_argmax_gap)),
        ("max reported gap", _num(gate.max_reported_gap)),
        ("exact match", _num(gate.exact_match)),
        ("noise floor", _num(gate.noise_floor)),
        ("answers re-scored", str(gate.answers_rescored)),
    ]
    details = f"<pre>{_e(gate.details)}</pre>" if gate.details else ""
    return f"{head}{_facts(rows)}{details}"


def missing_page(base: str, message: str) -> str:
    """The page for something the log does not hold (served with 404)."""
    return _page(base, "not found", "overview", f"<h1>Not found</h1><p>{_e(message)}</p>")
