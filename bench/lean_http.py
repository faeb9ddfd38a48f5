"""A minimal HTTP/1.1 keep-alive GET loop: a load generator that leaves the CPU to the server.

The benchmarks share 2 cores between the load generator and the stack. httpx costs
0.6-0.8 ms of CPU per GET (bench.crud's "load generator CPU per request", 2026-11-27), twice
the API's own retrieve, so with it the client, not the server, set the req/s. This loop
writes one prepared request and reads the status line, the headers and a `Content-Length`
(or chunked) body with asyncio streams: ~0.05 ms per GET. What `wrk` does, in Python.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


class LeanConnection:
    """One keep-alive connection that sends GETs of a single URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._request = (f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                         "Accept: application/json\r\n\r\n").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanConnection:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def get(self) -> tuple[int, bytes]:
        """(status, body) of one GET."""
        assert self._reader is not None and self._writer is not None
        self._writer.write(self._request)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked = 0, False
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked:
            return status, await self._reader.readexactly(length)
        body = bytearray()
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await self._reader.readexactly(size)
            await self._reader.readexactly(2)
        await self._reader.readexactly(2)  # the last chunk's CRLF
        return status, bytes(body)


async def lean_hammer(url: str, seconds: float,
                      concurrency: int) -> tuple[float, list[float], int]:
    """(requests/s, latencies, errors): `concurrency` connections, each always one GET in
    flight, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        async with LeanConnection(url) as connection:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await connection.get()
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies, errors
