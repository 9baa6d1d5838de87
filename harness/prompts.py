"""Prompts for one round, drawn with the round's seed (the block hash).

The same seed always gives the same prompts and a different seed gives different ones, so
prompts are unpredictable before the block yet reproducible by anyone auditing the round.
``PromptSource`` is the plug point: ``CorpusPromptSource`` samples the bundled corpus; production
can pass any object with the same ``sample`` method (e.g. a dataset reader).
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from pathlib import Path
from typing import Protocol

import msgspec

__all__ = [
    "CorpusPromptSource",
    "Prompt",
    "PromptSource",
    "sample_prompts",
    "CORPUS",
    "CHARS_PER_TOKEN",
]

CORPUS = Path(__file__).parent / "data" / "corpus.txt"
# English prose runs about four characters per token for BPE tokenizers; input lengths are
# targets, not exact counts, since the harness does not know the served model's tokenizer.
CHARS_PER_TOKEN = 4

_INSTRUCTIONS = (
    "Continue the following text.",
    "Summarise the passage below.",
    "Rewrite this in plain words.",
    "Answer questions about this passage.",
    "Translate the mood of this text into a short poem.",
)


class Prompt(msgspec.Struct, frozen=True):
    index: int
    text: str
    output_tokens: int


class PromptSource(Protocol):
    def sample(
        self, seed: str, count: int, input_tokens: int, output_tokens: int
    ) -> list[Prompt]: ...


def _rng(seed: str) -> random.Random:
    return random.Random(hashlib.sha256(seed.encode()).digest())


@cache
def _corpus_lines() -> tuple[str, ...]:
    return tuple(line for line in CORPUS.read_text().splitlines() if line.strip())


class CorpusPromptSource:
    """Prompts built from random runs of sentences of the bundled corpus."""

    def sample(self, seed: str, count: int, input_tokens: int, output_tokens: int) -> list[Prompt]:
        rng = _rng(seed)
        lines = _corpus_lines()
        target_chars = input_tokens * CHARS_PER_TOKEN
        prompts = []
        for index in range(count):
            parts = [rng.choice(_INSTRUCTIONS)]
            length = len(parts[0])
            while length < target_chars:
                sentence = lines[rng.randrange(len(lines))]
                parts.append(sentence)
                length += len(sentence) + 1
            prompts.append(Prompt(index, " ".join(parts), output_tokens))
        return prompts


def sample_prompts(
    seed: str,
    count: int,
    input_tokens: int,
    output_tokens: int,
    source: PromptSource | None = None,
) -> list[Prompt]:
    """``count`` prompts for the round seeded by ``seed`` (the block hash, hex or any string)."""
    return (source or CorpusPromptSource()).sample(seed, count, input_tokens, output_tokens)
