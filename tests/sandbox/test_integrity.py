"""Integrity on real parts: one evaluation round judges every honest engine and every cheat that
runs inside a server, against one baseline kept up for the round (``harness.eval.evaluate_round``).

Honest engines (the baseline image itself as a challenger, the reference miner, the compiled
and batching fast miner) must pass; the A/A check and the reference must score within the
noise and never be crowned. Each cheat ends with its own outcome:

- ``adv-replay`` remembers streamed answers and replays repeats: no request repeats within a
  measurement, so it serves everything from its engine, passes, and earns nothing;
- ``adv-stream-one`` streams its first answer and buffers the rest: ``buffered_stream``;
- ``cheater`` swaps tokens after a correct prefix: ``off_distribution``;
- ``adv-organic`` is honest with requests that look like the validator's, so it passes here:
  the gateway's organic checks are what catch it (tests/serve).

Real vLLM CPU containers: one baseline, then each challenger in turn, the local profile's
``challengers_per_baseline`` between two baseline measurements.
"""

from __future__ import annotations

from pathlib import Path

import docker
import msgspec
import pytest

from cli.replay import replay_eval
from events.types import EvalFinished
from harness.eval import EvalReport, Progress, evaluate_round
from harness.evidence import read as read_evidence
from harness.evidence import write as write_evidence
from harness.profile import Profile
from rules.crown import crowned_over_no_king

pytestmark = [pytest.mark.docker, pytest.mark.vllm]

SEED = "0x" + "5e" * 32
HONEST = ("baseline", "miner-ref", "miner-fast")
CHEATS = {
    "adv-replay": ("pass", "ok"),
    "adv-stream-one": ("fail", "buffered_stream"),
    "cheater": ("fail", "off_distribution"),
    "adv-organic": ("pass", "ok"),
}
# Earn nothing beyond what the baseline earns against itself.
WITHIN_NOISE = ("baseline", "miner-ref", "adv-replay", "adv-organic")
# What the round reported as it went (its on_progress), for the progress test.
PROGRESS: list[Progress] = []


@pytest.fixture(scope="module")
def evidence_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evidence")


@pytest.fixture(scope="module")
def integrity_round(
    sandbox_profile: Profile,
    docker_client: docker.DockerClient,
    built_images: dict[str, str],
    evidence_dir: Path,
) -> dict[str, EvalReport]:
    # 64-token answers (about 250 ms), so only a stall longer than a whole answer could merge an
    # honest stream into one network read (tests/harness/test_gate_vllm.py measured why).
    profile = msgspec.structs.replace(sandbox_profile, output_tokens=64)
    names = [*HONEST, *CHEATS]
    reports = evaluate_round(
        docker_client,
        [built_images[n] for n in names],
        profile,
        SEED,
        on_progress=PROGRESS.append,
        keep_evidence=lambda kept: write_evidence(evidence_dir, kept),
    )
    return dict(zip(names, reports, strict=True))


@pytest.mark.parametrize("name", HONEST)
def test_honest_engines_pass(name: str, integrity_round: dict[str, EvalReport]) -> None:
    report = integrity_round[name]
    assert (report.verdict, report.reason) == ("pass", "ok"), f"{report.reason}: {report.detail}"
    assert report.metrics["exact_match"] == 1.0


@pytest.mark.parametrize("name", CHEATS)
def test_each_cheat_ends_with_its_own_outcome(
    name: str, integrity_round: dict[str, EvalReport]
) -> None:
    report = integrity_round[name]
    assert (report.verdict, report.reason) == CHEATS[name], report.detail
    if report.verdict == "fail":
        assert report.score == 0.0


@pytest.mark.parametrize("name", WITHIN_NOISE)
def test_no_speed_of_its_own_is_never_crowned(
    name: str, integrity_round: dict[str, EvalReport]
) -> None:
    report = integrity_round[name]
    assert not crowned_over_no_king(
        score=report.score, passed=report.verdict == "pass", noise=report.noise
    ), f"{name} scored {report.score:.4f} against noise {report.noise:.4f}: {report.metrics}"


def test_the_fast_miner_is_crowned_over_no_king(integrity_round: dict[str, EvalReport]) -> None:
    report = integrity_round["miner-fast"]
    assert crowned_over_no_king(
        score=report.score, passed=report.verdict == "pass", noise=report.noise
    ), f"score {report.score:.4f}, noise {report.noise:.4f}"


def test_every_challenger_is_bracketed_by_two_baseline_measurements(
    integrity_round: dict[str, EvalReport], sandbox_profile: Profile
) -> None:
    """challengers_per_baseline share a bracket; its "after" is the next bracket's "before"."""
    measured = [r for r in integrity_round.values() if r.baseline_after]
    assert len(measured) == len(integrity_round)  # every image here gets as far as the gate
    brackets: list[list[EvalReport]] = []
    for report in measured:
        if brackets and report.baseline_before == brackets[-1][0].baseline_before:
            brackets[-1].append(report)
        else:
            brackets.append([report])
    per = sandbox_profile.challengers_per_baseline
    assert per > 1, "the shipped local profile measures several challengers per bracket"
    assert [len(b) for b in brackets] == [
        min(per, len(measured) - k) for k in range(0, len(measured), per)
    ]
    for bracket in brackets:
        assert all(r.baseline_after == bracket[0].baseline_after for r in bracket)
        assert bracket[0].baseline_after != bracket[0].baseline_before
    for earlier, later in zip(brackets, brackets[1:], strict=False):
        assert later[0].baseline_before == earlier[0].baseline_after


def test_progress_follows_every_phase_and_every_pass(
    integrity_round: dict[str, EvalReport], sandbox_profile: Profile
) -> None:
    phases: dict[int, list[str]] = {}
    passes: dict[tuple[int, str], dict[tuple[int, int], tuple[int, int]]] = {}
    for p in PROGRESS:
        seen = phases.setdefault(p.image, [])
        if not seen or seen[-1] != p.phase:
            seen.append(p.phase)
        if p.requests:
            sent = passes.setdefault((p.image, p.phase), {})
            sent[p.concurrency, p.pass_index] = (p.done, p.requests)
    # The last challenger of each bracket (and of the round) waits for the baseline's "after".
    per, images = sandbox_profile.challengers_per_baseline, len(integrity_round)
    closes = {i for i in range(images) if i % per == per - 1 or i == images - 1}
    assert phases == {
        i: [
            "pull",
            *(["baseline_before"] if i == 0 else []),
            "challenger",
            *(["baseline_after"] if i in closes else []),
            "gate",
            "done",
        ]
        for i in range(images)
    }
    levels = [(0, 0)] + [
        (c, n) for c in sandbox_profile.concurrency_levels for n in range(sandbox_profile.passes)
    ]
    assert (0, "baseline_before") in passes
    for (image, phase), sent in passes.items():
        assert list(sent) == levels, (image, phase)
        # Every measured request was counted (the warm-up's are not: done stays 0).
        assert all(done == requests for (c, _), (done, requests) in sent.items() if c), sent


@pytest.mark.parametrize("name", [*HONEST, *CHEATS])
def test_each_verdict_and_score_replays_from_its_evidence(
    name: str, integrity_round: dict[str, EvalReport], evidence_dir: Path
) -> None:
    report = integrity_round[name]
    logged = EvalFinished(
        eval_id=report.eval_id, hotkey=name, digest="sha256:" + "0" * 64,
        verdict=report.verdict, reason=report.reason, score=report.score, noise=report.noise,
        metrics={}, evidence=report.evidence,
    )  # fmt: skip
    replayed = replay_eval(logged, read_evidence(evidence_dir, report.eval_id, report.evidence))
    assert replayed.replayed is not None and replayed.differences == []
