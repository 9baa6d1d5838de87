"""Weights on a node, with the tiny model: the manifest, the sync, the evaluator's refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docker
import msgspec
import pytest

from harness.eval import evaluate_round
from harness.profile import get_profile
from harness.weights import (
    ModelMismatch,
    build_manifest,
    fetch_command,
    main,
    mismatches,
    require_model,
    sync,
)

WEIGHTS = "model.safetensors"


@pytest.fixture
def manifest(tiny_model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sha256.json"
    path.write_text(json.dumps(build_manifest(tiny_model_dir)))
    return path


@pytest.fixture
def copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "copy"))


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_the_tiny_model_matches_its_manifest_and_a_changed_byte_does_not(
    manifest: Path, copy: Path
) -> None:
    assert WEIGHTS in json.loads(manifest.read_text())
    require_model(str(copy), str(manifest))  # matches
    assert (copy.parent / ".copy.verified.json").is_file()  # the next check skips the hashing
    flip_one_byte(copy / WEIGHTS)  # same size: only the hash tells
    with pytest.raises(ModelMismatch, match=f"changed {WEIGHTS}; sync it with"):
        require_model(str(copy), str(manifest))


def test_missing_and_unexpected_files_are_named(manifest: Path, copy: Path) -> None:
    (copy / "config.json").unlink()
    (copy / "extra.safetensors").write_bytes(b"\0")
    assert mismatches(copy, json.loads(manifest.read_text())) == [
        "missing config.json",
        "unexpected extra.safetensors",
    ]


def test_sync_fetches_what_differs_checked_and_readable_by_anyone(
    manifest: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    files = json.loads(manifest.read_text())
    node = tmp_path / "node" / "models"
    assert sync(str(tiny_model_dir), node, files) == sorted(files)
    assert mismatches(node, files) == []
    assert (node / WEIGHTS).stat().st_mode & 0o444 == 0o444
    flip_one_byte(node / WEIGHTS)
    assert sync(str(tiny_model_dir), node, files) == [WEIGHTS]  # only what differs
    assert main(["check", str(node), "--manifest", str(manifest)]) == 0


def test_a_wrong_source_is_refused_and_leaves_the_node_as_it_was(
    manifest: Path, copy: Path, tmp_path: Path
) -> None:
    flip_one_byte(copy / WEIGHTS)
    node = tmp_path / "node"
    with pytest.raises(ModelMismatch, match=f"{WEIGHTS} has sha256"):
        sync(str(copy), node, json.loads(manifest.read_text()))
    assert not (node / WEIGHTS).exists() and not list(node.glob("*.partial"))


def test_an_s3_source_is_fetched_with_the_aws_cli(tmp_path: Path) -> None:
    dest = tmp_path / "w.partial"
    assert fetch_command("s3://bucket/qwen/", "a/w.safetensors", dest) == [
        "aws", "s3", "cp", "--only-show-errors", "s3://bucket/qwen/a/w.safetensors", str(dest)
    ]  # fmt: skip
    assert fetch_command("/srv/qwen", "w", dest) is None


def test_check_fails_with_one_line(
    manifest: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_one_byte(copy / WEIGHTS)
    assert main(["check", str(copy), "--manifest", str(manifest)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {copy} does not match the manifest")
    assert main(["check", str(copy), "--manifest", str(copy / "none.json")]) == 1
    assert "no model manifest at" in capsys.readouterr().err


def test_the_evaluator_measures_nothing_on_weights_off_the_manifest(
    manifest: Path, copy: Path
) -> None:
    flip_one_byte(copy / WEIGHTS)
    profile = msgspec.structs.replace(
        get_profile("local"), model_dir=str(copy), model_manifest=str(manifest)
    )
    # An engine that is not there: anything pulled or started would fail loudly.
    nowhere = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.43")
    images = ["127.0.0.1:5000/a@sha256:" + "a" * 64, "127.0.0.1:5000/b@sha256:" + "b" * 64]
    reports = evaluate_round(nowhere, images, profile, "0x00")
    assert [(r.verdict, r.reason) for r in reports] == [("error", "model_mismatch")] * 2
    assert f"changed {WEIGHTS}" in reports[0].detail
