"""`arena bench BASELINE_URL CHALLENGER_URL`: measure two servers, gate and score the challenger.

Runs baseline, challenger, baseline again (``harness.measure.compare``) with a progress bar,
prints a table per concurrency level, writes ``<out>.json`` (every request's output and
timing, the verdict and the score) and ``<out>.png`` (TTFT and ITL distributions).
"""

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.measure import Comparison, compare
from harness.profile import get_profile

PHASES = ("baseline", "challenger", "baseline_after")
console = Console()


def bench(
    baseline_url: Annotated[str, typer.Argument(help="Baseline vLLM URL (also re-scores).")],
    challenger_url: Annotated[str, typer.Argument(help="Challenger server URL.")],
    profile: Annotated[str, typer.Option(help="Profile: load sizes, model name.")] = "local",
    seed: Annotated[str, typer.Option(help="Round seed (a block hash): picks prompts.")] = "0x00",
    num_prompts: Annotated[int, typer.Option(help="Prompts per level (0: profile's).")] = 0,
    out: Annotated[Path, typer.Option(help="Report path prefix (.json, .png).")] = Path(
        "arena-bench"
    ),
) -> None:
    """Measure two OpenAI-compatible servers and score the challenger."""
    chosen = get_profile(profile)
    if num_prompts:
        chosen = msgspec.structs.replace(chosen, num_prompts=num_prompts)
    per_phase = chosen.num_prompts * len(chosen.concurrency_levels) * chosen.passes
    with Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {phase: progress.add_task(phase, total=per_phase) for phase in PHASES}
        comparison = asyncio.run(
            compare(
                baseline_url,
                challenger_url,
                chosen,
                seed,
                on_request_done=lambda phase, _: progress.advance(tasks[phase]),
            )
        )
    console.print(_table(comparison))
    verdict, result = comparison.verdict, comparison.score
    colour = "green" if verdict.passed else "red"
    console.print(
        f"gate: [{colour}]{verdict.reason}[/{colour}] {verdict.details}\n"
        f"score: {result.score:.4f} (ttft +{result.ttft_improvement:.1%}, "
        f"throughput +{result.throughput_improvement:.1%}, noise {result.noise:.4f})"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(comparison)))
    _plot(comparison, png_path)
    console.print(f"report: {json_path}  plot: {png_path}")


def _table(comparison: Comparison) -> Table:
    table = Table(title="arena bench (medians; throughput in output tokens/s)")
    for column in (
        "server",
        "concurrency",
        "ok",
        "TTFT ms",
        "ITL ms",
        "TPOT ms",
        "E2E ms",
        "tok/s",
    ):
        table.add_column(column, justify="right")
    measurements = zip(
        PHASES,
        (comparison.baseline_before, comparison.challenger, comparison.baseline_after),
        strict=True,
    )
    for phase, measurement in measurements:
        for level in measurement.levels:
            m = level.metrics
            table.add_row(
                phase,
                str(level.concurrency),
                f"{m.completed}/{m.completed + m.failed}",
                f"{m.median_ttft_ms:.1f}",
                f"{m.median_itl_ms:.2f}",
                f"{m.median_tpot_ms:.2f}",
                f"{m.median_e2el_ms:.1f}",
                f"{m.output_throughput_tps:.1f}",
            )
    return table


def _plot(comparison: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ttft_ax, itl_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    measurements = (comparison.baseline_before, comparison.challenger, comparison.baseline_after)
    for phase, measurement in zip(PHASES, measurements, strict=True):
        results = [r for level in measurement.levels for r in level.results if r.success]
        ttfts = [r.ttft * 1000 for r in results]
        itls = [gap * 1000 for r in results for gap in r.itl]
        ttft_ax.hist(ttfts, bins=30, histtype="step", linewidth=1.5, label=phase)
        itl_ax.hist(itls, bins=50, histtype="step", linewidth=1.5, label=phase)
    ttft_ax.set(title="time to first token", xlabel="ms", ylabel="requests")
    itl_ax.set(title="inter-token latency", xlabel="ms", ylabel="gaps", yscale="log")
    for ax in (ttft_ax, itl_ax):
        ax.legend()
    verdict = comparison.verdict
    fig.suptitle(f"gate {verdict.reason}, score {comparison.score.score:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
