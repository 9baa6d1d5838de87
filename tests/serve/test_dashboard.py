"""The dashboard: its pages built from plain data, then its routes over a real event log file and
real evidence (``dashboard_log``), as the gateway mounts them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from starlette.testclient import TestClient

from events.client import LocalLogClient
from events.log import EventLog
from events.recorded import Recorded
from events.types import (
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    KingCrowned,
    KingDethroned,
    RoundDecided,
    RoundOpened,
)
from harness.evidence import EVIDENCE_DIR, Evidence
from serve_apps.dashboard import dashboard_app
from serve_apps.dashboard_pages import (
    CrownChange,
    EvalRow,
    Overview,
    current_king,
    eval_page,
    evidence_part,
    leaderboard,
    render_eval,
    render_overview,
    rows_as,
)
from serve_apps.gateway import GatewayConfig, create_app
from tests.harness.plain import judged_evidence
from tests.serve import dashboard_log as run
from tests.serve.dashboard_log import SyntheticRun, write_run

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BASE = "/dashboard"


def recorded(events: list[Event]) -> list[Recorded]:
    return [Recorded(n, T0, e) for n, e in enumerate(events, 1)]


def crowned(hotkey: str, score: float, eval_id: str) -> KingCrowned:
    return KingCrowned(
        hotkey=hotkey, digest="sha256:" + "a" * 64, image="img", score=score, block=5,
        eval_id=eval_id, uid=3,
    )  # fmt: skip


def decided(round_no: int, hotkey: str | None, score: float = 0.0) -> RoundDecided:
    return RoundDecided(
        round=round_no, king_hotkey=hotkey, king_digest="sha256:" + "a" * 64, king_score=score
    )


def row(seq: int, hotkey: str, verdict: str, score: float, digest: str = "d") -> EvalRow:
    return EvalRow(
        seq=seq, ts=T0, eval_id=f"e{seq}", hotkey=hotkey, role="challenger", image="img",
        digest=digest, verdict=verdict, reason="ok" if verdict == "pass" else "slow",
        score=score, noise=0.01,
    )  # fmt: skip


# --- plain data ----------------------------------------------------------------------------------


def test_the_king_follows_the_crown_and_each_round_refreshes_its_score() -> None:
    assert current_king([]) == (None, 0)
    king, rounds = current_king(recorded([crowned("5A", 0.3, "e1"), decided(1, "5A", 0.28)]))
    assert (king.hotkey, king.score, king.eval_id, king.uid, rounds) == ("5A", 0.28, "e1", 3, 1)
    # A round that names another king's image leaves this king's score alone.
    other = RoundDecided(round=2, king_hotkey="5A", king_digest="sha256:other", king_score=9.0)
    king, rounds = current_king(recorded([crowned("5A", 0.3, "e1"), other]))
    assert (king.score, rounds) == (0.3, 1)
    dethroned = KingDethroned(hotkey="5A", digest="sha256:" + "a" * 64, eval_id="e2", reason="x")
    king, _ = current_king(recorded([crowned("5A", 0.3, "e1"), dethroned, decided(2, None)]))
    assert king is None


def test_the_leaderboard_ranks_each_submission_by_its_latest_evaluation() -> None:
    rows = [
        row(1, "5A", "pass", 0.30),
        row(2, "5B", "fail", 0.0),
        row(3, "5C", "pass", 0.50),
        row(4, "5A", "pass", 0.20),  # 5A's re-measurement replaces its first result
        row(5, "5D", "error", 0.0),
        row(6, "5A", "pass", 0.9, digest="d2"),  # a new image of 5A is a new submission
    ]
    board = leaderboard(reversed(rows))
    assert [(s.latest.hotkey, s.latest.digest, s.latest.score, s.evaluations) for s in board] == [
        ("5A", "d2", 0.9, 1),
        ("5C", "d", 0.5, 1),
        ("5A", "d", 0.2, 2),
        ("5D", "d", 0.0, 1),  # the rest, newest first
        ("5B", "d", 0.0, 1),
    ]
    assert [s.rank for s in board] == [1, 2, 3, 4, 5]
    assert board[2].latest.eval_id == "e4"


def test_rows_as_reads_sql_rows_by_column_name() -> None:
    expected = row(7, "5A", "pass", 0.5)
    columns = list(EvalRow.__struct_fields__)
    values = [getattr(expected, name) for name in columns]
    assert rows_as(EvalRow, columns, [values]) == [expected]
    assert rows_as(EvalRow, columns[::-1], [values[::-1]]) == [expected]


QUEUED = EvalQueued(
    eval_id="e1", hotkey="5A", image="img", digest="d", role="challenger", submitted_block=4,
    round_seed="0x1",
)  # fmt: skip
FINISHED = EvalFinished(
    eval_id="e1", hotkey="5A", digest="d", verdict="pass", reason="ok", score=0.3, noise=0.02,
    metrics={"c1_output_throughput_tps": 20.0, "exact_match": 1.0},
)  # fmt: skip


def test_an_eval_page_follows_the_evaluation_from_queued_to_finished() -> None:
    other = msgspec.structs.replace(QUEUED, eval_id="e9")
    assert eval_page("e1", recorded([other]), [], None, "") is None
    assert eval_page("e1", recorded([QUEUED]), [], None, "").status == "queued"
    started = EvalStarted(eval_id="e1", attempt=1, worker="w1")
    running = eval_page("e1", recorded([QUEUED, started]), [], None, "")
    assert (running.status, running.verdict, running.score) == ("running", "", None)
    events = [
        QUEUED,
        started,
        EvalStarted(eval_id="e1", attempt=2, worker="w2"),
        RoundOpened(round=4, block=9, seed="0x1", eval_ids=["e0", "e1"]),
        FINISHED,
    ]
    crown = [CrownChange(seq=6, ts=T0, change="crowned", hotkey="5A", eval_id="e1")]
    page = eval_page("e1", recorded(events), crown, None, "not kept")
    assert (page.status, page.verdict, page.score, page.image) == ("finished", "pass", 0.3, "img")
    assert [(a.attempt, a.worker) for a in page.attempts] == [(1, "w1"), (2, "w2")]
    assert page.round == 4 and page.crown == crown
    assert page.evidence_note == "not kept" and page.kept is None


def test_the_evidence_gives_the_gate_the_distributions_and_the_logs() -> None:
    kept = evidence_part(judged_evidence("e1"))
    assert kept.gate is not None and kept.gate.passed and kept.gate.reason == "ok"
    assert kept.gate.noise_floor == 0.02 and kept.gate.answers_rescored == 8
    assert set(kept.distributions) == {"baseline_before", "challenger", "baseline_after"}
    challenger = kept.distributions["challenger"]
    # Two counted levels of 4 requests, 8 tokens each (7 gaps), 10 ms apart.
    assert (challenger.ttft_ms.count, challenger.itl_ms.count) == (8, 56)
    assert challenger.ttft_ms.p50 == pytest.approx(10.0)
    assert kept.logs["challenger"].startswith("INFO serving")
    refused = evidence_part(Evidence(eval_id="e2", logs={"challenger": "no"}))
    assert refused.gate is None and refused.distributions == {}


def test_strings_from_the_log_are_text_never_markup() -> None:
    hostile = '<script>alert("x")</script>'
    failed = EvalFinished(
        eval_id="e1", hotkey="5A", digest="d", verdict="fail", reason=hostile, score=0.0,
        noise=0.0, metrics={},
    )  # fmt: skip
    kept = evidence_part(Evidence(eval_id="e1", logs={"challenger": hostile}))
    page = eval_page("e1", recorded([QUEUED, failed]), [], kept, "")
    hostile_row = msgspec.structs.replace(row(1, "5A", "fail", 0.0), reason=hostile)
    overview = Overview(
        king=None,
        rounds_decided=0,
        last_seq=2,
        leaderboard=leaderboard([hostile_row]),
        crown_history=[],
        evaluations=[hostile_row],
        weights=[],
    )
    for html in (render_eval(page, "", BASE), render_overview(overview, BASE)):
        assert "<script" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_an_eval_without_evidence_says_why() -> None:
    page = eval_page("e1", recorded([QUEUED, FINISHED]), [], None, "retention removed it")
    html = render_eval(page, "", BASE)
    assert "retention removed it" in html
    # What the log itself holds is still shown: the level's numbers, the gate's and score's.
    assert ">output_throughput_tps<" in html and ">exact_match<" in html


# --- routes over a real log -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    return write_run(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def opened(synthetic: SyntheticRun) -> Iterator[EventLog]:
    with EventLog(synthetic.log_path) as log:
        yield log


@pytest.fixture
def client(opened: EventLog) -> TestClient:
    # The evidence folder is found beside the log's file, as the gateway finds it.
    return TestClient(dashboard_app(LocalLogClient(opened)))


def test_the_overview_shows_the_king_the_leaderboard_the_crown_and_the_weights(
    client: TestClient,
) -> None:
    page = client.get(f"{BASE}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert run.KING in html and "0.4123" in html and "0.4321" in html  # refreshed, and crowned
    assert html.count(">pass<") >= 2 and ">fail<" in html and "2 rounds decided" in html
    assert f'href="{BASE}/eval/{run.CROWNING_EVAL}"' in html
    data = client.get(f"{BASE}/api/overview").json()
    assert data["king"]["hotkey"] == run.KING and data["king"]["score"] == run.REMEASURED_SCORE
    assert data["rounds_decided"] == 2
    board = [
        (s["latest"]["hotkey"], s["latest"]["verdict"], s["evaluations"])
        for s in data["leaderboard"]
    ]
    assert board == [
        (run.KING, "pass", 2),
        (run.CHEATER, "fail", 1),
    ]
    assert [c["change"] for c in data["crown_history"]] == ["crowned"]
    assert [(w["block"], w["success"]) for w in data["weights"]] == [
        (47, True),
        (46, False),
        (26, True),
    ]


def test_an_eval_page_has_its_metrics_plots_gate_and_container_logs(client: TestClient) -> None:
    html = client.get(f"{BASE}/eval/{run.CROWNING_EVAL}").text
    # Four per-level plots (throughput, TTFT, TTFT p90, ITL) and the distributions.
    assert html.count("<svg") == 5
    assert "output throughput" in html and "time to first token" in html
    assert "inter-token latency" in html
    assert ">output_throughput_tps<" in html and "max argmax gap" in html
    assert "INFO serving on :8000" in html and "answers re-scored" in html
    data = client.get(f"{BASE}/api/eval/{run.CROWNING_EVAL}").json()
    assert (data["status"], data["verdict"], data["score"]) == ("finished", "pass", run.KING_SCORE)
    assert data["round"] == 1 and data["crown"][0]["change"] == "crowned"
    assert data["baseline_before"]["c1_output_throughput_tps"] == pytest.approx(50.0)
    assert data["kept"]["gate"]["reason"] == "ok"
    assert data["kept"]["distributions"]["challenger"]["ttft_ms"]["count"] == 8
    assert "svg" not in client.get(f"{BASE}/api/eval/{run.CROWNING_EVAL}").text


def test_a_miners_reason_and_log_are_escaped_on_every_page(client: TestClient) -> None:
    for path in ("/", f"/eval/{run.CHEATER_EVAL}"):
        html = client.get(BASE + path).text
        assert "<script" not in html and "<b>bold" not in html
        assert "&lt;script&gt;alert(&quot;reason&quot;)&lt;/script&gt;" in html
    html = client.get(f"{BASE}/eval/{run.CHEATER_EVAL}").text
    assert "&lt;script&gt;alert(&quot;log&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold" in html
    assert "The gate did not run" in html
    headers = client.get(f"{BASE}/").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    data = client.get(f"{BASE}/api/eval/{run.CHEATER_EVAL}").json()
    assert data["reason"] == run.HOSTILE_REASON  # JSON keeps the text as it was logged
    assert data["kept"]["logs"]["challenger"] == run.HOSTILE_LOG


def test_a_running_eval_and_the_weights_page(client: TestClient) -> None:
    data = client.get(f"{BASE}/api/eval/{run.RUNNING_EVAL}").json()
    assert (data["status"], data["verdict"], data["round"]) == ("running", "", 3)
    assert "has not finished" in data["evidence_note"]
    assert client.get(f"{BASE}/eval/{run.RUNNING_EVAL}").status_code == 200
    html = client.get(f"{BASE}/weights").text
    assert "failed: &lt;b&gt;rate limited&lt;/b&gt;" in html and "1: 100.0%" in html
    assert len(client.get(f"{BASE}/api/weights").json()["weights"]) == 3


def test_an_unknown_eval_is_a_404_that_says_so(client: TestClient) -> None:
    page = client.get(f"{BASE}/eval/r9-<b>")
    assert page.status_code == 404
    assert "no evaluation &#x27;r9-&lt;b&gt;&#x27; in this event log" in page.text
    answer = client.get(f"{BASE}/api/eval/r9-9999")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "no evaluation 'r9-9999' in this event log: it was never queued here; the "
        "overview lists the evaluations there are"
    }


def test_altered_evidence_is_reported_not_shown(synthetic: SyntheticRun, tmp_path: Path) -> None:
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    for path in synthetic.evidence_dir.iterdir():
        (evidence_dir / path.name).write_bytes(path.read_bytes())
    logs = evidence_dir / f"{run.CROWNING_EVAL}.logs.parquet"
    logs.write_bytes(logs.read_bytes() + b"\0")
    with EventLog(synthetic.log_path) as log:
        client = TestClient(dashboard_app(LocalLogClient(log), evidence_dir))
        data = client.get(f"{BASE}/api/eval/{run.CROWNING_EVAL}").json()
        html = client.get(f"{BASE}/eval/{run.CROWNING_EVAL}").text
    assert data["kept"] is None and "was altered after the evaluation" in data["evidence_note"]
    assert "was altered after the evaluation" in html
    # Public pages name the file, not where this machine keeps it.
    assert str(tmp_path) not in data["evidence_note"] and str(tmp_path) not in html
    assert f"{EVIDENCE_DIR}/{run.CROWNING_EVAL}.logs.parquet" in data["evidence_note"]
    assert html.count("<svg") == 4  # the per-level plots come from the log's events


def test_the_dashboard_only_reads(
    synthetic: SyntheticRun, opened: EventLog, client: TestClient
) -> None:
    before = {p.name: p.read_bytes() for p in synthetic.evidence_dir.iterdir()}
    for path in ("/", "/weights", f"/eval/{run.CROWNING_EVAL}", "/api/overview"):
        assert client.get(BASE + path).status_code == 200
        assert client.post(BASE + path).status_code == 405
    assert client.get(BASE, follow_redirects=False).headers["location"].endswith(f"{BASE}/")
    assert opened.last_seq() == synthetic.last_seq
    assert opened.sql("SELECT count(*) FROM cursors")[1] == [(0,)]
    assert {p.name: p.read_bytes() for p in synthetic.evidence_dir.iterdir()} == before


def test_the_gateway_serves_the_dashboard_when_it_follows_a_log(
    synthetic: SyntheticRun, tmp_path: Path
) -> None:
    config = GatewayConfig(reference_endpoint="http://127.0.0.1:9", keys_file=str(tmp_path / "k"))
    with EventLog(synthetic.log_path) as log:
        # No lifespan: the gateway's background tasks (following the king) stay off.
        gateway = TestClient(create_app(config, LocalLogClient(log)))
        assert run.KING in gateway.get(f"{BASE}/").text
        assert gateway.get(f"{BASE}/api/eval/{run.CROWNING_EVAL}").json()["verdict"] == "pass"
        assert log.last_seq() == synthetic.last_seq
    assert TestClient(create_app(config)).get(f"{BASE}/").status_code == 404
