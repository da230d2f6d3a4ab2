"""A TCP proxy the tests can cut: a real network outage between Keyturn and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL.

    `stop` refuses and cuts every connection, as a database that went down does; `freeze` keeps
    them open but carries nothing, as a network that swallows packets does.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.frozen = False
        self.deaf = False

    async def start(self) -> None:
        """Listen, again on the same port after a `stop`."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a dead network would."""
        self.deaf = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()
        self._pipes.clear()

    async def freeze(self) -> None:
        self.frozen = True
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def deafen(self) -> None:
        """Carry what Keyturn sends, drop what PostgreSQL answers: a statement runs and commits,
        and its answer never arrives (a connection lost after the commit). `stop` ends it."""
        self.deaf = True

    async def thaw(self) -> None:
        """The network is back; what it held for too long is gone (reset)."""
        self.frozen = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        if self.frozen:
            self._writers.add(client)
            return
        try:
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._writers |= {client, server}
        for reader, writer, answers in (
            (client_reader, server, False),
            (server_reader, client, True),
        ):
            pipe = asyncio.create_task(self._pipe(reader, writer, answers))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if answers and self.deaf:
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
