"""`arena subnet`: a whole subnet on one machine, from an empty chain to weights on chain.

Steps (each printed as it happens): a chopsticks node running the subtensor runtime; a subnet
with a validator and three miners bootstrapped through real extrinsics; the Docker engine and
registry (``make demo`` starts them); the images from ``.cache/images.json``; the validator's
actors on a local Ray cluster; the three miners committing their images on chain; then every
event the validator records, until the round is decided and weights are on chain. It ends with
a summary table and an example SQL query over the history.

The console shows those steps, the events, and while an evaluation runs a status line with its
phase. Python's, Ray's and Serve's own log lines go to ``arena.log`` in the run's folder, and
the Ray session's logs (every actor and replica) are linked there as ``ray-logs``.

Exit 0 when the faster honest miner is king and the chain holds weights giving it everything;
otherwise 1, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from cli.progress import describe_running
from events.types import (
    EvalFinished,
    EvalQueued,
    Event,
    KingCrowned,
    KingServing,
    RoundDecided,
    SubmissionCommitted,
    WeightsSet,
)
from harness.profile import repo_root
from rules.errors import ArenaError

__all__ = ["MINERS", "LocalSubnetRun", "Outcome", "subnet"]

# (who, image name in .cache/images.json), in the order they commit.
MINERS = (("reference", "miner-ref"), ("faster honest", "miner-fast"), ("cheater", "cheater"))
WINNER = "faster honest"
EXAMPLE_SQL = (
    "SELECT hotkey[:10] AS hotkey, role, verdict, round(score, 4) AS score, reason "
    "FROM evaluations ORDER BY seq"
)
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class SubnetError(ArenaError, RuntimeError):
    """A step of the local subnet could not be done; the message says which and what to do."""


@dataclass
class Outcome:
    ok: bool
    reason: str
    king: str | None = None
    weights: dict[int, float] = field(default_factory=dict)


class LocalSubnetRun:
    """Owns everything the local subnet starts, and stops it (by PID / handle) on :meth:`close`."""

    def __init__(self, workdir: Path, console: Console | None = None) -> None:
        self.workdir = workdir
        self.console = console or Console()
        self.started = time.monotonic()
        self.chain: Any = None
        self.url = ""
        self.client: Any = None
        self.subnet: Any = None
        self.images: dict[str, str] = {}
        self.log: Any = None
        self.config: Any = None
        self.seen_seq = 0
        self.hotkeys: dict[str, str] = {}  # who -> hotkey
        self.uids: dict[str, int] = {}

    # --- steps ---------------------------------------------------------------------------------

    def keep_logs(self) -> None:
        """Send Python's, Ray's and Serve's own log lines to ``arena.log``, not the console."""
        from ray import serve  # noqa: F401  (importing it sets up Serve's console logger)

        handler = logging.FileHandler(self.workdir / "arena.log", mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().setLevel(logging.INFO)
        for name in ("", "ray", "ray.serve"):
            logging.getLogger(name).handlers = [handler]

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:7.1f}s[/] {text}")

    def start_chain(self, url: str | None = None) -> None:
        """Start chopsticks, or use the node at ``url`` (funded by ``dev_accounts``)."""
        from chain.chopsticks import start_chopsticks
        from chain.client import ChainClient
        from chain.localnet import bootstrap_subnet, dev_accounts

        if url is None:
            self.say("starting chopsticks with the subtensor runtime (spec 218)")
            sudo, accounts = dev_accounts(len(MINERS))
            self.chain = start_chopsticks(accounts=accounts, sudo=sudo)
            url = self.chain.url
        self.url = url
        self.client = ChainClient(url)
        self.say(f"chain at {url}; creating a subnet, a validator and three miners")
        self.subnet = bootstrap_subnet(self.client, len(MINERS))
        for (who, _), key in zip(MINERS, self.subnet.miners, strict=True):
            self.hotkeys[who] = key.ss58_address
            self.uids[who] = self.client.query(
                "SubtensorModule", "Uids", [self.subnet.netuid, key.ss58_address]
            )
        self.say(f"netuid {self.subnet.netuid}: miners at uids {sorted(self.uids.values())}")

    def check_engine(self) -> None:
        import docker
        import httpx

        try:
            docker.from_env().ping()
        except docker.errors.DockerException as exc:
            raise SubnetError(
                f"no Docker engine at {os.environ.get('DOCKER_HOST', 'the default socket')}: "
                f"{exc}. Run `make demo`, or `scripts/infra.sh start` and eval its exports"
            ) from exc
        registry = os.environ.get("ARENA_REGISTRY_ADDR", "127.0.0.1:5000")
        try:
            httpx.get(f"http://{registry}/v2/", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise SubnetError(
                f"no registry at {registry}: {exc}. Run `scripts/infra.sh start`"
            ) from exc
        self.say(f"docker engine and registry {registry} answer")

    def load_images(self) -> None:
        path = repo_root() / ".cache" / "images.json"
        if not path.exists():
            raise SubnetError(f"{path} is missing: build the images with scripts/build_images.sh")
        images = json.loads(path.read_text())
        wanted = [name for _, name in MINERS] + ["baseline"]
        missing = [name for name in wanted if name not in images]
        if missing:
            raise SubnetError(
                f"{path} has no {', '.join(missing)}: run scripts/build_images.sh again"
            )
        self.images = images
        for who, name in MINERS:
            self.say(f"image for the {who} miner: {images[name]}")

    def start_validator(self, ray_address: str = "local") -> None:
        import ray

        from actors import supervisor
        from actors.log_client import LogClient
        from actors.placement import eval_node_resources, head_node_resources
        from actors.validator_config import ValidatorConfig
        from harness.profile import get_profile, resolve_profile

        self.say("starting Ray and the validator's actors")
        os.environ.update(RAY_ENV)
        if not ray.is_initialized():
            ray_tmp = Path(f"/tmp/arena-ray-{os.getpid()}")
            ray_tmp.mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("RAY_TMPDIR", str(ray_tmp))
            ray.init(
                address=ray_address,
                namespace="arena",
                num_cpus=2,
                # One node is the head and the eval node: the king's server runs beside evaluators.
                resources={**head_node_resources(), **eval_node_resources(get_profile("local"))},
                include_dashboard=False,
                runtime_env={"env_vars": RAY_ENV},
                _temp_dir=str(ray_tmp),
                logging_level="INFO",
                # Actors' and replicas' output stays in the session's log files (linked below).
                log_to_driver=False,
            )
            link = self.workdir / "ray-logs"
            link.unlink(missing_ok=True)
            link.symlink_to(ray_tmp / "session_latest" / "logs")
            self.say(f"Ray's and Serve's logs: {link}, {self.workdir / 'arena.log'}")
        self.config = ValidatorConfig(
            log_path=str(self.workdir / "events.duckdb"),
            chain_url=self.url,
            netuid=self.subnet.netuid,
            profile=resolve_profile("local", baseline_image=self.images["baseline"]),
            hotkey_uri="//Alice//validator",
            round_settle_s=3.0,
        )
        handles = supervisor.start(self.config)
        self.log = LogClient(handles["event_log"])
        for s in supervisor.status():
            if s.role in supervisor.ROLES:
                self.say(f"  {s.name}: {s.state} (pid {s.pid})")

    def commit_miners(self) -> None:
        from chain.commitment import commit_image

        for (who, name), key in zip(MINERS, self.subnet.miners, strict=True):
            result = commit_image(self.client, key, self.subnet.netuid, self.images[name])
            self.say(f"{who} miner committed {name} in block {result.block}")

    # --- watching ------------------------------------------------------------------------------

    def who(self, hotkey: str | None) -> str:
        names = {h: w for w, h in self.hotkeys.items()}
        return names.get(hotkey or "", (hotkey or "nobody")[:10])

    def events(self) -> list[Event]:
        return [r.event for r in self.log.replay(0)]

    def describe(self, e: Event) -> str | None:
        match e:
            case SubmissionCommitted():
                return f"chain watcher saw {self.who(e.hotkey)}'s commitment (block {e.block})"
            case EvalQueued():
                return f"queued {e.eval_id}: {self.who(e.hotkey)} as {e.role}"
            case EvalFinished():
                why = f" ({e.reason})" if e.reason else ""
                return (
                    f"eval {e.eval_id} of {self.who(e.hotkey)}: [bold]{e.verdict}[/], "
                    f"score {e.score:.4f}, noise {e.noise:.4f}{why}"
                )
            case KingCrowned():
                return f"[bold green]{self.who(e.hotkey)} crowned[/] (score {e.score:.4f})"
            case WeightsSet():
                state = "set" if e.success else f"failed: {e.error}"
                return f"weights {state} at block {e.block}: uids {e.uids} -> {e.weights}"
        name = type(e).__name__
        return f"{name} {e.key}" if name not in ("RoundDue", "MinerRegistered") else None

    def running(self, events: list[Event]) -> str:
        """The status line: what the evaluation running now is doing, from its events."""
        return describe_running(events, self.who)

    def watch(self, done: Callable[[list[Event]], Outcome | None], timeout_s: float) -> Outcome:
        """Print each new event; return ``done``'s outcome, or a failed one at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self.console.status("starting") as status:
            while time.monotonic() < deadline:
                records = list(self.log.replay(self.seen_seq))
                for r in records:
                    line = self.describe(r.event)
                    if line:
                        self.say(line)
                    self.seen_seq = r.seq
                events = self.events()
                outcome = done(events)
                if outcome is not None:
                    return outcome
                status.update(f"{time.monotonic() - self.started:7.1f}s {self.running(events)}")
                time.sleep(1.0)
        return Outcome(False, f"no decision within {timeout_s:.0f} s; see `arena validator status`")

    def chain_weights(self) -> dict[int, float]:
        from chain.weights import read_weights

        return read_weights(self.client, self.subnet.netuid, self.subnet.validator.ss58_address)

    def outcome(self, events: list[Event]) -> Outcome | None:
        """The run's result once a round with every miner is decided and weights landed."""
        finished = {e.hotkey for e in events if isinstance(e, EvalFinished)}
        if not set(self.hotkeys.values()) <= finished:
            return None
        decided = [e for e in events if isinstance(e, RoundDecided)]
        if not decided:
            return None
        king = decided[-1].king_hotkey
        if king != self.hotkeys[WINNER]:
            return Outcome(False, f"the king is {self.who(king)}, not the {WINNER} miner", king)
        weights = self.chain_weights()
        if weights != {self.uids[WINNER]: 65535.0}:
            failed = [e for e in events if isinstance(e, WeightsSet) and not e.success]
            if failed and len(failed) >= 5:
                return Outcome(False, f"setting weights failed: {failed[-1].error}", king, weights)
            return None
        return Outcome(True, f"the {WINNER} miner is king and holds all weight", king, weights)

    # --- organic traffic -----------------------------------------------------------------------

    def serve_king(self, timeout_s: float) -> None:
        """Serve the king behind the gateway and send it one organic request.

        The same start as ``arena validator start``'s: the king's server keeps the king's image
        running in its sandbox and announces it with KingServing; the gateway follows that event.
        """
        import httpx

        from actors import supervisor
        from chain.chopsticks import free_port
        from serve_apps.gateway_config import GatewayConfig
        from serve_apps.keys import create_key

        self.say("starting the king's server for organic traffic")
        supervisor.start(self.config, roles=("king_server",))

        def announced(events: list[Event]) -> Outcome | None:
            serving = [e for e in events if isinstance(e, KingServing)]
            return Outcome(True, serving[-1].endpoint) if serving else None

        outcome = self.watch(announced, timeout_s)
        if not outcome.ok:
            raise SubnetError(f"the king was not served: {outcome.reason}")
        keys = self.workdir / "keys.json"
        _, secret = create_key(keys, "demo", rate_per_s=5.0, burst=10)
        gateway = GatewayConfig(
            reference_endpoint=outcome.reason,
            keys_file=str(keys),
            port=free_port(),
            served_model_name=self.config.profile.served_model_name,
        )
        self.config = msgspec.structs.replace(self.config, gateway=gateway)
        supervisor.start(self.config, roles=("gateway",))
        reply = httpx.post(
            f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={
                "model": gateway.served_model_name,
                "messages": [{"role": "user", "content": "Say hello"}],
                "max_tokens": 16,
            },
            timeout=120,
        )
        reply.raise_for_status()
        text = reply.json()["choices"][0]["message"]["content"]
        self.say(f"gateway on 127.0.0.1:{gateway.port} answered from the king: {text!r}")

    # --- summary -------------------------------------------------------------------------------

    def summary(self, outcome: Outcome) -> None:
        events = self.events()
        finished = {e.hotkey: e for e in events if isinstance(e, EvalFinished)}
        table = Table(title=f"local subnet (netuid {self.subnet.netuid})")
        for col in ("miner", "uid", "verdict", "score", "reason", "king", "weight"):
            table.add_column(col)
        for who, _ in MINERS:
            hotkey = self.hotkeys[who]
            f = finished.get(hotkey)
            uid = self.uids[who]
            table.add_row(
                who,
                str(uid),
                f.verdict if f else "-",
                f"{f.score:.4f}" if f else "-",
                (f.reason if f else "")[:50],
                "yes" if outcome.king == hotkey else "",
                str(int(outcome.weights.get(uid, 0))),
            )
        self.console.print(table)
        columns, rows = self.log.sql(EXAMPLE_SQL)
        sql_table = Table(title=f'arena sql "{EXAMPLE_SQL}"')
        for col in columns:
            sql_table.add_column(col)
        for row in rows:
            sql_table.add_row(*("" if v is None else str(v) for v in row))
        self.console.print(sql_table)
        style = "green" if outcome.ok else "red"
        self.say(f"[{style}]{outcome.reason}[/] (event log: {self.config.log_path})")

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            from actors import supervisor

            with contextlib.suppress(Exception):
                supervisor.stop()  # the gateway app and the actors
            # Serve's controller ends with the cluster this run started. (serve.shutdown() kills
            # it while its own graceful shutdown runs, and Ray prints the retried task.)
            ray.shutdown()
            # Sandboxes of evaluators that died with Ray; those of live processes stay.
            import docker

            from harness.runner import remove_leftovers

            with contextlib.suppress(docker.errors.DockerException):
                remove_leftovers(docker.from_env())
        if self.client is not None:
            self.client.close()
        if self.chain is not None:
            self.chain.stop()


def subnet(
    workdir: str = typer.Option(".arena/subnet", help="where the event log is kept"),
    timeout_s: float = typer.Option(1800.0, help="give up after this many seconds"),
    serve_king: bool = typer.Option(True, help="serve the king behind the gateway at the end"),
) -> None:
    """Run chain, validator, miners, eval, crown and weights locally."""
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("events.duckdb", "events.duckdb.wal", "events.duckdb.journal"):
        (path / name).unlink(missing_ok=True)  # each run starts a fresh log
    run = LocalSubnetRun(path.resolve())
    run.keep_logs()
    try:
        run.check_engine()
        run.load_images()
        run.start_chain()
        run.start_validator()
        run.commit_miners()
        outcome = run.watch(run.outcome, timeout_s)
        if outcome.ok and serve_king:
            try:
                run.serve_king(timeout_s=900)
            except Exception as exc:  # organic serving is a bonus step: report, don't fail
                run.say(f"[yellow]serving the king failed:[/] {exc}")
        run.summary(outcome)
    except SubnetError as exc:
        run.console.print(f"[red]arena subnet failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        run.close()
    raise typer.Exit(0 if outcome.ok else 1)
