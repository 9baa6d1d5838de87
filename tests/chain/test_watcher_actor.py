"""The ChainWatcher Ray actor: folds the log, follows the chain, survives its own restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import ray

from actors.chain_watcher import start_chain_watcher
from actors.log_client import LogClient
from actors.validator_config import ValidatorConfig
from chain.client import ChainClient
from chain.commitment import commit_image
from chain.localnet import LocalSubnet, jump_blocks
from events.types import MinerRegistered, SubmissionCommitted
from harness.profile import get_profile

pytestmark = [pytest.mark.ray, pytest.mark.chain]

DIGEST = "sha256:" + "9a" * 32


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_watcher_actor_appends_chain_events_and_resumes_after_a_restart(
    event_log_actor, local_subnet: LocalSubnet, chain_client: ChainClient, tmp_path
) -> None:
    log = LogClient(event_log_actor, retry_s=60)
    netuid = local_subnet.netuid
    config = ValidatorConfig(
        log_path=str(tmp_path / "unused.duckdb"),
        chain_url=local_subnet.url,
        netuid=netuid,
        profile=get_profile("local"),
    )

    def keys(event_type: type) -> set[str]:
        return {
            r.event.key
            for r in log.replay(0, [event_type.__name__])
            if getattr(r.event, "netuid", None) == netuid
        }

    watcher = start_chain_watcher(config)
    try:
        wait_until(
            "the validator's registration in the log",
            lambda: any(local_subnet.validator.ss58_address in k for k in keys(MinerRegistered)),
        )
        # Other tests committed from these miners: step past the commitment rate limit.
        jump_blocks(chain_client, chain_client.constant("Commitments", "RateLimit"))
        first = commit_image(
            chain_client, local_subnet.miners[0], netuid, f"127.0.0.1:5000/w/a:1@{DIGEST}"
        )
        first_key = f"{local_subnet.miners[0].ss58_address}@{first.block}"
        wait_until("the first commitment", lambda: first_key in keys(SubmissionCommitted))

        ray.kill(watcher, no_restart=False)  # Ray restarts it; it folds the log again
        second = commit_image(
            chain_client, local_subnet.miners[2], netuid, f"127.0.0.1:5000/w/b:1@{DIGEST}"
        )
        second_key = f"{local_subnet.miners[2].ss58_address}@{second.block}"
        wait_until(
            "the commitment after the restart", lambda: second_key in keys(SubmissionCommitted)
        )
        status = wait_until(
            "the restarted watcher's status",
            lambda: ray.get(watcher.status.remote(), timeout=30),
        )
        assert status["scanned"] >= second.block
        assert status["last_event_block"] >= second.block
        columns, rows = log.sql(
            "SELECT count(*) FROM events WHERE type = 'SubmissionCommitted' AND key IN (?, ?)",
            [first_key, second_key],
        )
        assert rows == [(2,)]
    finally:
        ray.kill(watcher, no_restart=True)
