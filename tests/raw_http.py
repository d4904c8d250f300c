"""HTTP/1.1 over a raw socket: requests no client library would send, and what the server does then."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One TCP connection to the server; requests are written as given, byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(
        self, method: str, target: str, headers: list[tuple[str, bytes]], body: bytes = b""
    ) -> None:
        lines = [f"{method} {target} HTTP/1.1\r\n".encode(), b"Host: test\r\n"]
        lines += [name.encode() + b": " + value + b"\r\n" for name, value in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}\r\n".encode())
        await self.send(b"".join([*lines, b"\r\n", body]))

    async def response(self, timeout: float = 10) -> RawResponse:
        """The next response (a Content-Length body; an event stream's head and first bytes only)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = headers.get("content-length")
            body = await self.reader.readexactly(int(length)) if length is not None else b""
        return RawResponse(int(status_line.split(" ")[1]), headers, body)

    async def closed_by_server(self, timeout: float) -> bool:
        """True if the server closes (or resets) the connection within `timeout`, reading anything sent."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
