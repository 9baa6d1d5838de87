"""A round on a node that cannot keep the baseline up beside a challenger (``sn-h200``'s order),
on real vLLM CPU containers: two challengers share one bracket, so the baseline starts twice
in all (B0, then B1 after both), and both are scored against the same two measurements."""

from __future__ import annotations

import time

import docker
import msgspec
import pytest

from harness.eval import evaluate_round
from harness.profile import Profile
from harness.runner import LABEL

pytestmark = [pytest.mark.docker, pytest.mark.vllm]


def test_two_challengers_share_a_bracket_on_a_node_that_restarts_the_baseline(
    sandbox_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    profile = msgspec.structs.replace(
        sandbox_profile, baseline_stays_up=False, challengers_per_baseline=2
    )
    since = int(time.time())
    # The baseline image twice (A/A): honest, so both are measured and gated.
    reports = evaluate_round(
        docker_client,
        [built_images["baseline"]] * 2,
        profile,
        "0x" + "0b" * 32,
        eval_ids=["order-a", "order-b"],
    )
    assert [(r.verdict, r.reason) for r in reports] == [("pass", "ok")] * 2, reports
    first, second = reports
    assert first.baseline_before == second.baseline_before
    assert first.baseline_after == second.baseline_after
    assert first.baseline_before != first.baseline_after
    started = [
        e["Actor"]["Attributes"]["name"]
        for e in docker_client.events(
            since=since,
            until=int(time.time()) + 1,
            filters={"type": "container", "event": "start", "label": LABEL},
            decode=True,
        )
    ]
    baselines = [n for n in started if n.startswith("arena-order-a-baseline-")]
    challengers = [n for n in started if "-challenger-" in n and n.startswith("arena-order-")]
    assert (len(baselines), len(challengers)) == (2, 2), started
