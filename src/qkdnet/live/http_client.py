"""A lean HTTP/1.1 client: one keep-alive mutual TLS connection on asyncio streams,
requests written as bytes, replies read by Content-Length.

For calls between qkdnet's own services (KM to KM) and for the load generator of
``benchmarks/kme_load.py``: httpx costs about 0.8 ms of CPU per call, this client about a
tenth. It speaks only what those calls need: GET or POST with a body, a reply with
Content-Length (chunked replies are refused as a protocol error, never guessed at).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

#: Longest reply head accepted (bytes): an ETSI 014 reply's head is a few hundred.
MAX_HEAD_BYTES = 16 * 1024
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class NoReply(ConnectionError):
    """The call got no complete reply: the connection failed, closed or timed out."""


class Reply:
    """A reply's status code and body (bytes), as the reply checks of
    :mod:`qkdnet.apps.sae_client` read them."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content


class LeanClient:
    """Calls to ``base_url`` (``https://host:port/prefix``) over one connection presenting
    ``context``'s client certificate; with ``cold``, a new connection (and TLS handshake)
    per call, closed after it. ``timeout_s`` bounds each call (s)."""

    def __init__(self, base_url: str, context: ssl.SSLContext, *, cold: bool = False,
                 timeout_s: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or parts.hostname is None:
            raise ValueError(f"base URL {base_url!r}: expected https://host:port/...")
        self._host, self._port = parts.hostname, parts.port or 443
        self._authority = parts.netloc.encode("ascii")
        self._prefix = parts.path.rstrip("/")
        self._context, self._cold, self._timeout_s = context, cold, timeout_s
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection, if one is open."""
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            # the server may cut first; nothing is owed to it
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()

    async def post(self, path: str, json: Any) -> Reply:
        """POST ``json`` (as compact JSON) to ``path`` under the base URL."""
        return await self._call(b"POST", path, _ENCODER.encode(json).encode())

    async def post_bytes(self, path: str, body: bytes) -> Reply:
        """POST ``body`` (JSON already encoded) to ``path`` under the base URL."""
        return await self._call(b"POST", path, body)

    async def get(self, path: str) -> Reply:
        """GET ``path`` under the base URL."""
        return await self._call(b"GET", path, None)

    async def _call(self, method: bytes, path: str, body: bytes | None) -> Reply:
        try:
            # asyncio.timeout, not wait_for: no task per call, and Python 3.11's wait_for
            # can lose a cancellation that arrives as the call completes
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(method, path, body)
        except (OSError, EOFError, TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
            await self.aclose()  # a connection in an unknown state is never reused
            raise NoReply(f"{type(exc).__name__}: {exc}") from None

    async def _exchange(self, method: bytes, path: str, body: bytes | None) -> Reply:
        if self._streams is None:
            self._streams = await asyncio.open_connection(
                self._host, self._port, ssl=self._context, server_hostname=self._host)
        reader, writer = self._streams
        head = [method, b" ", (self._prefix + path).encode("ascii"), b" HTTP/1.1\r\nHost: ",
                self._authority, b"\r\n"]
        if body is not None:
            head += [b"Content-Type: application/json\r\nContent-Length: ",
                     b"%d" % len(body), b"\r\n"]
        if self._cold:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if body is not None:
            head.append(body)
        writer.write(b"".join(head))
        status, length, closes = read_head(await reader.readuntil(b"\r\n\r\n"))
        content = await reader.readexactly(length)
        if self._cold or closes:
            await self.aclose()
        return Reply(status, content)


def read_head(head: bytes) -> tuple[int, int, bool]:
    """(status code, Content-Length, whether the server closes) of a reply head; ValueError
    for a head this client does not read (no Content-Length, chunked, malformed)."""
    if len(head) > MAX_HEAD_BYTES:
        raise ValueError("reply head too long")
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
        raise ValueError("malformed status line")
    length, closes = -1, version == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise ValueError("chunked replies are not read by the lean client")
        elif name == b"connection":
            closes = value.strip().lower() == b"close"
    if length < 0:
        raise ValueError("reply without Content-Length")
    return int(rest[:3]), length, closes
