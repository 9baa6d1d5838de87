"""The image reference grammar, with plain strings: examples, and properties against the OCI
distribution reference grammar written out below as the oracle."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rules.image_ref import (
    MAX_SUBMISSION_BYTES,
    ImageRef,
    ImageRefError,
    parse_pinned_ref,
    parse_submission_ref,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4

# The oracle: distribution/reference's regexp.go, transcribed (Go's \w is ASCII: re.ASCII).
ALPHANUMERIC = r"[a-z0-9]+"
SEPARATOR = r"(?:[._]|__|[-]+)"
DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN_NAME = rf"{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*"
HOST = rf"(?:{DOMAIN_NAME}|{IPV6_ADDRESS})"
DOMAIN_AND_PORT = rf"{HOST}(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST_PATTERN = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
PATH_COMPONENT = rf"{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*"
REMOTE_NAME = rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"
NAME = rf"(?:{DOMAIN_AND_PORT}/)?{REMOTE_NAME}"
REFERENCE = re.compile(rf"({NAME})(?::({TAG}))?(?:@({DIGEST_PATTERN}))?", re.ASCII)
ANCHORED_DOMAIN = re.compile(rf"{HOST}(?::([0-9]+))?", re.ASCII)
NAME_TOTAL_LENGTH_MAX = 255


def oci_pinned(text: str) -> ImageRef | None:
    """What the OCI grammar plus Docker's domain split make of ``text``, narrowed to Arena's
    rules (a sha256 digest required, a port in 1-65535); None where that refuses it."""
    match = REFERENCE.fullmatch(text)
    if match is None:
        return None
    name, tag, digest = match.groups()
    if digest is None or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return None
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        return None
    # normalize.go splitDockerDomain: is the first component a registry?
    first, slash, rest = name.partition("/")
    is_domain = slash and (
        any(c in first for c in ".:") or first == "localhost" or first.lower() != first
    )
    if not is_domain:
        # ParseNormalizedNamed parses "docker.io/" + name again: it must be a remote name.
        if not re.fullmatch(REMOTE_NAME, name):
            return None
        return ImageRef(domain=None, path=name, tag=tag, digest=digest)
    domain = ANCHORED_DOMAIN.fullmatch(first)
    if domain is None or (domain.group(1) is not None and not 1 <= int(domain.group(1)) <= 65535):
        return None
    return ImageRef(domain=first, path=rest, tag=tag, digest=digest)


def oci_submission(text: str) -> ImageRef | None:
    ref = oci_pinned(text)
    if ref is None or ref.domain is None or len(text.encode()) > MAX_SUBMISSION_BYTES:
        return None
    return ref


def arena(parse, text: str) -> ImageRef | None:
    try:
        return parse(text)
    except ImageRefError:
        return None


# References built from the grammar's parts (mostly valid), references drawn from the OCI
# grammar itself (any digest, or none), and text near both.
sha256_digests = st.text("0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__)


def _grammar(pattern: str, flags: int = re.ASCII) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(pattern, flags), fullmatch=True)


domains = st.builds(
    lambda host, port: host + ("" if port is None else f":{port}"),
    _grammar(HOST).filter(lambda h: len(h) < 24) | st.sampled_from(["localhost", "Registry"]),
    st.none() | st.integers(0, 70000),
)
built = st.builds(
    lambda domain, path, tag, digest: (
        (f"{domain}/" if domain else "")
        + "/".join(path)
        + (f":{tag}" if tag else "")
        + f"@{digest}"
    ),
    st.none() | domains,
    st.lists(_grammar(PATH_COMPONENT).filter(lambda c: len(c) < 12), min_size=1, max_size=3),
    st.none() | _grammar(TAG).filter(lambda t: len(t) < 12),
    sha256_digests,
)
references = st.builds(
    lambda name, tag, digest: name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else ""),
    _grammar(NAME),
    st.none() | _grammar(TAG),
    st.none() | sha256_digests | _grammar(DIGEST_PATTERN, 0),
)
NEAR_MISSES = list("aZ09._-:/@[]") + ["é", "ß", "٣", "ｆ", " ", "\t", "__", "--", ":0", ":65536"]


@st.composite
def mutated(draw) -> str:
    text = draw(built | references)
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(NEAR_MISSES)) + text[at:]


noise = st.builds(
    lambda body, digest: body + (f"@{digest}" if digest else ""),
    st.lists(st.sampled_from(NEAR_MISSES), max_size=16).map("".join),
    st.none() | sha256_digests,
)
candidates = built | mutated() | references | noise
# No time limits: a shared, loaded machine must not fail a property that holds.
untimed = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


@untimed
@given(candidates)
@example(f"ghcr.io/org/miner:vé@{DIGEST}")
@example(f"ghcr.io:0/miner@{DIGEST}")
@example(f"ghcr.io:65536/miner@{DIGEST}")
@example(f"a_b.c/miner@{DIGEST}")
@example(f"Registry/miner@{DIGEST}")
@example(f"[0]/0@{DIGEST}")
def test_the_pinned_parser_is_the_oci_grammar_narrowed(text: str) -> None:
    assert arena(parse_pinned_ref, text) == oci_pinned(text)


@untimed
@given(candidates)
@example(f"ghcr.io/org/miner:v1@{DIGEST}")
@example(f"org/miner@{DIGEST}")
def test_the_submission_parser_is_the_oci_grammar_with_a_registry_in_128_bytes(text: str) -> None:
    assert arena(parse_submission_ref, text) == oci_submission(text)


@untimed
@given(candidates)
def test_what_a_miner_may_commit_the_sandbox_pulls_by_the_same_digest(text: str) -> None:
    submitted = arena(parse_submission_ref, text)
    if submitted is not None:
        pulled = parse_pinned_ref(text)
        assert (pulled, pulled.pinned) == (submitted, f"{submitted.name}@{submitted.digest}")


@untimed
@given(built | references)
def test_a_parsed_reference_prints_back_as_written(text: str) -> None:
    ref = arena(parse_pinned_ref, text)
    if ref is not None:
        assert str(ref) == text


@pytest.mark.parametrize(
    ("payload", "image"),
    [
        (f"ghcr.io/org/miner@{DIGEST}", "ghcr.io/org/miner"),
        (f"ghcr.io/org/miner:v1.2-rc_3@{DIGEST}", "ghcr.io/org/miner:v1.2-rc_3"),
        (f"127.0.0.1:5000/arena/miner:local@{DIGEST}", "127.0.0.1:5000/arena/miner:local"),
        (f"localhost/a__b/c-d/e.f@{DIGEST}", "localhost/a__b/c-d/e.f"),
        (f"[::1]:5000/miner@{DIGEST}", "[::1]:5000/miner"),
        (f"registry.example.com:443/a/b/c/d@{DIGEST}", "registry.example.com:443/a/b/c/d"),
    ],
)
def test_valid_references_parse_into_image_and_digest(payload: str, image: str) -> None:
    ref = parse_submission_ref(payload)
    assert ref.image == image
    assert ref.digest == DIGEST
    assert str(ref) == payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "empty"),
        ("ghcr.io/org/miner:v1", "missing '@sha256"),
        (f"ghcr.io/org/miner@{DIGEST[:-1]}", "64 lowercase hex"),
        (f"ghcr.io/org/miner@{DIGEST.upper().replace('SHA256', 'sha256')}", "64 lowercase hex"),
        ("ghcr.io/m@sha512:" + "a" * 64, "algorithm must be sha256"),
        (f"org/miner@{DIGEST}", "must start with its registry host"),
        (f"miner@{DIGEST}", "must start with its registry host"),
        (f"ghcr.io/Org/miner@{DIGEST}", "path component 'Org'"),
        (f"ghcr.io/org//miner@{DIGEST}", "path component ''"),
        (f"ghcr.io/org/miner-@{DIGEST}", "path component 'miner-'"),
        (f"ghcr.io/org/miner:-bad@{DIGEST}", "tag '-bad'"),
        (f"ghcr.io/org/miner:@{DIGEST}", "tag ''"),
        (f"-ghcr.io/miner@{DIGEST}", "registry '-ghcr.io'"),
        (f"ghcr.io:port/miner@{DIGEST}", "registry 'ghcr.io:port'"),
        (f"ghcr.io:0/miner@{DIGEST}", "port 1-65535"),
        (f"ghcr.io:65536/miner@{DIGEST}", "port 1-65535"),
        (f"ghcr.io/org/miner:vé@{DIGEST}", "non-ASCII"),
        (f"ghcr.io/@{DIGEST}", "no repository path"),
        (f" ghcr.io/org/miner@{DIGEST}", "whitespace"),
        (f"ghcr.io/org/mi ner@{DIGEST}", "whitespace"),
        (f"ghcr.io/org@x/miner@{DIGEST}", "more than one '@'"),
    ],
)
def test_invalid_references_name_what_is_wrong(payload: str, reason: str) -> None:
    with pytest.raises(ImageRefError) as info:
        parse_submission_ref(payload)
    assert reason in info.value.reason


def test_payload_over_128_bytes_is_refused_and_128_is_accepted() -> None:
    prefix = "ghcr.io/"
    room = MAX_SUBMISSION_BYTES - len(prefix) - len(DIGEST) - 1
    fits = f"{prefix}{'a' * room}@{DIGEST}"
    assert len(fits.encode()) == MAX_SUBMISSION_BYTES
    assert parse_submission_ref(fits).path == "a" * room
    with pytest.raises(ImageRefError, match="129 bytes"):
        parse_submission_ref(f"{prefix}{'a' * (room + 1)}@{DIGEST}")


@pytest.mark.parametrize(
    ("ref", "registry", "repository"),
    [
        (f"127.0.0.1:5000/arena/miner@{DIGEST}", "127.0.0.1:5000", "arena/miner"),
        (f"vllm/vllm-openai@{DIGEST}", "registry-1.docker.io", "vllm/vllm-openai"),
        (f"ubuntu@{DIGEST}", "registry-1.docker.io", "library/ubuntu"),
    ],
)
def test_the_pinned_parser_finds_where_to_pull(ref: str, registry: str, repository: str) -> None:
    parsed = parse_pinned_ref(ref)
    assert (parsed.registry, parsed.repository) == (registry, repository)
