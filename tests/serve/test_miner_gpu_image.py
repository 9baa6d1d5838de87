"""images/miner-gpu, checked without building it (no GPU, a 10 GB base): its Dockerfile is read.

It must build on the baseline's vLLM pinned by digest, run as an unprivileged user, and start
the reference miner with exactly the engine the `sn-h200` baseline runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.profile import get_profile, repo_root
from serve_apps.miner import config_from_argv, vllm_cli_args

IMAGE = repo_root() / "images" / "miner-gpu"
PINNED = "vllm/vllm-openai@sha256:" + "0123456789abcdef" * 4


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(IMAGE / "Dockerfile")


def test_it_builds_only_on_a_base_pinned_by_digest(steps: list[tuple[str, str]]) -> None:
    (base,) = [args for op, args in steps if op == "FROM"]
    assert base == "${VLLM_IMAGE}"
    assert ("ARG", "VLLM_IMAGE") in steps  # no default: nothing pinned to a placeholder
    (guard,) = [args for op, args in steps if op == "RUN" and "VLLM_IMAGE" in args]

    def build_step(image: str) -> int:
        return subprocess.run(["sh", "-c", guard], env={"VLLM_IMAGE": image}).returncode

    assert build_step(PINNED) == 0
    for unpinned in ("vllm/vllm-openai:v0.32.0", "vllm/vllm-openai@sha256:PINNED", PINNED[:-1], ""):
        assert build_step(unpinned) != 0, unpinned


def test_it_runs_unprivileged(steps: list[tuple[str, str]]) -> None:
    user = [args for op, args in steps if op == "USER"][-1]
    assert user.split(":")[0] not in ("", "0", "root")


def test_its_entry_point_runs_the_sn_h200_baseline_engine(steps: list[tuple[str, str]]) -> None:
    (entrypoint,) = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for op, args in steps if op == "CMD"]
    assert entrypoint == ["python3", "-m", "serve_apps.miner"]
    config = config_from_argv(cmd)
    profile = get_profile("sn-h200")
    args = vllm_cli_args(config)
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert config.num_gpus == 4 and args[-len(profile.engine_flags) :] == list(profile.engine_flags)
    # The same engine, flag for flag, as the stock vLLM baseline (bar the miner's access log).
    args.remove("--disable-uvicorn-access-log")
    assert args == list(profile.baseline_command)


def test_its_build_context_is_the_code_it_copies(steps: list[tuple[str, str]]) -> None:
    copied = {args.split()[0] for op, args in steps if op == "COPY"}
    assert copied == {"harness", "serve_apps"}
    ignore = (IMAGE / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :][:2] == ["!harness", "!serve_apps"]
