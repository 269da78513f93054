"""The ETSI GS QKD 014 REST API of one node's KME, as a plain ASGI application.

Four operations (Get status; Get key and Get key with key IDs, GET and POST) under
``/api/v1/keys``, and ``/openapi.json``: dispatched by hand rather than through FastAPI's
routing, validation and middleware stack, which cost more CPU per call than the key logic
itself (``benchmarks/kme_load.py`` prints the server's CPU per call). The OpenAPI document
is still FastAPI's, made once from the pydantic models below.

The calling SAE is identified from its TLS client certificate by
:func:`qkdnet.live.pki.identify_sae` (clientAuth, not a CA, ``sae-id:`` URI; CN only if
allowed) once per TLS connection (the result is kept in the connection's ``tls`` scope
extension, see :func:`qkdnet.live.tls_server.with_client_certificate`), and checked on
every request against the CRL (:mod:`qkdnet.live.revocation`, which looks at the file at
most once a second); a certificate refused either
way gets 401 with the reason. Bodies are read as JSON whatever the Content-Type (some C
clients send none); every error reply is a JSON Error object ``{"message", "details"?}``,
also for an unknown path (404), a wrong method (405, with ``Allow``), malformed JSON, a
number JSON cannot hold (``1e400``, ``NaN``, ``Infinity``) and nesting too deep to parse
(all 400), and a body over :data:`~qkdnet.live.request_limits.MAX_BODY_BYTES` (413).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
import math
import time
import types
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from pydantic import BaseModel

from qkdnet.keys.etsi014 import (
    ApiError,
    Limits,
    key_container,
    key_ids,
    key_order,
    status_document,
)
from qkdnet.live.audit import AuditLog
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.pki import NotAnSae, certificate_serial, identify_sae, sae_id_from_certificate
from qkdnet.live.request_limits import MAX_BODY_BYTES, BodyLimit
from qkdnet.live.revocation import RevocationWatch
from qkdnet.live.tls_server import client_certificate, connection_tls

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/api/v1/keys"


class Status(BaseModel):
    source_KME_ID: str
    target_KME_ID: str
    master_SAE_ID: str
    slave_SAE_ID: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_SAE_ID_count: int
    status_extension: dict[str, Any] | None = None


class KeyRequestBody(BaseModel):
    number: int = 1
    size: int | None = None
    additional_slave_SAE_IDs: list[str] = []
    extension_mandatory: list[dict[str, Any]] = []
    extension_optional: list[dict[str, Any]] = []


class Key(BaseModel):
    key_ID: str
    key: str


class KeyContainer(BaseModel):
    keys: list[Key]


class KeyIDEntry(BaseModel):
    key_ID: str


class KeyIDs(BaseModel):
    key_IDs: list[KeyIDEntry]


class Error(BaseModel):
    message: str
    details: list[dict[str, Any]] | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "Bad request format"},
    401: {"model": Error, "description": "Unauthorized"},
    413: {"model": Error, "description": "Request body too large"},
    503: {"model": Error, "description": "Error on the server side (e.g. not enough key)"},
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {
        "schema": _inlined(model.model_json_schema())}}}}


def _inlined(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """``schema`` with every ``{"$ref": "#/$defs/X"}`` replaced by X: a model's own ``$defs``
    do not resolve once the schema sits inside the OpenAPI document."""
    if defs is None and isinstance(schema, dict):
        defs = schema.get("$defs", {})
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and defs is not None:
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inlined(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inlined(v, defs) for v in schema]
    return schema


def _query(*params: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    """OpenAPI for GET query parameters the handlers read themselves (strictly, see
    :func:`qkdnet.keys.etsi014.key_order`)."""
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": schema,
                            "description": text} for name, schema, text in params]}


_KEY_QUERY = _query(("number", {"type": "integer", "minimum": 1}, "number of keys"),
                    ("size", {"type": "integer", "minimum": 8}, "key size in bits"))
_KEY_ID_QUERY = _query(("key_ID", {"type": "string", "format": "uuid"}, "a key_ID"))


@functools.cache
def _openapi_template() -> dict[str, Any]:
    """The OpenAPI document of every KME (FastAPI's, from the models above), made once."""
    doc = FastAPI(title="qkdnet KME", version="1.1.1",
                  description="ETSI GS QKD 014 V1.1.1 key delivery over mutual TLS.")
    operations: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
            ("slave_SAE_ID", "status", "GET", {"response_model": Status,
                                               "response_model_exclude_none": True}),
            ("slave_SAE_ID", "enc_keys", "GET", {"openapi_extra": _KEY_QUERY}),
            ("slave_SAE_ID", "enc_keys", "POST",
             {"openapi_extra": _body_schema(KeyRequestBody)}),
            ("master_SAE_ID", "dec_keys", "GET", {"openapi_extra": _KEY_ID_QUERY}),
            ("master_SAE_ID", "dec_keys", "POST", {"openapi_extra": _body_schema(KeyIDs)}))
    for sae, operation, method, extra in operations:
        doc.add_api_route(f"{PREFIX}/{{{sae}}}/{operation}", _stub(sae), methods=[method],
                          name=f"{method.lower()}_{operation}", responses=_ERRORS,
                          **{"response_model": KeyContainer, **extra})
    return doc.openapi()


def _stub(name: str) -> Callable[..., Awaitable[None]]:
    """An endpoint with one str path parameter ``name``, for the document only (never
    called: :class:`KmeApp` serves the operations)."""
    async def endpoint(**_: str) -> None:
        return None
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)])
    return endpoint


def openapi_document(node: str) -> dict[str, Any]:
    """The OpenAPI document of the KME of ``node``."""
    doc = copy.deepcopy(_openapi_template())
    doc["info"]["title"] = f"qkdnet KME {node}"
    return doc


#: The methods each operation serves (the last path segment), for dispatch and ``Allow``.
_METHODS = {"status": ("GET",), "enc_keys": ("GET", "POST"), "dec_keys": ("GET", "POST")}
_JSON = (b"content-type", b"application/json")


class KmeApp:
    """The KME of one node (an ASGI 3 application); see :func:`make_kme_app`."""

    def __init__(self, keynet: KeyNetwork, node: str, limits: Limits, *,
                 allow_cn_identity: bool, revocation: RevocationWatch | None,
                 audit: AuditLog | None) -> None:
        self.keynet = keynet
        self.node = node
        self.limits = limits
        self.allow_cn_identity = allow_cn_identity
        self.revocation = revocation
        self.audit = audit
        self._openapi: bytes | None = None  # made at the first ask
        # where a connection keeps its certificate's identity under this app's CN policy
        self._identity_key = f"qkdnet.sae_identity:cn={allow_cn_identity}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websockets: the server runs without them
        try:
            status, document, headers = await self._dispatch(scope, receive)
        except ApiError as exc:
            if exc.status == 401 and self.audit is not None:
                _audit_refusal(self.audit, scope, self.node, exc.message)
            status, document, headers = exc.status, exc.body(), ()
        except Exception:  # a bug, never an input: an Error object, the traceback logged
            log.exception("KME %s: internal error on %s %s", self.node, scope.get("method"),
                          scope.get("path"))
            status, document, headers = 500, {"message": "internal error of the KME"}, ()
        body = document if isinstance(document, bytes) else _dumps(document)
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", b"%d" % len(body)), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, scope: Scope, receive: Receive
                        ) -> tuple[int, dict[str, Any] | bytes, tuple[tuple[bytes, bytes], ...]]:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/openapi.json":
            if method != "GET":
                return 405, {"message": "Method Not Allowed"}, ((b"allow", b"GET"),)
            if self._openapi is None:
                self._openapi = _dumps(openapi_document(self.node))
            return 200, self._openapi, ()
        sae, operation = _operation(path)
        if sae is None:
            return 404, {"message": "Not Found"}, ()
        allowed = _METHODS[operation]
        if method not in allowed:
            return 405, {"message": "Method Not Allowed"}, (
                (b"allow", ", ".join(allowed).encode()),)
        body = await _json_body(receive, {} if operation == "enc_keys" else None) \
            if method == "POST" else None
        caller = self._caller(scope)
        query = _query_params(scope.get("query_string", b""))
        if operation == "enc_keys":
            order = key_order(body, query, self.limits)
            return 200, key_container(await self._enc_keys(caller, sae, order.number,
                                                           order.size)), ()
        if operation == "dec_keys":
            ids = key_ids(body, query, self.limits)
            return 200, key_container(await self._dec_keys(caller, sae, ids)), ()
        return 200, self._status(caller, sae), ()

    async def _enc_keys(self, master: str, slave: str, number: int, size: int
                        ) -> list[tuple[str, bytes]]:
        """Get key, counted for the pair's service (:mod:`qkdnet.management.services`):
        served with its response delay (s), or refused (503) with its reason; other
        refusals (400, 401) are the client's and not counted."""
        started = time.perf_counter()
        try:
            keys = await self.keynet.enc_keys(master, slave, number, size)
        except ApiError as exc:
            if exc.status == 503 and self.keynet.network.may_share_keys(master, slave):
                self.keynet.requests.refused(master, slave, number, exc.message)
            raise
        self.keynet.requests.delivered(master, slave, number, number * size,
                                       time.perf_counter() - started)
        return keys

    async def _dec_keys(self, slave: str, master: str, ids: list[str]
                        ) -> list[tuple[str, bytes]]:
        """Get key with key IDs, counted for the pair's service: keys handed over, or
        not (400 unknown, 503), where the master is a known SAE the slave may pair with."""
        try:
            keys = await self.keynet.dec_keys(slave, master, ids)
        except ApiError as exc:
            if exc.status in (400, 503) and self.keynet.network.may_share_keys(master, slave):
                self.keynet.requests.released(master, slave, len(ids), handed=False)
            raise
        self.keynet.requests.released(master, slave, len(ids), handed=True)
        return keys

    def _status(self, master: str, slave: str) -> dict[str, Any]:
        keynet, lim = self.keynet, self.limits
        target = keynet.sae_node(slave)
        if target is None:
            raise ApiError(400, "unknown slave SAE ID")
        count = keynet.stored_key_count(master, slave, lim.key_size, lim.max_key_count)
        status = status_document(self.node, target, master, slave, count, lim)
        # a documented extension (ETSI GS QKD 014 allows status_extension): see README
        status["status_extension"] = {"held_key_ttl_s": keynet.held_key_ttl_s,
                                      "expired_held_keys": keynet.expired_held_keys.get(
                                          target, 0)}
        return status

    def _caller(self, scope: Scope) -> str:
        """The calling SAE, or ApiError 401 saying why not. The certificate is parsed once
        per connection (kept in its ``tls`` extension); revocation and the SAE's node are
        checked on every request (a CRL may change while a connection is open)."""
        tls = connection_tls(scope)
        identity: tuple[str | None, str, int | None] | None = \
            tls.get(self._identity_key) if tls is not None else None
        if identity is None:
            identity = self._identify(client_certificate(scope))
            if tls is not None:
                tls[self._identity_key] = identity
        sae, refusal, serial = identity
        if sae is None:
            raise ApiError(401, refusal)
        if self.revocation is not None and serial is not None and \
                self.revocation.is_revoked(serial):
            raise ApiError(401, "client certificate is revoked")
        node = self.keynet.sae_node(sae)
        if node is None:
            raise ApiError(401, "client certificate does not identify a known SAE")
        if node != self.node:
            raise ApiError(401, f"SAE {sae!r} is not attached to KME {self.node!r}")
        return sae

    def _identify(self, der: bytes | None) -> tuple[str | None, str, int | None]:
        """(SAE ID, "", serial) of an accepted client certificate; (None, why not, None)
        for a refused one."""
        if der is None:
            return None, "no client certificate", None
        try:
            sae = identify_sae(der, allow_cn_identity=self.allow_cn_identity)
        except NotAnSae as exc:
            return None, str(exc), None
        return sae, "", certificate_serial(der)


def _operation(path: str) -> tuple[str | None, str]:
    """(SAE ID, operation) of ``/api/v1/keys/{SAE_ID}/{operation}``; (None, "") for any
    other path."""
    if not path.startswith(PREFIX + "/"):
        return None, ""
    sae, slash, operation = path[len(PREFIX) + 1:].partition("/")
    if not sae or not slash or operation not in _METHODS:
        return None, ""
    return sae, operation


#: The query of a request without one (most: POST bodies carry the order).
_NO_QUERY: Mapping[str, str] = types.MappingProxyType({})


def _query_params(raw: bytes) -> Mapping[str, str]:
    """The query string's parameters, as Starlette's ``QueryParams`` reads them (Latin-1,
    blank values kept, the last of a repeated name wins), parsed only when there is one."""
    if not raw:
        return _NO_QUERY
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


#: Compact JSON, as FastAPI's JSONResponse writes it (one encoder for all: json.dumps builds
#: one per call when given options).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps(document: dict[str, Any]) -> bytes:
    """Compact JSON, as FastAPI's JSONResponse writes it."""
    return _ENCODER.encode(document).encode()


def make_kme_app(keynet: KeyNetwork, node: str, limits: Limits | None = None, *,
                 allow_cn_identity: bool = False,
                 revocation: RevocationWatch | None = None,
                 audit: AuditLog | None = None) -> BodyLimit:
    """The KME of ``node``: Get status, Get key and Get key with key IDs (GET and POST),
    behind the body cap.

    ``allow_cn_identity``: accept a client certificate that names its SAE by CN only;
    ``revocation``: refuse certificates its CRL lists; ``audit``: where each 401 is
    recorded (who, from where, what, why).
    """
    app = KmeApp(keynet, node, limits or Limits(), allow_cn_identity=allow_cn_identity,
                 revocation=revocation, audit=audit)
    return BodyLimit(app, max_bytes=MAX_BODY_BYTES)


async def _json_body(receive: Receive, empty: Any) -> Any:
    """The body as JSON whatever its Content-Type; ``empty`` when there is none. Strict:
    ``NaN``, ``Infinity`` and numbers a float cannot hold (``1e400``) are not JSON numbers
    (RFC 8259), and nesting too deep for the parser is refused, all with 400."""
    chunks = []
    while True:
        message = await receive()  # behind BodyLimit: ApiError 413 past the cap
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the client went away before its request body was complete")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw.strip():
        return empty
    try:
        # as json.loads reads bytes (UTF-8, -16 or -32 by their first bytes), without the
        # decoder json.loads would build for these hooks at every call
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "request body is not valid JSON: nested too deep") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:32]} is out of range")
    return value


#: The strict decoder of request bodies (one for all: json.loads builds one per call when
#: given hooks).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def _audit_refusal(audit: AuditLog, scope: Scope, node: str, reason: str) -> None:
    """One audit line for a 401 at KME ``node``: the SAE the client certificate names (if
    any), the client's address, the call and the reason (never a key or a key_ID list)."""
    der = client_certificate(scope)
    client = scope.get("client")
    audit.record("kme-refused", sae_id_from_certificate(der) if der else None,
                 f"{client[0]}:{client[1]}" if client else "unknown",
                 kme=node, method=scope.get("method"), path=scope.get("path"), status=401,
                 reason=reason)
