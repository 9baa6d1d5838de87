"""A TCP relay that lets other nodes reach the king's sandbox.

The king's container sits on an internal Docker network (``harness.runner.Sandbox``): only its
own host reaches its bridge address, and a published port does not work on an internal network.
The relay listens on the node's own address and copies bytes both ways as they arrive, so a
streamed answer (SSE) passes through unbuffered. It only carries connections made to the
container; the container itself still has no route out.

    Relay.open(listen_host, target_host, target_port)   listen on a free port of listen_host
    relay.endpoint                                       http://<listen_host>:<port>
    relay.close()                                        stop listening, drop every connection
"""

from __future__ import annotations

import asyncio

__all__ = ["Relay"]

# The most one read takes; a read returns whatever has arrived, so small chunks are not held.
_READ_BYTES = 64 * 1024


class Relay:
    """Listens on ``host``; each connection is relayed to ``target`` until either side ends."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.host = host
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def open(cls, listen_host: str, target_host: str, target_port: int) -> Relay:
        """Listen on a free port of ``listen_host``, relaying to ``target_host:target_port``."""
        relay = cls(listen_host, (target_host, target_port))
        relay._server = await asyncio.start_server(relay._accept, listen_host, 0)
        relay.port = int(relay._server.sockets[0].getsockname()[1])
        return relay

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and drop the connections still open (idempotent)."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        if self._closed:  # accepted just before close(): it would outlive the relay
            client_out.transport.abort()
            return
        # A task of our own, not the server's: close() cancels it.
        task = asyncio.create_task(self._relay(client_in, client_out))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        writers = [client_out]
        ended = False  # both directions ran to their end: what is buffered still goes out
        try:
            upstream_in, upstream_out = await asyncio.open_connection(*self.target)
            writers.append(upstream_out)
            async with asyncio.TaskGroup() as pipes:
                pipes.create_task(_pipe(client_in, upstream_out))
                pipes.create_task(_pipe(upstream_in, client_out))
            ended = True
        except* OSError:
            # A side reset or went away, or the container does not answer: the other side is
            # dropped too, and a client sees its connection end, as with the container itself.
            pass
        finally:
            for writer in writers:
                if ended:
                    writer.close()
                else:
                    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` chunk by chunk, then pass its end on (a half-close)."""
    while chunk := await reader.read(_READ_BYTES):
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
