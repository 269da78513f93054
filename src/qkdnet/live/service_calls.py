"""What the management services (:mod:`qkdnet.live.ems_service`,
:mod:`qkdnet.live.nms_service`) do with every call over mutual TLS: who the caller is (the
``kme-id:`` its client certificate names, parsed once per connection), its JSON body, and
a JSON answer. Plain ASGI, as :mod:`qkdnet.live.km_app`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.pki import kme_id_from_certificate
from qkdnet.live.tls_server import client_certificate, connection_tls

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_IDENTITY = "qkdnet.service_peer"
_JSON = (b"content-type", b"application/json")


def peer_id(scope: Scope) -> str:
    """The id the client certificate names (``kme-id:`` URI); ApiError 401 if none."""
    tls = connection_tls(scope)
    peer: str | None = tls.get(_IDENTITY) if tls is not None else None
    if peer is None:
        der = client_certificate(scope)
        peer = kme_id_from_certificate(der) if der is not None else None
        if peer is None:
            raise ApiError(401, "the client certificate names no identity (kme-id: URI)")
        if tls is not None:
            tls[_IDENTITY] = peer
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
