"""A round's reports as one self-contained HTML file: verdicts, per-level tables, inline SVG plots.

``arena eval`` writes it beside its JSON report. Everything is in the one file (styles and
plots inline, no scripts, nothing fetched), so it can be mailed, attached to an issue or opened
from an archive years later. Plots are drawn by matplotlib as SVG from the reports' flattened
per-level metrics (``c<concurrency>_<metric>``, see :func:`harness.eval.flat_metrics`) and,
where the evaluation's evidence is given, the distributions of every counted request's time to
first token and inter-token gaps.

The pieces (the page shell, a verdict, the per-level table and plots, the distributions, number
tables, log tails) are public: the validator's dashboard (``serve_apps.dashboard_pages``) draws
an evaluation's page from them, so both look and read the same.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.eval_report import EvalReport
from harness.evidence import Evidence

__all__ = [
    "ARMS",
    "STYLE",
    "Levels",
    "distributions_svg",
    "html_document",
    "level_plots",
    "levels_of",
    "levels_table",
    "logs_html",
    "number_table",
    "overall_metrics",
    "render_html",
    "timings_ms",
    "verdict_html",
]

_LEVEL_METRIC = re.compile(r"^c(\d+)_(.+)$")
# (metric, title) per plot, each drawn for every concurrency level.
_PLOTS = (
    ("output_throughput_tps", "output throughput (tokens/s)"),
    ("median_ttft_ms", "median time to first token (ms)"),
    ("p90_ttft_ms", "p90 time to first token (ms)"),
    ("median_itl_ms", "median inter-token latency (ms)"),
)
_TABLE_METRICS = (
    "output_throughput_tps",
    "request_throughput_rps",
    "median_ttft_ms",
    "p90_ttft_ms",
    "median_tpot_ms",
    "median_itl_ms",
    "p90_itl_ms",
    "completed",
    "failed",
)
# The arms of a measurement as tables and legends name them.
ARMS = ("baseline before", "challenger", "baseline after")
# concurrency -> metric -> arm -> value, for the arms that were measured.
Levels = dict[int, dict[str, dict[str, float]]]
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700"}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #1f2328 }
h1 { font-size: 1.5em } h2 { font-size: 1.25em; border-bottom: 1px solid #d0d7de }
table { border-collapse: collapse; margin: 0.5em 0 1em } td, th { padding: 2px 10px }
th { text-align: left; background: #f6f8fa } td.n { text-align: right; font-variant: tabular-nums }
tr:nth-child(even) td { background: #f6f8fa } .verdict { font-weight: bold }
pre { background: #f6f8fa; padding: 0.5em; overflow-x: auto; max-height: 30em; font-size: 12px }
.plots { display: flex; flex-wrap: wrap; gap: 1em } .plots svg { width: 32em; height: auto }
"""


def render_html(
    reports: Sequence[EvalReport],
    evidence: Mapping[str, Evidence] | None = None,
    title: str = "arena eval",
) -> str:
    """The whole HTML document for ``reports`` (one round); ``evidence`` by eval id, if kept."""
    e = html.escape
    first = reports[0] if reports else None
    head = f"profile {e(first.profile)}, seed {e(first.seed)}" if first else "no images"
    parts = [f"<h1>{e(title)}</h1><p>{head}</p>", _summary(reports)]
    for n, report in enumerate(reports, 1):
        parts.append(_section(n, report, (evidence or {}).get(report.eval_id)))
    return html_document(title, "\n".join(parts))


def html_document(title: str, body: str, style: str = "") -> str:
    """A whole HTML page: ``body`` (markup, already escaped) under :data:`STYLE` plus ``style``."""
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}{style}</style></head><body>",
            body,
            "</body></html>",
        ]
    )


def verdict_html(verdict: str, text: str | None = None) -> str:
    """``text`` (default: the verdict) in the verdict's colour; unknown verdicts in black."""
    colour = _COLOURS.get(verdict, "inherit")
    return (
        f'<span class="verdict" style="color:{colour}">'
        f"{html.escape(verdict if text is None else text)}</span>"
    )


def _summary(reports: Sequence[EvalReport]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{html.escape(r.image)}</td><td>{verdict_html(r.verdict)}</td>"
        f'<td>{html.escape(r.reason)}</td><td class="n">{r.score:.4f}</td>'
        f'<td class="n">{r.noise:.4f}</td></tr>'
        for n, r in enumerate(reports, 1)
    )
    return (
        "<table><tr><th>#</th><th>image</th><th>verdict</th><th>reason</th><th>score</th>"
        f"<th>noise</th></tr>{rows}</table>"
    )


def _section(n: int, report: EvalReport, kept: Evidence | None) -> str:
    e = html.escape
    levels = levels_of(report.baseline_before, report.metrics, report.baseline_after)
    parts = [
        f'<h2 id="image-{n}">{n}. {e(report.image)}</h2>',
        f"<p>{verdict_html(report.verdict, report.verdict.upper())} {e(report.reason)}, "
        f"score {report.score:.4f}, noise {report.noise:.4f}</p>",
    ]
    if report.detail:
        parts.append(f"<pre>{e(report.detail)}</pre>")
    if levels:
        parts.append(levels_table(levels))
        parts.append('<div class="plots">')
        parts.extend(level_plots(levels, str(n)))
        if kept is not None and kept.measurements:
            parts.append(distributions_svg(kept, f"{n}-distributions"))
        parts.append("</div>")
    if gate := overall_metrics(report.metrics):
        parts.append(f"<h3>gate and score</h3>{number_table(gate)}")
    if report.seconds:
        parts.append(f"<h3>seconds per phase</h3>{number_table(report.seconds.items(), 1)}")
    parts.append(logs_html(report.logs, "h3"))
    return "\n".join(parts)


def number_table(rows: Iterable[tuple[str, float]], digits: int = 4) -> str:
    """A two-column table of named numbers."""
    cells = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="n">{value:.{digits}f}</td></tr>'
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def logs_html(logs: Mapping[str, str], heading: str = "h3") -> str:
    """Each role's log tail as text in a ``<pre>`` (never markup: a container writes it)."""
    e = html.escape
    return "\n".join(
        f"<{heading}>{e(role)} log (tail)</{heading}><pre>{e(log)}</pre>"
        for role, log in logs.items()
        if log
    )


def overall_metrics(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    """The metrics that are not per level (the gate's and the score's), by name."""
    return sorted((k, v) for k, v in metrics.items() if not _LEVEL_METRIC.match(k))


def levels_of(
    before: Mapping[str, float], challenger: Mapping[str, float], after: Mapping[str, float]
) -> Levels:
    """The three arms' flattened metrics (``c<concurrency>_<metric>``) by level, metric, arm."""
    levels: Levels = {}
    for arm, metrics in zip(ARMS, (before, challenger, after), strict=True):
        for key, value in metrics.items():
            if match := _LEVEL_METRIC.match(key):
                concurrency, metric = int(match.group(1)), match.group(2)
                levels.setdefault(concurrency, {}).setdefault(metric, {})[arm] = value
    return dict(sorted(levels.items()))


def levels_table(levels: Levels) -> str:
    """Per level and metric, the challenger's number between the baseline's two."""
    header = "".join(f"<th>{arm}</th>" for arm in ARMS)
    rows = []
    for concurrency, metrics in levels.items():
        for metric in _TABLE_METRICS:
            values = metrics.get(metric, {})
            cells = "".join(
                f'<td class="n">{values[arm]:.2f}</td>' if arm in values else "<td>-</td>"
                for arm in ARMS
            )
            rows.append(f"<tr><td>{concurrency}</td><td>{metric}</td>{cells}</tr>")
    return f"<table><tr><th>concurrency</th><th>metric</th>{header}</tr>{''.join(rows)}</table>"


def level_plots(levels: Levels, salt: str) -> list[str]:
    """Throughput, TTFT and ITL per level and arm: one inline ``<svg>`` bar chart each.

    ``salt`` tells this evaluation's plots from others' on the same page (see :func:`_svg`).
    """
    return [_plot(levels, metric, title, f"{salt}-{metric}") for metric, title in _PLOTS]


def timings_ms(kept: Evidence) -> dict[str, tuple[list[float], list[float]]]:
    """Per measured arm, (TTFT, inter-token gaps) of every counted request that succeeded, in
    whole microseconds as ms (values a rounding error apart are one value)."""
    timings = {}
    for arm, measurement in kept.measurements.items():
        results = [r for level in measurement.levels for r in level.results if r.success]
        timings[arm] = (
            [round(r.ttft * 1000, 3) for r in results],
            [round(gap * 1000, 3) for r in results for gap in r.itl],
        )
    return timings


def distributions_svg(kept: Evidence, salt: str) -> str:
    """Histograms of TTFT and inter-token gaps of every counted request, per arm, as ``<svg>``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(12, 3.6))
    for arm, (ttfts, gaps) in timings_ms(kept).items():
        label = arm.replace("_", " ")
        for ax, ms, most in ((ttft_ax, ttfts, 30), (itl_ax, gaps, 50)):
            if ms:
                ax.hist(ms, bins=min(most, len(set(ms))), histtype="step", label=label)
    ttft_ax.set(title="time to first token", xlabel="ms", ylabel="requests")
    itl_ax.set(title="inter-token latency", xlabel="ms", ylabel="gaps", yscale="log")
    for ax in (ttft_ax, itl_ax):
        ax.legend(fontsize="small")
    return _svg(fig, salt).replace("<svg ", '<svg style="width: 65em" ', 1)


def _plot(levels: Levels, metric: str, title: str, salt: str) -> str:
    """A grouped bar chart of ``metric`` per level and arm, as an inline ``<svg>`` element."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = list(levels)
    width = 0.8 / len(ARMS)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, arm in enumerate(ARMS):
        values = [levels[c].get(metric, {}).get(arm) for c in concurrencies]
        xs = [i + (k - 1) * width for i, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=arm)
    ax.set_xticks(range(len(concurrencies)), [str(c) for c in concurrencies])
    ax.set(title=title, xlabel="concurrency")
    ax.legend(fontsize="small")
    return _svg(fig, salt)


def _svg(fig: Any, salt: str) -> str:
    """``fig`` as an inline ``<svg>`` element (closed afterwards).

    ``salt`` seeds the clip paths' ids: many plots share one HTML document, where an id
    repeated by another plot would make it borrow that plot's clip path.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.StringIO()
    # Text as text, not glyph outlines: smaller, searchable, and no glyph ids shared by plots.
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prologue and DOCTYPE: inline in HTML
