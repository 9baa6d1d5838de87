"""Golden encoded events: one stored form of each tag, checked in, that must keep decoding.

``golden/<tag>.json`` holds the bytes this code writes for one event of that type. Each must
decode to that type and encode back byte for byte: a renamed class, a changed tag, a field
renamed, retyped or reordered all fail here before they fail on someone's stored log. A new
event type needs a golden file of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from events.log import type_name
from events.types import KingCrowned, decode, encode, event_types

GOLDEN = Path(__file__).parent / "golden"
TAGS = sorted(type_name(t) for t in event_types())


def test_every_event_type_has_a_golden_sample_and_every_sample_a_type() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == TAGS


@pytest.mark.parametrize("tag", TAGS)
def test_a_golden_sample_decodes_and_encodes_back_byte_for_byte(tag: str) -> None:
    stored = (GOLDEN / f"{tag}.json").read_bytes().rstrip(b"\n")
    event = decode(stored)
    assert type_name(type(event)) == tag
    assert encode(event) == stored


def test_every_event_class_names_its_tag_in_its_definition() -> None:
    # The tag is written out, never derived from the class name, so a rename cannot change it.
    source = Path(decode.__code__.co_filename)
    explicit = {
        node.name: next(k.value.value for k in node.keywords if k.arg == "tag")
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.ClassDef)
        and any(k.arg == "tag" for k in node.keywords)
        and node.name != "Event"  # the base: tag=False, so an untagged subclass cannot decode
    }
    assert {cls.__name__: type_name(cls) for cls in event_types()} == explicit


def test_a_king_crowned_written_before_uid_and_submitted_block_still_decodes() -> None:
    older = (
        b'{"type":"KingCrowned","hotkey":"5A","digest":"sha256:a","image":"r/a","score":0.5,'
        b'"block":12,"eval_id":"ev-1","previous_hotkey":null,"v":1}'
    )
    event = decode(older)
    assert isinstance(event, KingCrowned)
    assert (event.hotkey, event.block, event.uid, event.submitted_block) == ("5A", 12, -1, 0)
