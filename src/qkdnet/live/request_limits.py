"""The request-body cap of a KME: an ASGI wrapper that refuses a body over ``max_bytes`` with
a JSON 413 before anything parses it.

A declared ``Content-Length`` over the cap is refused before one byte of the body is read; a
body without one (chunked) is counted as it streams, and refused when the count passes the
cap, so a client claiming or sending 600 MB costs the server at most ``max_bytes`` of memory.
A body with a ``Content-Length`` within the cap is passed on uncounted: the HTTP parser reads
exactly that many bytes (and refuses a request that also says ``Transfer-Encoding``), so it
cannot pass the cap, and the wrappers would only cost time at every request.
A 413 closes the connection (``Connection: close``): the rest of the body is never read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from qkdnet.keys.etsi014 import ApiError

#: The largest request body a KME reads (bytes): a Key IDs request of 128 key_IDs is ~7 KiB.
MAX_BODY_BYTES = 64 * 1024

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def too_large(max_bytes: int) -> ApiError:
    """The 413 error for a body over ``max_bytes``."""
    return ApiError(413, "request body too large",
                    [{"limit_bytes": max_bytes}])


class BodyLimit:
    """``app`` behind the body cap (``max_bytes`` bytes); a Starlette middleware class
    (``app.add_middleware(BodyLimit, max_bytes=...)``)."""

    def __init__(self, app: App, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            error = (too_large(cap) if declared.isdigit()
                     else ApiError(400, "Content-Length shall be a number of bytes"))
            await _reply(send, error)
            return
        if declared is not None:
            await self.app(scope, receive, send)  # the parser stops at the declared length
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise too_large(cap)  # the app's error handler answers 413
            return message

        async def closing(message: Message) -> None:
            if message.get("type") == "http.response.start" and message.get("status") == 413:
                message = {**message,
                           "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, closing)


async def _reply(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
