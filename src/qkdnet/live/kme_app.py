"""The ETSI GS QKD 014 REST API of one node's KME, as a FastAPI application.

The calling SAE is identified from its TLS client certificate by
:func:`qkdnet.live.pki.identify_sae` (clientAuth, not a CA, ``sae-id:`` URI; CN only if
allowed), checked on every request against the CRL (:mod:`qkdnet.live.revocation`); a
certificate refused either way gets 401 with the reason. Bodies are read as JSON whatever
the Content-Type (some C clients send none); every error reply is a JSON Error object.
OpenAPI: ``/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from qkdnet.keys.etsi014 import (
    ApiError,
    Limits,
    key_container,
    key_ids,
    key_order,
    status_document,
)
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.pki import NotAnSae, certificate_serial, identify_sae
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
    503: {"model": Error, "description": "Error on the server side (e.g. not enough key)"},
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {
        "schema": model.model_json_schema()}}}}


def make_kme_app(keynet: KeyNetwork, node: str, limits: Limits | None = None, *,
                 allow_cn_identity: bool = False,
                 revocation: RevocationWatch | None = None) -> FastAPI:
    """The KME of ``node``: Get status, Get key and Get key with key IDs (GET and POST).

    ``allow_cn_identity``: accept a client certificate that names its SAE by CN only;
    ``revocation``: refuse certificates its CRL lists.
    """
    lim = limits or Limits()
    app = FastAPI(title=f"qkdnet KME {node}", version="1.1.1",
                  description="ETSI GS QKD 014 V1.1.1 key delivery over mutual TLS.")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

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
             responses=_ERRORS)
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
             responses=_ERRORS)
    async def get_dec_keys(master_SAE_ID: str, request: Request) -> dict[str, Any]:
        return dec_keys(master_SAE_ID, request, None)

    @app.post(f"{PREFIX}/{{master_SAE_ID}}/dec_keys", response_model=KeyContainer,
              responses=_ERRORS, openapi_extra=_body_schema(KeyIDs))
    async def post_dec_keys(master_SAE_ID: str, request: Request) -> dict[str, Any]:
        return dec_keys(master_SAE_ID, request, await _json_body(request, None))

    return app


async def _json_body(request: Request, empty: Any) -> Any:
    """The body as JSON whatever its Content-Type; ``empty`` when there is none."""
    raw = await request.body()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
