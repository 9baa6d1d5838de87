"""Run the subtensor runtime locally under chopsticks: find it, start it on a free port, stop it.

Used by the test fixtures, the benchmark and the demo. Blocks are built only on demand
(``Instant``: each submitted extrinsic becomes its own block, and ``dev_newBlock`` makes empty
ones), so a test knows exactly which block its extrinsic landed in.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websocket import WebSocketException, create_connection

from rules.errors import ArenaError

__all__ = [
    "ChopsticksError",
    "DevChain",
    "find_chain_spec",
    "find_chopsticks",
    "free_port",
    "start_chopsticks",
    "SPEC_NAME",
]

SPEC_NAME = "raonet-spec218.json"
_REPO = Path(__file__).resolve().parent.parent


class ChopsticksError(ArenaError, RuntimeError):
    """chopsticks or the chain spec is missing, or the node did not start."""


def find_chopsticks(repo: Path = _REPO) -> Path:
    path = repo / "node_modules" / "@acala-network" / "chopsticks" / "chopsticks.cjs"
    if not path.is_file():
        raise ChopsticksError(
            f"chopsticks not installed ({path} missing); run `make setup` (or `npm ci` in {repo})"
        )
    return path


def find_chain_spec(repo: Path = _REPO) -> Path:
    """``$ARENA_CHAIN_SPEC``, else ``.cache/chain/``, else ``../shared/data/subtensor/``."""
    if env := os.environ.get("ARENA_CHAIN_SPEC"):
        candidates = [Path(env)]
    else:
        candidates = [
            repo / ".cache" / "chain" / SPEC_NAME,
            repo.parent / "shared" / "data" / "subtensor" / SPEC_NAME,
        ]
    for path in candidates:
        if path.is_file():
            return path
    raise ChopsticksError(
        f"chain spec {SPEC_NAME} not found (looked at {', '.join(map(str, candidates))}); "
        "run `make setup` or set ARENA_CHAIN_SPEC"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DevChain:
    """A running chopsticks process; ``stop()`` ends it by PID."""

    process: subprocess.Popen
    port: int
    log_path: Path
    db_path: Path | None
    workdir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``kill=True``) the process we started, then reap it."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _storage_overrides(accounts: dict[str, int], sudo: str) -> dict:
    # chopsticks import-storage format: pallet -> item -> value, or a list of [[keys], value].
    return {
        "Sudo": {"Key": sudo},
        "System": {
            "Account": [
                [[address], {"providers": 1, "data": {"free": free}}]
                for address, free in accounts.items()
            ]
        },
    }


def _ready(url: str) -> bool:
    try:
        ws = create_connection(url, timeout=5)
    except (OSError, WebSocketException):
        return False
    try:
        ws.send(json.dumps({"id": 1, "jsonrpc": "2.0", "method": "chain_getHeader", "params": []}))
        return "result" in json.loads(ws.recv())
    except (OSError, WebSocketException, ValueError):
        return False
    finally:
        ws.close()


def start_chopsticks(
    *,
    accounts: dict[str, int],
    sudo: str,
    db_path: Path | None = None,
    resume: bool = False,
    port: int | None = None,
    startup_timeout_s: float = 180.0,
    repo: Path = _REPO,
) -> DevChain:
    """Start chopsticks on 127.0.0.1 with ``sudo`` as sudo key and ``accounts`` funded (rao).

    With ``db_path`` blocks persist to SQLite; ``resume=True`` continues from the latest stored
    block, which is how a test restarts "the same chain" after killing the node.
    """
    script = find_chopsticks(repo)
    spec = find_chain_spec(repo)
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="arena-chopsticks-"))
    config: dict = {
        "genesis": str(spec),
        "host": "127.0.0.1",
        "port": port,
        "build-block-mode": "Instant",
        "runtime-log-level": 0,
    }
    if db_path is not None:
        config["db"] = str(db_path)
    if resume:
        config["resume"] = True
    # Imported storage is not saved with the blocks, so a resumed node needs it again (it
    # resets the funded balances to their start values).
    config["import-storage"] = _storage_overrides(accounts, sudo)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "chopsticks.log"
    cmd = ["node", str(script), "--config", str(config_path)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
        )
    chain = DevChain(
        process=process, port=port, log_path=log_path, db_path=db_path, workdir=workdir
    )
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChopsticksError(
                f"chopsticks exited with {process.returncode} during startup; log {log_path}:\n"
                + chain.log_tail()
            )
        if _ready(chain.url):
            return chain
        time.sleep(0.5)
    chain.stop(kill=True)
    raise ChopsticksError(
        f"chopsticks did not answer on {chain.url} within {startup_timeout_s:.0f}s; "
        f"log {log_path}:\n" + chain.log_tail()
    )
