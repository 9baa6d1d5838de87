"""`arena bench` end to end against the shared vLLM server (as both baseline and challenger)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.fixtures.vllm import VllmServer

pytestmark = pytest.mark.vllm


def test_arena_bench_writes_a_report_and_a_plot(vllm_server: VllmServer, tmp_path: Path):
    out = tmp_path / "report"
    url = vllm_server.url
    result = CliRunner().invoke(app, ["bench", url, url, "--num-prompts", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["verdict"]["passed"] is True
    assert report["verdict"]["reason"] == "ok"
    assert len(report["challenger"]["runs"][0]["results"]) == 8
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "gate: ok" in result.output
