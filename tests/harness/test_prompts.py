"""Prompt sampling: seeded by the block hash, sized by the profile."""

from harness.prompts import CHARS_PER_TOKEN, sample_prompts


def test_same_seed_same_prompts_and_different_seed_different_prompts():
    a = sample_prompts("0xabc", 8, 64, 32)
    assert a == sample_prompts("0xabc", 8, 64, 32)
    b = sample_prompts("0xabd", 8, 64, 32)
    assert [p.text for p in a] != [p.text for p in b]


def test_prompts_meet_the_length_targets_and_vary():
    prompts = sample_prompts("seed", 16, 100, 7)
    assert all(len(p.text) >= 100 * CHARS_PER_TOKEN for p in prompts)
    assert all(p.output_tokens == 7 for p in prompts)
    assert [p.index for p in prompts] == list(range(16))
    assert len({p.text for p in prompts}) == 16
