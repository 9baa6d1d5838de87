"""The baseline is pinned by digest or nothing starts: the check, and the commands that use it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from harness.eval import main as eval_main
from harness.profile import get_profile, resolve_profile
from harness.sandbox_image import require_pinned_baseline

PINNED = "vllm/vllm-openai@sha256:" + "ab" * 32
CHALLENGER = "127.0.0.1:5000/me/miner@sha256:" + "cd" * 32


def test_sn_h200_ships_no_baseline() -> None:
    assert get_profile("sn-h200").baseline_image == ""


@pytest.mark.parametrize(
    "image",
    ["", "vllm/vllm-openai@sha256:PINNED", "vllm/vllm-openai:v0.32.0", PINNED.replace("ab", "AB")],
)
def test_an_unpinned_baseline_is_refused_with_what_to_do(image: str) -> None:
    with pytest.raises(ValueError, match="not pinned by digest; pass --baseline-image"):
        require_pinned_baseline(get_profile("sn-h200"), image)


def test_a_pinned_baseline_is_taken_from_the_flag_or_the_profile() -> None:
    profile = resolve_profile("sn-h200", baseline_image=PINNED)
    assert require_pinned_baseline(profile) == PINNED
    other = "registry.example/vllm@sha256:" + "ef" * 32
    assert require_pinned_baseline(profile, other) == other


def test_eval_and_validator_start_fail_at_once_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert eval_main(["--image", CHALLENGER, "--profile", "sn-h200"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("arena eval: profile sn-h200: the baseline image '' is not pinned")

    runner = CliRunner()
    for argv in (
        ["eval", "--image", CHALLENGER, "--profile", "sn-h200"],
        ["validator", "start", "--netuid", "1", "--profile", "sn-h200"],
        ["eval", "--image", CHALLENGER, "--profile", "sn-h200", "--baseline-image", "vllm:x"],
    ):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        (line,) = result.stderr.splitlines()
        assert "not pinned by digest" in line and "Traceback" not in result.output
