"""The ETSI GS QKD 014 REST API of one node's KME, as a FastAPI application.

The calling SAE is identified from its TLS client certificate by
:func:`qkdnet.live.pki.identify_sae` (clientAuth, not a CA, ``sae-id:`` URI; CN only if
allowed), checked on every request against the CRL (:mod:`qkdnet.live.revocation`); a
certificate refused either way gets 401 with the reason. Bodies are read as JSON whatever
the Content-Type (some C clients send none); every error reply is a JSON Error object
``{"message", "details"?}``, also for an unknown path (404), a wrong method (405), malformed
JSON, a number JSON cannot hold (``1e400``, ``NaN``, ``Infinity``) and nesting too deep to
parse (all 400), and a body over :data:`~qkdnet.live.request_limits.MAX_BODY_BYTES` (413).
OpenAPI: ``/openapi.json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

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
from qkdnet.live.tls_server import client_certificate

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


def make_kme_app(keynet: KeyNetwork, node: str, limits: Limits | None = None, *,
                 allow_cn_identity: bool = False,
                 revocation: RevocationWatch | None = None,
                 audit: AuditLog | None = None) -> FastAPI:
    """The KME of ``node``: Get status, Get key and Get key with key IDs (GET and POST).

    ``allow_cn_identity``: accept a client certificate that names its SAE by CN only;
    ``revocation``: refuse certificates its CRL lists; ``audit``: where each 401 is
    recorded (who, from where, what, why).
    """
    lim = limits or Limits()
    app = FastAPI(title=f"qkdnet KME {node}", version="1.1.1",
                  description="ETSI GS QKD 014 V1.1.1 key delivery over mutual TLS.")

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 401 and audit is not None:
            _audit_refusal(audit, request, node, exc.message)
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # 404 and 405 (with its Allow header) as ETSI Error objects, not FastAPI's "detail"
        return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        # a bug, never an input: still an Error object, and the traceback goes to the log
        return JSONResponse({"message": "internal error of the KME"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"message": "request does not match the API",
                             "details": [{"problem": str(e.get("msg", ""))[:200]}
                                         for e in exc.errors()[:8]]}, status_code=400)

    def caller(request: Request) -> str:
        der = client_certificate(request.scope)
        if der is None:
            raise ApiError(401, "no client certificate")
        try:
            sae = identify_sae(der, allow_cn_identity=allow_cn_identity)
        except NotAnSae as exc:
            raise ApiError(401, str(exc)) from None
        serial = certificate_serial(der)
        if revocation is not None and serial is not None and revocation.is_revoked(serial):
            raise ApiError(401, "client certificate is revoked")
        if keynet.sae_node(sae) is None:
            raise ApiError(401, "client certificate does not identify a known SAE")
        if keynet.sae_node(sae) != node:
            raise ApiError(401, f"SAE {sae!r} is not attached to KME {node!r}")
        return sae

    @app.get(f"{PREFIX}/{{slave_SAE_ID}}/status", response_model=Status, responses=_ERRORS,
             response_model_exclude_none=True)
    async def get_status(slave_SAE_ID: str, request: Request) -> dict[str, Any]:
        master = caller(request)
        target = keynet.sae_node(slave_SAE_ID)
        if target is None:
            raise ApiError(400, "unknown slave SAE ID")
        count = keynet.stored_key_count(master, slave_SAE_ID, lim.key_size, lim.max_key_count)
        status = status_document(node, target, master, slave_SAE_ID, count, lim)
        # a documented extension (ETSI GS QKD 014 allows status_extension): see README
        status["status_extension"] = {"held_key_ttl_s": keynet.held_key_ttl_s,
                                      "expired_held_keys": keynet.expired_held_keys.get(target, 0)}
        return status

    async def enc_keys(slave: str, request: Request, body: Any) -> dict[str, Any]:
        master = caller(request)
        order = key_order(body, request.query_params, lim)
        keys = await keynet.enc_keys(master, slave, order.number, order.size)
        return key_container(keys)

    @app.get(f"{PREFIX}/{{slave_SAE_ID}}/enc_keys", response_model=KeyContainer,
             responses=_ERRORS, openapi_extra=_KEY_QUERY)
    async def get_enc_keys(slave_SAE_ID: str, request: Request) -> dict[str, Any]:
        return await enc_keys(slave_SAE_ID, request, None)

    @app.post(f"{PREFIX}/{{slave_SAE_ID}}/enc_keys", response_model=KeyContainer,
              responses=_ERRORS, openapi_extra=_body_schema(KeyRequestBody))
    async def post_enc_keys(slave_SAE_ID: str, request: Request) -> dict[str, Any]:
        return await enc_keys(slave_SAE_ID, request, await _json_body(request, {}))

    def dec_keys(master: str, request: Request, body: Any) -> dict[str, Any]:
        slave = caller(request)
        ids = key_ids(body, request.query_params, lim)
        return key_container(keynet.dec_keys(slave, master, ids))

    @app.get(f"{PREFIX}/{{master_SAE_ID}}/dec_keys", response_model=KeyContainer,
             responses=_ERRORS, openapi_extra=_KEY_ID_QUERY)
    async def get_dec_keys(master_SAE_ID: str, request: Request) -> dict[str, Any]:
        return dec_keys(master_SAE_ID, request, None)

    @app.post(f"{PREFIX}/{{master_SAE_ID}}/dec_keys", response_model=KeyContainer,
              responses=_ERRORS, openapi_extra=_body_schema(KeyIDs))
    async def post_dec_keys(master_SAE_ID: str, request: Request) -> dict[str, Any]:
        return dec_keys(master_SAE_ID, request, await _json_body(request, None))

    return app


async def _json_body(request: Request, empty: Any) -> Any:
    """The body as JSON whatever its Content-Type; ``empty`` when there is none. Strict:
    ``NaN``, ``Infinity`` and numbers a float cannot hold (``1e400``) are not JSON numbers
    (RFC 8259), and nesting too deep for the parser is refused, all with 400."""
    raw = await request.body()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
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


def _audit_refusal(audit: AuditLog, request: Request, node: str, reason: str) -> None:
    """One audit line for a 401 at KME ``node``: the SAE the client certificate names (if
    any), the client's address, the call and the reason (never a key or a key_ID list)."""
    der = client_certificate(request.scope)
    client = request.client
    audit.record("kme-refused", sae_id_from_certificate(der) if der else None,
                 f"{client.host}:{client.port}" if client else "unknown",
                 kme=node, method=request.method, path=request.url.path, status=401,
                 reason=reason)
