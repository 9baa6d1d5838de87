"""`arena replay --eval ID | --round N`: re-judge evaluations from their kept evidence.

For each evaluation, the gate's verdict and the score are recomputed from the evidence files
beside the event log (``harness.evidence``: every request's tokens and timings, the baseline's
re-scoring, the noise floor), after checking their sha256 against ``EvalFinished.evidence``; no
engine or GPU is needed. For a round, the crown keeper's fold is then run again over the logged
inputs with the recomputed results in place of the logged ones, and the round's decision is
compared with the logged ``RoundDecided``. Every difference is printed; exit 0 when there is
none, 1 when there is one, 2 when the evidence or the log cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from cli.history import HistoryError, open_reader
from cli.options import DEFAULT_LOG_PATH, LogPath, RayAddress
from events.log import type_name
from events.types import EvalFinished, Event, RoundDecided, RoundOpened
from harness import gate, score
from harness.evidence import EVIDENCE_DIR, Evidence, EvidenceError
from harness.evidence import read as read_evidence

__all__ = ["EvalReplay", "replay", "replay_eval", "replay_round"]


class EvalReplay(msgspec.Struct, kw_only=True):
    eval_id: str
    logged: EvalFinished
    # The recomputed result; None when no gate ran (refused, crashed, baseline error): then
    # the logged reason stands and there is nothing to recompute.
    replayed: EvalFinished | None
    differences: list[str]


def replay_eval(logged: EvalFinished, evidence: Evidence) -> EvalReplay:
    """Recompute ``logged``'s verdict, reason, score and noise from ``evidence`` (pure)."""
    measured = evidence.measurements
    arms = ("baseline_before", "challenger", "baseline_after")
    if evidence.verdict is None or any(arm not in measured for arm in arms):
        return EvalReplay(eval_id=logged.eval_id, logged=logged, replayed=None, differences=[])
    before, challenger, after = (measured[arm] for arm in arms)
    verdict = gate.judge(before, challenger, evidence.rescored)
    result = score.score(before, challenger, after, verdict, noise_floor=evidence.noise_floor)
    replayed = msgspec.structs.replace(
        logged,
        verdict="pass" if verdict.passed else "fail",
        reason=verdict.reason,
        score=result.score,
        noise=result.noise,
    )
    differences = [
        f"{logged.eval_id} {field}: logged {getattr(logged, field)!r}, "
        f"replayed {getattr(replayed, field)!r}"
        for field in ("verdict", "reason", "score", "noise")
        if getattr(logged, field) != getattr(replayed, field)
    ]
    if verdict != evidence.verdict:
        differences.append(
            f"{logged.eval_id} gate details: kept {evidence.verdict}, replayed {verdict}"
        )
    return EvalReplay(
        eval_id=logged.eval_id, logged=logged, replayed=replayed, differences=differences
    )


def replay_round(
    inputs: list[Event], replays: list[EvalReplay], round_: int
) -> tuple[RoundDecided | None, RoundDecided | None]:
    """(logged, replayed) decision of round ``round_``: the crown fold over ``inputs`` with the
    replayed results in place of the logged ones (pure)."""
    from rules.crown_policy import fold_crown

    by_id = {r.eval_id: r.replayed for r in replays if r.replayed is not None}
    swapped = [by_id.get(e.eval_id, e) if isinstance(e, EvalFinished) else e for e in inputs]

    def decided(decisions: list[Event]) -> RoundDecided | None:
        found = [d for d in decisions if isinstance(d, RoundDecided) and d.round == round_]
        return found[-1] if found else None

    return decided(fold_crown(inputs)[1]), decided(fold_crown(swapped)[1])


def replay(
    eval_id: Annotated[str, typer.Option("--eval", help="an eval id to re-judge")] = "",
    round_: Annotated[int, typer.Option("--round", help="a round to re-judge and re-decide")] = 0,
    log: LogPath = DEFAULT_LOG_PATH,
    ray_address: RayAddress = "",
    evidence: Annotated[
        Path | None, typer.Option(help="evidence folder (default: beside the event log)")
    ] = None,
) -> None:
    """Recompute gate verdicts, scores and the crown decision from kept evidence; show changes."""
    from rules.crown_policy import INPUT_TYPES

    console = Console()
    if bool(eval_id) == bool(round_):
        console.print("[red]give one of --eval ID or --round N[/red]")
        raise typer.Exit(2)
    try:
        with open_reader(log, ray_address) as reader:
            folder = evidence or Path(_log_path(reader)).parent / EVIDENCE_DIR
            inputs = [r.event for r in reader.replay(0, [type_name(t) for t in INPUT_TYPES])]
            opened = [e for e in inputs if isinstance(e, RoundOpened) and e.round == round_]
            decided = [r.event for r in reader.replay(0, [type_name(RoundDecided)])]
    except HistoryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finished = {e.eval_id: e for e in inputs if isinstance(e, EvalFinished)}
    wanted = [eval_id] if eval_id else (opened[-1].eval_ids if opened else [])
    if not wanted:
        console.print(f"[red]round {round_} was never opened in this log[/red]")
        raise typer.Exit(2)
    replays = []
    try:
        for wanted_id in wanted:
            if wanted_id not in finished:
                raise EvidenceError(f"eval {wanted_id} has no EvalFinished in this log")
            logged = finished[wanted_id]
            kept = read_evidence(folder, wanted_id, logged.evidence or None)
            replays.append(replay_eval(logged, kept))
    except (EvidenceError, ValueError) as exc:
        console.print(f"[red]cannot replay: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(_table(replays))
    differences = [d for r in replays for d in r.differences]
    if round_:
        logged_decision, replayed_decision = replay_round(inputs, replays, round_)
        stored = next((d for d in reversed(decided) if d.round == round_), None)
        console.print(
            f"round {round_}: king {_king(stored)} logged, {_king(replayed_decision)} replayed"
        )
        if stored != logged_decision:
            differences.append(
                f"round {round_}: the fold of the logged inputs decides {logged_decision}, "
                f"the log holds {stored}"
            )
        if replayed_decision != stored:
            differences.append(
                f"round {round_} decision: logged {stored}, replayed {replayed_decision}"
            )
    for line in differences:
        console.print(f"[red]difference:[/red] {line}")
    if not differences:
        console.print("[green]no difference: the log's results follow from the evidence[/green]")
    raise typer.Exit(1 if differences else 0)


def _log_path(reader: Any) -> str:
    path = reader.path
    return str(path() if callable(path) else path)


def _king(decision: RoundDecided | None) -> str:
    if decision is None:
        return "(no decision)"
    return decision.king_hotkey or "(none)"


def _table(replays: list[EvalReplay]) -> Table:
    table = Table(title="evaluations replayed from their evidence", title_justify="left")
    for column in ("eval", "logged", "replayed", "score logged", "score replayed"):
        table.add_column(column)
    for r in replays:
        new = r.replayed
        table.add_row(
            r.eval_id,
            f"{r.logged.verdict} {r.logged.reason}",
            f"{new.verdict} {new.reason}" if new else "no gate ran: nothing to recompute",
            f"{r.logged.score:.6f}",
            f"{new.score:.6f}" if new else "",
        )
    return table
