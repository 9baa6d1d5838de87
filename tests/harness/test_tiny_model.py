"""The tiny model builds offline and byte-identically."""

import json
from pathlib import Path

from harness.tiny_model import FILES, OTHER_SEED, build


def test_two_builds_are_byte_identical_and_seeds_differ(tmp_path: Path):
    first = build(tmp_path / "a")
    second = build(tmp_path / "b")
    assert first == second
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert build(tmp_path / "c", OTHER_SEED) != first
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    template = json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())["chat_template"]
    assert "<|im_start|>" in template
