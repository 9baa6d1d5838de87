"""Golden encoded events: one stored form of each tag, checked in, that must keep decoding.

``golden/<tag>.json`` holds the bytes this code writes for one event of that type. Each must
decode to that type and encode back byte for byte: a renamed class, a changed tag, a field
renamed, retyped or reordered all fail here before they fail on someone's stored log. A new
event type needs a golden file of its own. When a field is added (with a default, at the end),
the form written before it moves to ``golden_older/<tag>.before-<field>.json``, which must keep
decoding.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import msgspec
import pytest

from events.log import type_name
from events.types import KingCrowned, decode, encode, event_types

GOLDEN = Path(__file__).parent / "golden"
OLDER = Path(__file__).parent / "golden_older"
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


@pytest.mark.parametrize("path", sorted(OLDER.glob("*.json")), ids=lambda p: p.stem)
def test_an_older_stored_form_still_decodes_keeping_every_stored_field(path: Path) -> None:
    # golden_older/<tag>.<what came later>.json: a form written before fields were added.
    stored = json.loads(path.read_bytes())
    event = decode(path.read_bytes())
    assert type_name(type(event)) == stored.pop("type") == path.name.split(".")[0]
    assert {name: getattr(event, name) for name in stored} == stored
    assert set(msgspec.structs.asdict(event)) > set(stored), "a later field took its default"


def test_older_forms_are_kept_for_the_fields_added_since() -> None:
    assert {p.name.split(".")[0] for p in OLDER.glob("*.json")} >= {"KingCrowned", "RoundDecided"}
    older = decode((OLDER / "KingCrowned.before-uid.json").read_bytes())
    assert isinstance(older, KingCrowned)
    assert (older.uid, older.submitted_block) == (-1, 0)
