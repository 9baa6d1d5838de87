"""The prompt plan on plain data: nothing a server could remember repeats within a measurement
or across a round, and the baseline and the challenger of one slot are sent the same prompts."""

import msgspec
import pytest

from harness.plan import plan_measurement
from harness.profile import get_profile
from harness.prompts import Prompt

PROFILE = msgspec.structs.replace(
    get_profile("local"), num_prompts=8, warmup_requests=2, concurrency_levels=(1, 4), passes=3
)
SEED = "0x" + "cd" * 32


def _bodies(prompts: list[Prompt]) -> list[str]:
    return [p.text for p in prompts]


def test_no_prompt_repeats_within_a_measurement():
    plan = plan_measurement(SEED, 0, PROFILE)
    sent = _bodies(plan.all_prompts())
    assert len(sent) == 2 + 2 * 3 * 8
    assert len(set(sent)) == len(sent)
    # Indices are unique too: the gate caches tokenized prompts by index.
    assert len({p.index for p in plan.all_prompts()}) == len(sent)


def test_every_pass_and_level_has_its_own_prompts():
    plan = plan_measurement(SEED, 0, PROFILE)
    groups = [
        set(_bodies(plan.pass_prompts(c, p)))
        for c in PROFILE.concurrency_levels
        for p in range(PROFILE.passes)
    ]
    groups.append(set(_bodies(plan.warmup)))
    assert [len(g) for g in groups] == [8] * 6 + [2]
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not a & b


def test_slots_of_one_round_share_no_prompt():
    slots = [set(_bodies(plan_measurement(SEED, k, PROFILE).all_prompts())) for k in range(4)]
    for i, a in enumerate(slots):
        for b in slots[i + 1 :]:
            assert not a & b


def test_the_same_slot_gives_both_arms_the_same_prompts_in_the_same_positions():
    baseline = plan_measurement(SEED, 2, PROFILE)
    challenger = plan_measurement(SEED, 2, PROFILE)
    assert baseline == challenger
    assert baseline.pass_prompts(4, 1) == challenger.pass_prompts(4, 1)


def test_another_seed_gives_other_prompts():
    a = set(_bodies(plan_measurement(SEED, 0, PROFILE).all_prompts()))
    b = set(_bodies(plan_measurement("0x" + "ce" * 32, 0, PROFILE).all_prompts()))
    assert not a & b


class _RepeatingSource:
    """A dataset with only ``distinct`` different texts, returned over and over."""

    def __init__(self, distinct: int) -> None:
        self.distinct = distinct

    def sample(self, seed: str, count: int, input_tokens: int, output_tokens: int):
        return [Prompt(i, f"text {i % self.distinct}", output_tokens) for i in range(count)]


def test_a_source_with_duplicates_is_deduplicated_or_refused():
    small = msgspec.structs.replace(PROFILE, num_prompts=2, passes=1, concurrency_levels=(1,))
    plan = plan_measurement(SEED, 0, small, _RepeatingSource(distinct=4))
    assert len(set(_bodies(plan.all_prompts()))) == 4
    with pytest.raises(ValueError, match="distinct prompts"):
        plan_measurement(SEED, 0, PROFILE, _RepeatingSource(distinct=4))


def test_an_unknown_level_is_a_clear_error():
    with pytest.raises(KeyError, match="concurrency 2"):
        plan_measurement(SEED, 0, PROFILE).pass_prompts(2, 0)
