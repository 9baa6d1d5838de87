"""`arena eval`'s one-file HTML report, rendered from plain reports."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import msgspec

from harness.eval import EvalReport
from harness.report_html import render_html
from tests.harness.plain import judged_evidence


def _metrics(throughput: float) -> dict[str, float]:
    return {
        f"c{c}_{name}": value * c
        for c in (1, 4)
        for name, value in [("output_throughput_tps", throughput), ("median_ttft_ms", 50.0)]
    }


PASSED = EvalReport(
    image="127.0.0.1:5000/arena/miner-fast@sha256:" + "f" * 64,
    profile="local",
    seed="0x5e",
    verdict="pass",
    reason="ok",
    score=0.4321,
    noise=0.01,
    metrics=_metrics(300.0) | {"exact_match": 1.0},
    baseline_before=_metrics(100.0),
    baseline_after=_metrics(101.0),
    logs={"challenger": "serving <on> 0.0.0.0:8000 & ready"},
    seconds={"pull": 1.5},
)
REJECTED = EvalReport(
    image="127.0.0.1:5000/x@sha256:" + "0" * 64,
    profile="local",
    seed="0x5e",
    verdict="fail",
    reason="manifest_not_found",
    detail="the registry has no manifest <sha256:000>",
)


class _Page(HTMLParser):
    """Collects what the tests look at: element names, inline SVGs, table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self._in_cell = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        self._in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)


def test_one_self_contained_page_with_tables_and_inline_plots() -> None:
    page = render_html([PASSED, REJECTED])
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tags.count("svg") == 4  # the measured image's plots; none for the rejected
    # Self-contained: no scripts, and every reference points inside the page.
    assert "script" not in parsed.tags
    assert all(ref.startswith("#") for ref in re.findall(r'(?:src|href)="([^"]*)"', page))
    clips = re.findall(r'<clipPath id="([^"]+)"', page)
    assert clips and len(clips) == len(set(clips))  # no plot borrows another's clip path
    # Per level: the challenger's numbers between the baseline's two measurements.
    for row in (
        ["1", "output_throughput_tps", "100.00", "300.00", "101.00"],
        ["4", "output_throughput_tps", "400.00", "1200.00", "404.00"],
        ["4", "median_ttft_ms", "200.00", "200.00", "200.00"],
        ["4", "p90_ttft_ms", "-", "-", "-"],
    ):
        assert any(parsed.cells[i : i + 5] == row for i in range(len(parsed.cells))), row
    assert "0.4321" in parsed.cells and "manifest_not_found" in parsed.cells
    text = "".join(parsed.text)
    # Logs and details are text, never markup.
    assert "serving <on> 0.0.0.0:8000 & ready" in text and "<on>" not in page
    assert "the registry has no manifest <sha256:000>" in text


def test_an_empty_round_still_renders() -> None:
    parsed = _Page()
    parsed.feed(render_html([]))
    assert "svg" not in parsed.tags and "table" in parsed.tags


def test_kept_evidence_adds_ttft_and_itl_distributions() -> None:
    with_evidence = msgspec.structs.replace(PASSED, eval_id="r1-0001")
    without = _Page()
    without.feed(render_html([with_evidence]))
    page = render_html([with_evidence], {"r1-0001": judged_evidence("r1-0001")})
    parsed = _Page()
    parsed.feed(page)
    assert parsed.tags.count("svg") == without.tags.count("svg") + 1
    text = "".join(parsed.text)
    assert "time to first token" in text and "inter-token latency" in text
    clips = re.findall(r'<clipPath id="([^"]+)"', page)
    assert len(clips) == len(set(clips))
