"""The dashboard in a real browser: served on a port by uvicorn over a real event log and
evidence (``dashboard_log``), rendered by headless chromium, with a screenshot kept."""

from __future__ import annotations

from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

from chain.chopsticks import free_port
from events.client import LocalLogClient
from events.log import EventLog
from serve_apps.dashboard import dashboard_app
from tests.fixtures.browser import chromium, rendered_dom, screenshot
from tests.serve import dashboard_log as run
from tests.serve.conftest import serve_in_thread


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard's base URL, over the synthetic history."""
    chromium()  # skip (fail under CI) before building anything when there is no browser
    written = run.write_run(tmp_path_factory.mktemp("dashboard-browser"))
    with (
        EventLog(written.log_path) as log,
        serve_in_thread(dashboard_app(LocalLogClient(log)), free_port()) as url,
    ):
        yield f"{url}/dashboard"


def test_the_overview_renders_with_the_runs_data(dashboard: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{dashboard}/")
    text = unescape(dom)
    assert run.KING in text and f"{run.REMEASURED_SCORE:.4f}" in text
    assert f"{run.KING_SCORE:.4f}" in text  # the crowning, in the crown history
    for heading in ("Leaderboard", "Crown history", "Recent evaluations", "Weights"):
        assert f"<h2>{heading}" in dom
    assert ">pass</span>" in dom and ">fail</span>" in dom
    # The miner's markup stayed text: the browser built no element from it.
    assert "<script" not in dom and run.HOSTILE_REASON in text
    shot = screenshot(f"{dashboard}/", tmp_path / "dashboard.png")
    assert shot.stat().st_size > 10_000


def test_an_eval_page_renders_its_plots_gate_and_logs(dashboard: str, tmp_path: Path) -> None:
    dom = rendered_dom(f"{dashboard}/eval/{run.CROWNING_EVAL}")
    assert dom.count("<svg") == 5
    assert "Metrics per level" in dom and "max argmax gap" in dom
    assert "INFO serving on :8000" in dom and "<script" not in dom
    screenshot(f"{dashboard}/eval/{run.CROWNING_EVAL}", tmp_path / "eval.png")
