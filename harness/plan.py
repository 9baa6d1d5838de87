"""The prompt plan: which prompt every request of one measurement sends, drawn from the round seed.

A server that remembers answers must earn nothing, so within one measurement no request body
repeats: the warm-up, every concurrency level and every pass draw their own prompts. Across a
round, measurement *slot* ``k`` has its own plan: the challenger measured in slot ``k`` and the
baseline measured just before it (also slot ``k``) get the same prompts in the same positions,
which is what lets the gate pair their answers; the next baseline measurement (slot ``k + 1``)
draws fresh prompts, so a baseline kept up across a round never serves a prompt twice either.

    plan = plan_measurement(seed, slot, profile)
    plan.warmup                      # sent first, one at a time; never scored
    plan.pass_prompts(concurrency, n) # the prompts of pass ``n`` at that concurrency
"""

from __future__ import annotations

import msgspec

from harness.profile import Profile
from harness.prompts import Prompt, PromptSource, sample_prompts

__all__ = ["PromptPlan", "plan_measurement"]

# A prompt source may return the same text twice (a dataset with duplicates); the plan draws
# again with a derived seed until it has enough distinct prompts, at most this many times.
_MAX_DRAWS = 8


class PromptPlan(msgspec.Struct, frozen=True, kw_only=True):
    seed: str
    slot: int
    warmup: list[Prompt]
    # passes[i] holds one pass of every level, in the order of ``concurrency_levels``.
    concurrency_levels: tuple[int, ...]
    passes: list[list[list[Prompt]]]

    def pass_prompts(self, concurrency: int, pass_index: int) -> list[Prompt]:
        try:
            level = self.concurrency_levels.index(concurrency)
        except ValueError:
            raise KeyError(f"no level with concurrency {concurrency} in this plan") from None
        return self.passes[pass_index][level]

    def all_prompts(self) -> list[Prompt]:
        """Every prompt of the plan, warm-up first, in the order they are sent."""
        return [*self.warmup, *(p for one in self.passes for level in one for p in level)]


def _distinct(seed: str, count: int, profile: Profile, source: PromptSource | None) -> list[Prompt]:
    """``count`` prompts with pairwise different texts, indexed 0..count-1."""
    texts: list[str] = []
    seen: set[str] = set()
    for draw in range(_MAX_DRAWS):
        for prompt in sample_prompts(
            f"{seed}#{draw}", count, profile.input_tokens, profile.output_tokens, source
        ):
            if prompt.text not in seen and len(texts) < count:
                seen.add(prompt.text)
                texts.append(prompt.text)
        if len(texts) == count:
            return [Prompt(i, text, profile.output_tokens) for i, text in enumerate(texts)]
    raise ValueError(
        f"the prompt source gave only {len(texts)} distinct prompts of the {count} a "
        f"measurement needs; use a larger corpus or fewer prompts per level"
    )


def plan_measurement(
    seed: str, slot: int, profile: Profile, source: PromptSource | None = None
) -> PromptPlan:
    """The plan of measurement slot ``slot`` in the round seeded by ``seed`` (a block hash)."""
    levels = profile.concurrency_levels
    per_pass = len(levels) * profile.num_prompts
    prompts = _distinct(
        f"{seed}/slot{slot}", profile.warmup_requests + profile.passes * per_pass, profile, source
    )
    warmup, rest = prompts[: profile.warmup_requests], prompts[profile.warmup_requests :]
    n = profile.num_prompts
    passes = [
        [rest[p * per_pass + i * n : p * per_pass + (i + 1) * n] for i in range(len(levels))]
        for p in range(profile.passes)
    ]
    return PromptPlan(
        seed=seed, slot=slot, warmup=warmup, concurrency_levels=tuple(levels), passes=passes
    )
