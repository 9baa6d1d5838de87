"""`arena history` and `arena sql`, against a log file and against the running log actor."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli import history
from events.log import EventLog
from tests.events.samples import HOTKEY, one_of_each

app = typer.Typer()
app.command("history")(history.history)
app.command("sql")(history.sql)
runner = CliRunner()


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = tmp_path / "events.duckdb"
    with EventLog(path) as log:
        log.append(one_of_each())
    return path


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "250"})


def test_history_shows_kings_evaluations_and_weights(log_file) -> None:
    result = run("history", "--log", str(log_file))
    assert result.exit_code == 0, result.output
    for expected in ("Kings over time", "crowned", "dethroned", "Recent evaluations", "ev-1"):
        assert expected in result.output
    assert "Weights set" in result.output and "0xabc" in result.output
    assert HOTKEY[:20] in result.output


def test_sql_prints_rows(log_file) -> None:
    query = "SELECT type, key FROM events WHERE type LIKE 'King%'"
    result = run("sql", query, "--log", str(log_file))
    assert result.exit_code == 0, result.output
    assert "3 rows" in result.output and "KingServing" in result.output


def test_sql_refuses_writes(log_file) -> None:
    result = run("sql", "DELETE FROM events", "--log", str(log_file))
    assert result.exit_code == 1
    assert "read-only" in result.output
    with EventLog(log_file) as log:
        assert log.last_seq() == len(one_of_each())


def test_a_missing_log_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = run("sql", "SELECT 1", "--log", str(tmp_path / "none.duckdb"))
    assert result.exit_code == 1
    assert "none.duckdb" in result.output and "--ray-address" in result.output


@pytest.mark.ray
def test_queries_go_through_the_actor_that_holds_the_file(
    ray_cluster, event_log_actor, monkeypatch
) -> None:
    from actors.log_client import LogClient

    client = LogClient(event_log_actor)
    client.append(one_of_each())
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster["gcs_address"])
    result = run("sql", "SELECT count(*) AS n FROM kings WHERE eval_id = 'ev-3'")
    assert result.exit_code == 0, result.output
    assert "1 rows" in result.output
    result = run("history")
    assert result.exit_code == 0, result.output
    assert "crowned" in result.output
    refused = run("sql", "DROP TABLE events")
    assert refused.exit_code == 1 and "read-only" in refused.output
