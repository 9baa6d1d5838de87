"""The documented entry points, run as written, against a cluster with token auth on.

The cluster is one head started the way cluster.yaml starts it (``RAY_AUTH_MODE=token``), with
Ray's job server and one ``arena_eval_slot``. Each command runs in its own process, as an operator
or a miner would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chain.chopsticks import free_port
from harness.profile import built_image, get_profile
from tests.fixtures.ray import TokenHead, clear_arena_actors

pytestmark = [pytest.mark.ray, pytest.mark.docker]

BIN = Path(sys.executable).parent
DEADLINE_S = 180.0


def without_auth_mode() -> dict[str, str]:
    """This process's environment (the token included) with no ``RAY_AUTH_MODE`` set."""
    return {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}


def test_arena_validator_uses_token_auth_when_no_mode_is_set(
    token_head: TokenHead, tmp_path: Path
) -> None:
    result = subprocess.run(
        [BIN / "arena", "validator", "status", "--ray-address", token_head.gcs_address]
        + ["--log", str(tmp_path / "none.duckdb")],
        env=without_auth_mode(),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "arena.event_log" in result.stdout and "absent" in result.stdout
    assert "no validator running" in result.stdout


def test_arena_eval_runs_as_a_ray_job_and_reports_the_failure(
    token_head: TokenHead, tmp_path: Path
) -> None:
    """A digest the registry lacks: the job ends at the manifest check, before any server."""
    repo = built_image("adv-crash").split("@")[0]
    image = f"{repo}@sha256:{'0' * 64}"
    report = tmp_path / "report.json"
    result = subprocess.run(
        [BIN / "arena", "eval", "--image", image, "--out", str(report)]
        + ["--ray-address", token_head.dashboard_url],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "submitted Ray job" in result.stdout
    assert "ended FAILED" in result.stderr
    body = json.loads(report.read_text())
    assert body["image"] == image
    assert body["verdict"] == "fail" and body["reason"], body


def test_serve_run_starts_the_gateway_as_the_readme_says(
    token_head: TokenHead, tmp_path: Path
) -> None:
    from ray import serve

    from actors.event_log import get_or_create_event_log
    from serve_apps.keys import create_key

    get_or_create_event_log(tmp_path / "events.duckdb")  # the gateway follows the king in it
    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    keys = tmp_path / "keys.json"
    _, secret = create_key(keys, "readme", rate_per_s=5.0, burst=10)
    port = free_port()
    # README, "Running a validator": serve run serve_apps.gateway:build_app reference_endpoint=URL
    # keys_file=PATH port=8080
    command = [BIN / "serve", "run", "serve_apps.gateway:build_app"]
    command += [f"reference_endpoint=http://127.0.0.1:{free_port()}", f"keys_file={keys}"]
    command += [f"port={port}"]
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, "RAY_ADDRESS": token_head.gcs_address},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)  # polling a server that is starting
        models = httpx.get(
            f"http://127.0.0.1:{port}/v1/models",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert models.status_code == 200
        names = [m["id"] for m in models.json()["data"]]
        assert names == [get_profile("local").served_model_name]
    finally:
        serve.shutdown()
        process.kill()
        process.wait()


@pytest.mark.chain
def test_validator_start_from_a_config_runs_every_part_and_stop_ends_them(
    token_head: TokenHead, chain_url: str, tmp_path: Path
) -> None:
    """README, "Running a validator": start --config, status, stop, each in its own process."""
    from chain.client import ChainClient
    from chain.localnet import bootstrap_subnet

    with ChainClient(chain_url) as client:  # a subnet of its own: no commitment to evaluate
        subnet = bootstrap_subnet(client, 0)
    clear_arena_actors()  # an earlier test's event log on this head
    port = free_port()
    settings = tmp_path / "validator.toml"
    settings.write_text(
        f'log = "{tmp_path / "events.duckdb"}"\n'
        f'[chain]\nnetwork = "{chain_url}"\nnetuid = {subnet.netuid}\n'
        '[wallet]\nuri = "//Alice//validator"\n'
        f'[evaluation]\nprofile = "local"\nbaseline_image = "{built_image("baseline")}"\n'
        f'[gateway]\nport = {port}\nkeys_file = "{tmp_path / "keys.json"}"\n'
        f'reference_endpoint = "http://127.0.0.1:{free_port()}"\n'
    )
    env = {**without_auth_mode(), "RAY_ADDRESS": token_head.gcs_address, "COLUMNS": "200"}

    def arena(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [BIN / "arena", "validator", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def states(output: str) -> dict[str, str]:
        names = ("event_log", "chain_watcher", "scheduler", "crown_keeper", "king_server")
        wanted = {f"arena.{n}" for n in names} | {"gateway"}
        rows = [line.replace("│", " ").split() for line in output.splitlines()]
        return {row[1]: row[2] for row in rows if len(row) > 2 and row[1] in wanted}

    started = arena("start", "--config", str(settings))
    try:
        assert f"gateway: http://127.0.0.1:{port}/v1" in started.stdout
        running = states(arena("status").stdout)
        assert running == {
            **{f"arena.{n}": "ALIVE" for n in ("event_log", "chain_watcher", "scheduler")},
            "arena.crown_keeper": "ALIVE",
            "arena.king_server": "ALIVE",
            "gateway": "RUNNING",
        }
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        stopped = arena("stop").stdout
    assert "gateway" in stopped and "arena.king_server" in stopped
    after = states(arena("status", "--log", str(tmp_path / "events.duckdb")).stdout)
    assert after.pop("gateway") == "absent"
    assert len(after) == 5 and set(after.values()) <= {"DEAD", "absent"}  # killed, not restarted
