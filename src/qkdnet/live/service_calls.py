"""What the services of a deployment (the KM listener, the controller, the device ends,
the EMSs and the NMS) do with every call over mutual TLS: who the caller is (the
``kme-id:`` its client certificate names, parsed once per connection), its JSON body, and
a JSON answer. Plain ASGI."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.live.tls_server import calling_kme

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
log = logging.getLogger("qkdnet.live")


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


def endpoint(scope: Scope, endpoints: Mapping[str, str]) -> str:
    """The path of a call to one of ``endpoints`` (path -> its method); ApiError 404 for
    another path, 405 for another method."""
    path: str = scope["path"]
    method = endpoints.get(path)
    if method is None:
        raise ApiError(404, "Not Found")
    if scope["method"] != method:
        raise ApiError(405, "Method Not Allowed")
    return path


async def respond(send: Send, handling: Awaitable[tuple[int, dict[str, Any]]],
                  service: str) -> None:
    """Answer with what ``handling`` gives (status, document), an ApiError as its own
    answer; any other exception is a bug of ``service``, never an input: logged, and 500
    (the caller sends again)."""
    try:
        status, document = await handling
    except ApiError as exc:
        status, document = exc.status, exc.body()
    except Exception:
        log.exception("%s: internal error", service)
        status, document = 500, {"message": f"internal error of the {service}"}
    await answer(send, status, document)
