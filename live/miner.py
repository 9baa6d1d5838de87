"""A miner's endpoint for one live task: a small ASGI app behind uvicorn.

``POST /task/<name>`` serves signed requests that pass :class:`live.auth.Authenticator`;
``GET /health`` answers unauthenticated so operators can probe the port. The example behaviours
(``correct``, ``wrong``, ``slow``) exist to exercise validators; a real miner replaces
:meth:`MinerApp.respond`'s work with its own.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from typing import Any, Literal

import msgspec
import uvicorn

from live.auth import Authenticator
from live.task import Task, TaskError, decode_request

__all__ = ["Behaviour", "MinerApp", "MinerConfig", "MinerServer", "bind_socket"]

Behaviour = Literal["correct", "wrong", "slow"]

_json = msgspec.json.Encoder()


class MinerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    behaviour: Behaviour = "correct"
    # How long the ``slow`` behaviour waits before answering correctly.
    slow_delay_s: float = 0.5
    max_body_bytes: int = 64 * 1024


class MinerApp:
    """The ASGI application (raw ASGI: one route's worth of framework is not worth its latency)."""

    def __init__(self, task: Task, auth: Authenticator, config: MinerConfig) -> None:
        self.task = task
        self.auth = auth
        self.config = config
        self._path = f"/task/{task.name}"
        self._rng = random.Random()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/health":
            await _reply(send, 200, {"hotkey": self.auth.miner_hotkey, "task": self.task.name})
        elif path != self._path:
            await _reply(send, 404, {"error": "not_found", "detail": f"serve {self._path}"})
        elif method != "POST":
            await _reply(send, 405, {"error": "method_not_allowed", "detail": "use POST"})
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await _read_body(receive, self.config.max_body_bytes)
        if body is None:
            limit = self.config.max_body_bytes
            await _reply(send, 413, {"error": "too_large", "detail": f"limit {limit} bytes"})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self.auth.check(headers, body)
        if refused is not None:
            status = refused.reason.status
            await _reply(send, status, {"error": str(refused.reason), "detail": refused.detail})
            return
        try:
            request = decode_request(self.task, body)
        except TaskError as exc:
            await _reply(send, 400, {"error": "bad_request", "detail": str(exc)})
            return
        await _reply(send, 200, await self.respond(request))

    async def respond(self, request: msgspec.Struct) -> msgspec.Struct:
        behaviour = self.config.behaviour
        if behaviour == "wrong":
            # The answer to some other request: right shape, wrong value.
            return self.task.answer(self.task.generate(self._rng))
        if behaviour == "slow":
            await asyncio.sleep(self.config.slow_delay_s)
        return self.task.answer(request)


async def _read_body(receive: Any, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _reply(send: Any, status: int, payload: Any) -> None:
    body = _json.encode(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class MinerServer:
    """Runs a :class:`MinerApp` under uvicorn, in the foreground or on a background thread."""

    def __init__(self, app: MinerApp, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (the CLI's path)."""
        self._server.run(sockets=[self.sock])

    def start(self, timeout_s: float = 30.0) -> None:
        """Serve on a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.run, name=f"miner:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"miner server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self.sock.close()
