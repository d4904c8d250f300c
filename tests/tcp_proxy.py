"""A TCP proxy on loopback whose connections a test can cut: a real network failure, on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections = 0
        self.silent = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def silence(self) -> None:
        """Pass nothing on from now, yet keep every connection open: a half-open network path."""
        self.silent = True

    def cut(self) -> None:
        """Drop every open connection, both sides, as a network failure would."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        await asyncio.gather(
            self._pipe(client_reader, server_writer),
            self._pipe(server_reader, client_writer),
            return_exceptions=True,
        )
        for writer in (client_writer, server_writer):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                if not self.silent:
                    writer.write(chunk)
                    await writer.drain()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def cuttable_proxy(base_url: str) -> AsyncIterator[CuttableProxy]:
    import httpx

    url = httpx.URL(base_url)
    proxy = CuttableProxy(url.host, url.port or 80)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
