"""ETSI GS QKD 014 V1.1.1 key delivery: the request checks, documents and error semantics
of the REST API, free of HTTP (the driver in :mod:`qkdnet.live.kme_app` serves them).

Sizes are in bits; keys are base64; key_IDs are UUIDs in their standard text form, made by
the driver (:func:`qkdnet.live.key_ids.new_key_id`), since fresh IDs need randomness the
layer does not hold. Errors carry the standard's status codes and messages: 400 for a
malformed or unsupported request, 401 for a caller that may not have the keys, 503 when the
KME cannot serve (not enough key).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SIZE_NOT_MULTIPLE_OF_8 = "size shall be a multiple of 8"
EXTENSIONS_UNSUPPORTED = "not all extension_mandatory parameters are supported"
NOT_KME_CONFIGURATION = "requested parameters do not adhere to KME configuration"
KEYS_NOT_FOUND = "one or more keys specified are not found on KME"
NOT_ENOUGH_KEY = "keys are not available: not enough key material on the route"

#: A UUID's standard text form (RFC 9562): 32 hex digits grouped 8-4-4-4-12, either case.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
#: An integer as a query string or JSON string may spell it: ASCII digits only (int() would
#: also take Arabic-Indic or full-width digits, spaces and underscores), at most 18 of them.
_DIGITS = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class Limits:
    """What one KME serves: the Status document's configuration fields (sizes in bits)."""

    key_size: int = 256
    max_key_per_request: int = 128
    max_key_size: int = 8192
    min_key_size: int = 64
    max_key_count: int = 100_000
    max_sae_id_count: int = 0  # no multicast (additional_slave_SAE_IDs)


class ApiError(Exception):
    """An error reply: HTTP ``status`` with the standard's JSON body."""

    def __init__(self, status: int, message: str, details: Sequence[Mapping[str, Any]] = ()
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)

    def body(self) -> dict[str, Any]:
        """The Error object: ``message`` and, if any, ``details``."""
        out: dict[str, Any] = {"message": self.message}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class KeyOrder:
    """A checked Get key request: ``number`` keys of ``size`` bits each."""

    number: int
    size: int


def key_order(body: Any, query: Mapping[str, str], limits: Limits) -> KeyOrder:
    """Check a Get key request, from the JSON body (POST) or the query (GET)."""
    if body is None:
        body = {k: query[k] for k in ("number", "size") if k in query}
    if not isinstance(body, Mapping):
        raise ApiError(400, "request body shall be a Key request JSON object")
    if body.get("extension_mandatory"):
        raise ApiError(400, EXTENSIONS_UNSUPPORTED,
                       [{"extension_mandatory": body["extension_mandatory"]}])
    if body.get("additional_slave_SAE_IDs") and limits.max_sae_id_count == 0:
        raise ApiError(400, NOT_KME_CONFIGURATION,
                       [{"parameter": "additional_slave_SAE_IDs",
                         "reason": "this KME does not deliver to several slave SAEs"}])
    number = _integer(body.get("number", 1), "number")
    size = _integer(body.get("size", limits.key_size), "size")
    if size % 8:
        raise ApiError(400, SIZE_NOT_MULTIPLE_OF_8)
    if not 1 <= number <= limits.max_key_per_request:
        raise ApiError(400, NOT_KME_CONFIGURATION,
                       [{"parameter": "number", "allowed": f"1..{limits.max_key_per_request}"}])
    if not limits.min_key_size <= size <= limits.max_key_size:
        raise ApiError(400, NOT_KME_CONFIGURATION,
                       [{"parameter": "size",
                         "allowed": f"{limits.min_key_size}..{limits.max_key_size} bits"}])
    return KeyOrder(number, size)


def key_ids(body: Any, query: Mapping[str, str], limits: Limits) -> list[str]:
    """The key_IDs of a Get key with key IDs request (POST body or ``?key_ID=``)."""
    if body is None:
        ids: list[Any] = [query["key_ID"]] if "key_ID" in query else []
    elif isinstance(body, Mapping) and isinstance(body.get("key_IDs"), list):
        entries = body["key_IDs"]
        if not all(isinstance(e, Mapping) and "key_ID" in e for e in entries):
            raise ApiError(400, "each entry of key_IDs shall be an object with a key_ID")
        ids = [e["key_ID"] for e in entries]
    else:
        raise ApiError(400, "request body shall be a Key IDs JSON object with key_IDs")
    if not 1 <= len(ids) <= limits.max_key_per_request:
        raise ApiError(400, NOT_KME_CONFIGURATION,
                       [{"parameter": "key_IDs", "allowed": f"1..{limits.max_key_per_request}"}])
    for value in ids:
        if not _is_uuid(value):
            raise ApiError(400, "key_ID shall be a UUID", [{"key_ID": str(value)[:64]}])
    # RFC 4122: hex digits are case-insensitive on input; the KMEs make lower-case IDs
    normal = [str(v).lower() for v in ids]
    if len(set(normal)) != len(normal):
        raise ApiError(400, "key_IDs shall not repeat")
    return normal


def status_document(source_kme: str, target_kme: str, master_sae: str, slave_sae: str,
                    stored_key_count: int, limits: Limits) -> dict[str, Any]:
    """The Status object for the master/slave pair."""
    return {
        "source_KME_ID": source_kme,
        "target_KME_ID": target_kme,
        "master_SAE_ID": master_sae,
        "slave_SAE_ID": slave_sae,
        "key_size": limits.key_size,
        "stored_key_count": stored_key_count,
        "max_key_count": limits.max_key_count,
        "max_key_per_request": limits.max_key_per_request,
        "max_key_size": limits.max_key_size,
        "min_key_size": limits.min_key_size,
        "max_SAE_ID_count": limits.max_sae_id_count,
    }


def key_container(keys: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """The Key container object: each key_ID with its key in base64."""
    return {"keys": [{"key_ID": key_id, "key": base64.b64encode(material).decode("ascii")}
                     for key_id, material in keys]}


def _integer(value: Any, name: str) -> int:
    """A JSON integer, an integral finite JSON number, or a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ApiError(400, f"{name} shall be an integer",
                   [{"parameter": name, "value": str(value)[:32], "allowed": "ASCII digits"}])


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None
