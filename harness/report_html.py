"""A round's reports as one self-contained HTML file: verdicts, per-level tables, inline SVG plots.

``arena eval`` writes it beside its JSON report. Everything is in the one file (styles and
plots inline, no scripts, nothing fetched), so it can be mailed, attached to an issue or opened
from an archive years later. Plots are drawn by matplotlib as SVG from the reports' flattened
per-level metrics (``c<concurrency>_<metric>``, see :func:`harness.eval.flat_metrics`) and,
where the evaluation's evidence is given, the distributions of every counted request's time to
first token and inter-token gaps.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.eval_report import EvalReport
from harness.evidence import Evidence

__all__ = ["render_html"]

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
_ARMS = ("baseline before", "challenger", "baseline after")
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700"}
_STYLE = """
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
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1><p>{head}</p>",
        _summary(reports),
    ]
    for n, report in enumerate(reports, 1):
        parts.append(_section(n, report, (evidence or {}).get(report.eval_id)))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(reports: Sequence[EvalReport]) -> str:
    rows = "".join(
        f'<tr><td>{n}</td><td>{html.escape(r.image)}</td><td class="verdict" '
        f'style="color:{_COLOURS[r.verdict]}">{r.verdict}</td><td>{html.escape(r.reason)}</td>'
        f'<td class="n">{r.score:.4f}</td><td class="n">{r.noise:.4f}</td></tr>'
        for n, r in enumerate(reports, 1)
    )
    return (
        "<table><tr><th>#</th><th>image</th><th>verdict</th><th>reason</th><th>score</th>"
        f"<th>noise</th></tr>{rows}</table>"
    )


def _section(n: int, report: EvalReport, kept: Evidence | None) -> str:
    e = html.escape
    arms = _by_level(report)
    parts = [
        f'<h2 id="image-{n}">{n}. {e(report.image)}</h2>',
        f'<p><span class="verdict" style="color:{_COLOURS[report.verdict]}">'
        f"{report.verdict.upper()}</span> {e(report.reason)}, score {report.score:.4f}, "
        f"noise {report.noise:.4f}</p>",
    ]
    if report.detail:
        parts.append(f"<pre>{e(report.detail)}</pre>")
    if arms:
        parts.append(_levels_table(arms))
        parts.append('<div class="plots">')
        parts.extend(_plot(arms, metric, title, f"{n}-{metric}") for metric, title in _PLOTS)
        if kept is not None and kept.measurements:
            parts.append(_distributions(kept, f"{n}-distributions"))
        parts.append("</div>")
    gate = {k: v for k, v in report.metrics.items() if not _LEVEL_METRIC.match(k)}
    if gate:
        rows = "".join(
            f'<tr><td>{e(k)}</td><td class="n">{v:.4f}</td></tr>' for k, v in sorted(gate.items())
        )
        parts.append(f"<h3>gate and score</h3><table>{rows}</table>")
    if report.seconds:
        rows = "".join(
            f'<tr><td>{e(k)}</td><td class="n">{v:.1f}</td></tr>' for k, v in report.seconds.items()
        )
        parts.append(f"<h3>seconds per phase</h3><table>{rows}</table>")
    for role, log in report.logs.items():
        if log:
            parts.append(f"<h3>{e(role)} log (tail)</h3><pre>{e(log)}</pre>")
    return "\n".join(parts)


def _by_level(report: EvalReport) -> dict[int, dict[str, dict[str, float]]]:
    """concurrency -> metric -> arm -> value, for the arms that were measured."""
    levels: dict[int, dict[str, dict[str, float]]] = {}
    measured = (report.baseline_before, report.metrics, report.baseline_after)
    for arm, metrics in zip(_ARMS, measured, strict=True):
        for key, value in metrics.items():
            if match := _LEVEL_METRIC.match(key):
                concurrency, metric = int(match.group(1)), match.group(2)
                levels.setdefault(concurrency, {}).setdefault(metric, {})[arm] = value
    return dict(sorted(levels.items()))


def _levels_table(levels: dict[int, dict[str, dict[str, float]]]) -> str:
    header = "".join(f"<th>{arm}</th>" for arm in _ARMS)
    rows = []
    for concurrency, metrics in levels.items():
        for metric in _TABLE_METRICS:
            values = metrics.get(metric, {})
            cells = "".join(
                f'<td class="n">{values[arm]:.2f}</td>' if arm in values else "<td>-</td>"
                for arm in _ARMS
            )
            rows.append(f"<tr><td>{concurrency}</td><td>{metric}</td>{cells}</tr>")
    return f"<table><tr><th>concurrency</th><th>metric</th>{header}</tr>{''.join(rows)}</table>"


def _distributions(kept: Evidence, salt: str) -> str:
    """Histograms of TTFT and inter-token gaps of every counted request, per arm, as ``<svg>``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(12, 3.6))
    for arm, measurement in kept.measurements.items():
        results = [r for level in measurement.levels for r in level.results if r.success]
        label = arm.replace("_", " ")
        for ax, values, most in (
            (ttft_ax, [r.ttft for r in results], 30),
            (itl_ax, [gap for r in results for gap in r.itl], 50),
        ):
            # In whole microseconds: values a rounding error apart cannot span a bin.
            ms = [round(v * 1000, 3) for v in values]
            if ms:
                ax.hist(ms, bins=min(most, len(set(ms))), histtype="step", label=label)
    ttft_ax.set(title="time to first token", xlabel="ms", ylabel="requests")
    itl_ax.set(title="inter-token latency", xlabel="ms", ylabel="gaps", yscale="log")
    for ax in (ttft_ax, itl_ax):
        ax.legend(fontsize="small")
    return _svg(fig, salt).replace("<svg ", '<svg style="width: 65em" ', 1)


def _plot(
    levels: dict[int, dict[str, dict[str, float]]], metric: str, title: str, salt: str
) -> str:
    """A grouped bar chart of ``metric`` per level and arm, as an inline ``<svg>`` element."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = list(levels)
    width = 0.8 / len(_ARMS)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, arm in enumerate(_ARMS):
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
