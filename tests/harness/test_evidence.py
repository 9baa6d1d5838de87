"""Evidence kept and replayed, on plain data: Parquet files that round-trip exactly and are
checked by sha256, retention, and `arena replay` recomputing verdicts, scores and the crown
decision from them, reporting any difference from the log."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.replay import replay_eval
from events.log import EventLog
from events.types import EvalFinished, EvalQueued, MinerRegistered, RoundDecided, RoundOpened
from harness import evidence, score
from harness.evidence import Evidence, EvidenceError
from rules.crown_policy import fold_crown
from tests.harness.plain import judged_evidence

EVAL_ID = "r1-0001"


def _evidence(token_lp: float = -0.25) -> Evidence:
    return judged_evidence(EVAL_ID, token_lp)


def _logged(kept: Evidence, digests: dict[str, str]) -> EvalFinished:
    """What the evaluator logged for ``kept``: its verdict and score, as harness.eval computes."""
    m = kept.measurements
    result = score.score(
        m["baseline_before"], m["challenger"], m["baseline_after"], kept.verdict,
        noise_floor=kept.noise_floor,
    )  # fmt: skip
    return EvalFinished(
        eval_id=kept.eval_id, hotkey="5Miner", digest="sha256:" + "1" * 64,
        verdict="pass" if kept.verdict.passed else "fail", reason=kept.verdict.reason,
        score=result.score, noise=result.noise, metrics={}, evidence=digests,
    )  # fmt: skip


def test_evidence_round_trips_exactly_and_is_zstd_parquet(tmp_path: Path) -> None:
    kept = _evidence()
    digests = evidence.write(tmp_path, kept)
    assert sorted(digests) == sorted(f"{EVAL_ID}.{k}.parquet" for k in evidence.KINDS)
    back = evidence.read(tmp_path, EVAL_ID, digests)
    assert back == kept
    # Any Parquet reader can audit it; DuckDB names the compression.
    import duckdb

    path = str(tmp_path / f"{EVAL_ID}.requests.parquet")
    codecs = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{path}')").fetchall()
    assert codecs == [("ZSTD",)]
    rows = duckdb.sql(f"SELECT arm, count(*) FROM '{path}' GROUP BY arm ORDER BY arm").fetchall()
    assert rows == [("baseline_after", 17), ("baseline_before", 17), ("challenger", 17)]


def test_altered_evidence_is_refused(tmp_path: Path) -> None:
    digests = evidence.write(tmp_path, _evidence())
    evidence.write(tmp_path, _evidence(token_lp=-9.0))  # same id, other content
    with pytest.raises(EvidenceError, match="altered after the evaluation"):
        evidence.read(tmp_path, EVAL_ID, digests)
    with pytest.raises(EvidenceError, match="retention removed it"):
        evidence.read(tmp_path, "r9-none", None)
    with pytest.raises(ValueError, match="cannot name a file"):
        evidence.write(tmp_path, Evidence(eval_id="../escape"))


def test_retention_keeps_the_newest_evals(tmp_path: Path) -> None:
    import os

    for n in range(4):
        evidence.write(tmp_path, Evidence(eval_id=f"e{n}"))
        for path in tmp_path.glob(f"e{n}.*"):
            os.utime(path, (1000 + n, 1000 + n))  # write times in order, whatever the clock
    assert sorted(evidence.prune(tmp_path, keep=2)) == ["e0", "e1"]
    assert sorted({p.name.split(".")[0] for p in tmp_path.iterdir()}) == ["e2", "e3"]
    assert evidence.prune(tmp_path, keep=2) == []


def test_replay_recomputes_the_logged_result_and_names_each_difference(tmp_path: Path) -> None:
    kept = _evidence()
    logged = _logged(kept, evidence.write(tmp_path, kept))
    assert (logged.verdict, logged.reason) == ("pass", "ok") and logged.score > logged.noise
    again = replay_eval(logged, evidence.read(tmp_path, EVAL_ID, logged.evidence))
    assert again.differences == [] and again.replayed == logged

    lied = msgspec.structs.replace(logged, score=logged.score * 2)
    (difference,) = replay_eval(lied, kept).differences
    assert difference.startswith(f"{EVAL_ID} score: logged {lied.score!r}, replayed")

    # The baseline's re-scoring puts the challenger's tokens 8.75 nats below its argmax.
    off = _evidence(token_lp=-9.0)
    replayed = replay_eval(logged, msgspec.structs.replace(off, verdict=kept.verdict))
    assert (replayed.replayed.verdict, replayed.replayed.reason) == ("fail", "off_distribution")
    assert any(
        "reason: logged 'ok', replayed 'off_distribution'" in d for d in replayed.differences
    )


def _round_log(path: Path, logged: EvalFinished) -> None:
    queued = EvalQueued(
        eval_id=EVAL_ID, hotkey="5Miner", image="127.0.0.1:5000/m", digest=logged.digest,
        role="challenger", submitted_block=5, round_seed="0x5e",
    )  # fmt: skip
    inputs = [
        MinerRegistered(netuid=2, uid=1, hotkey="5Miner", coldkey="c", block=1),
        RoundOpened(round=1, block=10, seed="0x5e", eval_ids=[EVAL_ID]),
        queued,
        logged,
    ]
    with EventLog(path) as log:
        log.append(inputs + fold_crown(inputs)[1])


def test_arena_replay_a_round_from_the_log_and_its_evidence(tmp_path: Path) -> None:
    kept = _evidence()
    logged = _logged(kept, evidence.write(tmp_path / "evidence", kept))
    _round_log(tmp_path / "events.duckdb", logged)
    with EventLog(tmp_path / "events.duckdb") as log:
        (decided,) = [r.event for r in log.replay(0, ["RoundDecided"])]
    assert isinstance(decided, RoundDecided) and decided.king_hotkey == "5Miner"
    runner = CliRunner()
    env = {"RAY_ADDRESS": "", "COLUMNS": "200"}
    args = ["replay", "--log", str(tmp_path / "events.duckdb")]
    result = runner.invoke(app, [*args, "--round", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "round 1: king 5Miner logged, 5Miner replayed" in result.output
    assert "no difference" in result.output
    assert runner.invoke(app, [*args, "--eval", EVAL_ID], env=env).exit_code == 0

    # Evidence that does not back the log: the challenger's tokens are off the distribution,
    # yet the log (whose digests match these files) says it passed and was crowned.
    (tmp_path / "lied").mkdir()
    off = _evidence(token_lp=-9.0)
    digests = evidence.write(tmp_path / "lied" / "evidence", off)
    _round_log(
        tmp_path / "lied" / "events.duckdb", msgspec.structs.replace(logged, evidence=digests)
    )
    lied = ["replay", "--log", str(tmp_path / "lied" / "events.duckdb"), "--round", "1"]
    result = runner.invoke(app, lied, env=env)
    assert result.exit_code == 1, result.output
    assert "round 1: king 5Miner logged, (none) replayed" in result.output
    assert "reason: logged 'ok', replayed 'off_distribution'" in result.output

    # Altered evidence cannot be replayed at all.
    evidence.write(tmp_path / "evidence", off)
    result = runner.invoke(app, [*args, "--eval", EVAL_ID], env=env)
    assert result.exit_code == 2 and "altered after the evaluation" in result.output
