"""The container specs a round starts, as plain data: what ``--dry-run`` prints is what runs."""

from __future__ import annotations

import json

import pytest

from harness.eval import dry_run_specs
from harness.eval import main as eval_main
from harness.profile import Profile, get_profile, resolve_profile
from harness.runner import SANDBOX_ENV, container_spec

BASELINE = "vllm/vllm-openai@sha256:" + "ab" * 32
CHALLENGER = "127.0.0.1:5000/me/miner@sha256:" + "cd" * 32
RAY_GPUS = ("4", "5", "6", "7")  # what Ray put in CUDA_VISIBLE_DEVICES for the evaluator


@pytest.fixture
def sn_h200() -> Profile:
    return resolve_profile("sn-h200", baseline_image=BASELINE)


def test_sn_h200_round_runs_on_rays_four_gpus_sealed_off(sn_h200: Profile) -> None:
    specs = dry_run_specs(sn_h200, [CHALLENGER], RAY_GPUS)
    baseline, (challenger,) = specs["baseline"], specs["challengers"]
    assert (baseline.image, challenger.image) == (BASELINE, CHALLENGER)
    command = list(baseline.command or ())
    assert command[command.index("--tensor-parallel-size") + 1] == "4"
    assert challenger.command is None  # the image's own entry point
    for spec in (baseline, challenger):
        (gpus,) = spec.device_requests  # the baseline is down while the challenger runs
        assert (gpus["DeviceIDs"], gpus["Capabilities"]) == (list(RAY_GPUS), [["gpu"]])
        assert spec.mounts == {sn_h200.model_dir: ("/models", "ro")}
        assert spec.read_only_root and spec.network_internal and spec.cap_drop == ("ALL",)
        assert spec.shm_size == "64g" and spec.memory == sn_h200.memory_limit
        assert spec.env == SANDBOX_ENV and spec.env["HF_HUB_OFFLINE"] == "1"


def test_docker_gets_the_spec_as_it_is_printed(sn_h200: Profile) -> None:
    spec = container_spec(sn_h200, BASELINE, command=("--x",), gpu_ids=RAY_GPUS)
    kwargs = spec.create_kwargs(name="n", labels={"l": "v"}, network="net")
    assert kwargs["device_requests"][0]["DeviceIDs"] == list(RAY_GPUS)
    assert kwargs["volumes"] == {sn_h200.model_dir: {"bind": "/models", "mode": "ro"}}
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == "512g"
    assert (kwargs["network"], kwargs["shm_size"], kwargs["command"]) == ("net", "64g", ["--x"])


def test_on_eight_gpus_the_kept_up_baseline_and_the_challenger_split_them() -> None:
    eight = ("3", "4", "5", "6", "7", "0", "1", "2")
    specs = dry_run_specs(
        resolve_profile("sn-h200x8", baseline_image=BASELINE), [CHALLENGER], eight
    )
    (baseline,), (challenger,) = (
        specs["baseline"].device_requests,
        [spec.device_requests[0] for spec in specs["challengers"]],
    )
    assert (baseline["DeviceIDs"], challenger["DeviceIDs"]) == (list(eight[:4]), list(eight[4:]))


def test_gpus_outside_ray_and_too_few_gpus(sn_h200: Profile) -> None:
    (gpus,) = container_spec(sn_h200, BASELINE).device_requests
    assert gpus["Count"] == 4
    with pytest.raises(ValueError, match="this process was given"):
        container_spec(sn_h200, BASELINE, gpu_ids=("0", "1"))
    assert container_spec(get_profile("local"), BASELINE, gpu_ids=RAY_GPUS).device_requests == ()


def test_dry_run_prints_the_specs_and_runs_nothing(
    sn_h200: Profile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(RAY_GPUS))
    # No DOCKER_HOST is needed: nothing is pulled or started.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    argv = ["--image", CHALLENGER, "--profile", "sn-h200", "--baseline-image", BASELINE]
    assert eval_main([*argv, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["baseline"]["image"] == BASELINE
    assert printed["challengers"][0]["device_requests"][0]["DeviceIDs"] == list(RAY_GPUS)
    assert printed["baseline"]["mounts"][sn_h200.model_dir] == ["/models", "ro"]
