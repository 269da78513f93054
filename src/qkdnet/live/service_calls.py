"""What the services of a deployment (the KM listener, the controller, the device ends,
the EMSs and the NMS) do with every call over mutual TLS: who the caller is (the
``kme-id:`` its client certificate names, parsed once per connection), its JSON body, and
a JSON answer. Plain ASGI."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.tls_server import calling_kme

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


def peer_id(scope: Scope) -> str:
    """The id the client certificate names (``kme-id:`` URI); ApiError 401 if none."""
    peer = calling_kme(scope)
    if peer is None:
        raise ApiError(401, "the client certificate names no identity (kme-id: URI)")
    return peer


async def json_body(receive: Receive) -> Any:
    """The request body as JSON; ApiError 400 if it is not (or the caller left)."""
    chunks = []
    more = True
    while more:
        message = await receive()  # behind BodyLimit: ApiError 413 past the cap
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the caller went away before its body was complete")
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body: not JSON") from None


async def answer(send: Send, status: int, document: dict[str, Any]) -> None:
    """A JSON answer."""
    body = json.dumps(document, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
