"""An SAE's client for ETSI GS QKD 014 V1.1.1: Get status, Get key and Get key with key IDs
at the SAE's own KME, over keep-alive HTTPS with mutual TLS (httpx).

The SAE authenticates with its client certificate and trusts only the network's CA, whatever
the environment says (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` and proxies are ignored).
Sizes are in bits. The client sends what it is asked to and leaves judging the request to the
KME; it checks the replies it gets. Errors::

    QkdnetError
     └── KmeError              the call did not deliver (``status``: HTTP status, 0 if none)
          ├── KmeRefused       the KME answered with an ETSI Error object
          │    ├── BadRequest        400 (malformed, unsupported, key not found)
          │    ├── Unauthorized      401 (this SAE may not have the keys)
          │    └── KmeUnavailable    503 (not enough key, no route)
          ├── KmeUnreachable   no reply: connection, TLS or timeout
          └── KmeProtocolError the reply is not what the standard prescribes

Key material is never put in a repr, a log or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

from qkdnet.errors import QkdnetError

__all__ = [
    "BadRequest",
    "Key",
    "KmeError",
    "KmeProtocolError",
    "KmeRefused",
    "KmeStatus",
    "KmeUnavailable",
    "KmeUnreachable",
    "SaeClient",
    "Unauthorized",
]

PREFIX = "/api/v1/keys"
#: Seconds a call may take; a 64-hop relay under load stays far below.
DEFAULT_TIMEOUT_S = 30.0

Method = Literal["GET", "POST"]


class KmeError(QkdnetError):
    """A call to the KME did not deliver; ``status`` is the HTTP status (0: no reply)."""

    status = 0

    def __init__(self, message: str, details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class KmeRefused(KmeError):
    """The KME answered with an Error object: the standard's ``message`` and ``details``."""

    def __init__(self, status: int, message: str,
                 details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(f"KME refused ({status}): {message}", details)
        self.status = status
        self.message = message


class BadRequest(KmeRefused):
    """400: the request is malformed or unsupported, or a key_ID is not held."""


class Unauthorized(KmeRefused):
    """401: the KME does not let this SAE have the keys."""


class KmeUnavailable(KmeRefused):
    """503: the KME cannot serve now (for example, not enough key on the route)."""


class KmeUnreachable(KmeError):
    """No reply: the connection, the TLS handshake or the wait failed."""


class KmeProtocolError(KmeError):
    """The reply does not follow ETSI GS QKD 014."""


_REFUSALS: dict[int, type[KmeRefused]] = {400: BadRequest, 401: Unauthorized,
                                          503: KmeUnavailable}


@dataclass(frozen=True)
class Key:
    """One delivered key: its ``key_id`` and its ``material`` (kept out of the repr)."""

    key_id: str
    material: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Key length (bits)."""
        return 8 * len(self.material)


@dataclass(frozen=True)
class KmeStatus:
    """The Status object of a master/slave pair (sizes in bits)."""

    source_kme_id: str
    target_kme_id: str
    master_sae_id: str
    slave_sae_id: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_sae_id_count: int
    status_extension: Mapping[str, Any] | None = None


_STATUS_FIELDS = {"source_KME_ID": "source_kme_id", "target_KME_ID": "target_kme_id",
                  "master_SAE_ID": "master_sae_id", "slave_SAE_ID": "slave_sae_id",
                  "key_size": "key_size", "stored_key_count": "stored_key_count",
                  "max_key_count": "max_key_count", "max_key_per_request": "max_key_per_request",
                  "max_key_size": "max_key_size", "min_key_size": "min_key_size",
                  "max_SAE_ID_count": "max_sae_id_count"}


def tls_context(cert: str | Path, key: str | Path, ca: str | Path) -> ssl.SSLContext:
    """A client TLS context that presents ``cert``/``key`` and trusts only ``ca``."""
    try:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise QkdnetError(f"cannot load the SAE certificate {cert}, its key or the CA {ca}: "
                          f"{exc.strerror or exc}") from None
    return context


class SaeClient:
    """One SAE at its KME (``kme_url`` like ``https://127.0.0.1:8443``).

    One keep-alive connection pool per client; use it as a context manager or call
    :meth:`close`. ``transport`` replaces the network (an ``httpx.MockTransport`` in tests).
    """

    def __init__(self, kme_url: str, cert: str | Path, key: str | Path, ca: str | Path,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.kme_url = kme_url.rstrip("/")
        self._http = httpx.Client(base_url=self.kme_url + PREFIX,
                                  verify=tls_context(cert, key, ca), trust_env=False,
                                  timeout=timeout_s, transport=transport)

    @classmethod
    def from_manifest(cls, manifest: str | Path | Mapping[str, Any], sae_id: str,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> Self:
        """The client of ``sae_id`` as listed in a ``qkdnet serve`` manifest (its file, or
        the document read already)."""
        document = manifest if isinstance(manifest, Mapping) else _read_manifest(Path(manifest))
        saes = document.get("saes", {})
        if sae_id not in saes:
            raise QkdnetError(f"SAE {sae_id!r} is not in the manifest; it lists: "
                              + (", ".join(sorted(saes)) or "none"))
        try:
            entry = saes[sae_id]
            return cls(entry["kme_url"], entry["cert"], entry["key"], document["ca"], timeout_s)
        except KeyError as exc:
            raise QkdnetError(f"the manifest lacks {exc} for SAE {sae_id!r}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._http.close()

    def __repr__(self) -> str:
        return f"SaeClient({self.kme_url!r})"

    # --- the three calls -------------------------------------------------------------------

    def status(self, slave: str) -> KmeStatus:
        """Get status: what the KME holds for this SAE as master and ``slave``."""
        return parse_status(self._call("GET", f"{_quoted(slave)}/status"))

    def enc_keys(self, slave: str, number: int = 1, size: int | None = None, *,
                 method: Method = "POST", additional_slave_sae_ids: Sequence[str] = (),
                 extension_mandatory: Sequence[Mapping[str, Any]] = (),
                 extension_optional: Sequence[Mapping[str, Any]] = ()) -> list[Key]:
        """Get key: ``number`` new keys of ``size`` bits (the KME's default size if None)
        shared with ``slave``. The GET form carries only ``number`` and ``size``."""
        body: dict[str, Any] = {"number": number}
        if size is not None:
            body["size"] = size
        extra = {"additional_slave_SAE_IDs": list(additional_slave_sae_ids),
                 "extension_mandatory": list(extension_mandatory),
                 "extension_optional": list(extension_optional)}
        if any(extra.values()) and method == "GET":
            raise ValueError("GET enc_keys carries only number and size; use POST")
        body.update({name: value for name, value in extra.items() if value})
        reply = self._call(method, f"{_quoted(slave)}/enc_keys", body)
        return parse_keys(reply, expected=number, size=size)

    def dec_keys(self, master: str, key_ids: Sequence[str], *,
                 method: Method = "POST") -> list[Key]:
        """Get key with key IDs: the keys ``master`` got for this SAE (exactly those, in the
        order the KME gives them). The GET form carries one key_ID."""
        ids = list(key_ids)
        if method == "GET":
            if len(ids) != 1:
                raise ValueError(f"GET dec_keys carries one key_ID, not {len(ids)}; use POST")
            body: dict[str, Any] = {"key_ID": ids[0]}
        else:
            body = {"key_IDs": [{"key_ID": key_id} for key_id in ids]}
        keys = parse_keys(self._call(method, f"{_quoted(master)}/dec_keys", body))
        if sorted(k.key_id for k in keys) != sorted(ids):
            raise KmeProtocolError("the KME delivered other key_IDs than were asked for")
        return keys

    # --- HTTP --------------------------------------------------------------------------------

    def _call(self, method: Method, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One request (a GET carries ``body`` as its query); the reply's JSON."""
        try:
            if method == "GET":
                reply = self._http.get(path, params=dict(body or {}))
            else:
                reply = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise KmeUnreachable(f"no reply from the KME at {self.kme_url}: "
                                 f"{type(exc).__name__}: {exc}") from None
        return parse_reply(reply.status_code, reply.content)


# --- replies: pure functions of status and bytes ----------------------------------------------

def parse_reply(status: int, content: bytes) -> Any:
    """The JSON of a 200 reply; a :class:`KmeRefused` (or :class:`KmeProtocolError`) for
    anything else."""
    try:
        document = json.loads(content)
    except ValueError:
        document = None
    if status == 200:
        if document is None:
            raise KmeProtocolError("the KME's 200 reply is not JSON")
        return document
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, str):
        raise KmeProtocolError(f"the KME answered {status} without an ETSI Error object")
    details = document.get("details") or []
    if not isinstance(details, list):
        details = []
    raise _REFUSALS.get(status, KmeRefused)(status, message, details)


def parse_status(document: Any) -> KmeStatus:
    """A Status object, checked field by field."""
    if not isinstance(document, dict):
        raise KmeProtocolError("the Status reply is not a JSON object")
    missing = sorted(set(_STATUS_FIELDS) - set(document))
    if missing:
        raise KmeProtocolError(f"the Status reply lacks {', '.join(missing)}")
    values = {ours: document[theirs] for theirs, ours in _STATUS_FIELDS.items()}
    for name, value in values.items():
        wanted = str if name.endswith("_id") else int
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise KmeProtocolError(f"the Status field {name} is not a {wanted.__name__}")
    extension = document.get("status_extension")
    return KmeStatus(**values, status_extension=extension if isinstance(extension, dict)
                     else None)


def parse_keys(document: Any, expected: int | None = None,
               size: int | None = None) -> list[Key]:
    """A Key container's keys; ``expected`` keys of ``size`` bits when given."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KmeProtocolError("the reply is not a Key container with keys")
    keys = [_key(entry, index) for index, entry in enumerate(entries)]
    if expected is not None and len(keys) != expected:
        raise KmeProtocolError(f"the KME delivered {len(keys)} keys, not {expected}")
    wrong = [k.key_id for k in keys if size is not None and k.size != size]
    if wrong:
        raise KmeProtocolError(f"keys {', '.join(wrong)} are not {size} bits long")
    if len({k.key_id for k in keys}) != len(keys):
        raise KmeProtocolError("the KME delivered one key_ID twice")
    return keys


def _key(entry: Any, index: int) -> Key:
    if not isinstance(entry, dict) or not isinstance(entry.get("key_ID"), str) \
            or not isinstance(entry.get("key"), str):
        raise KmeProtocolError(f"key {index} of the container lacks a key_ID or key string")
    try:
        material = base64.b64decode(entry["key"], validate=True)
    except (binascii.Error, ValueError):
        # the value itself stays out of the message: it may be most of a key
        raise KmeProtocolError(f"key {entry['key_ID']} is not valid base64") from None
    return Key(entry["key_ID"], material)


def _read_manifest(path: Path) -> Mapping[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QkdnetError(f"cannot read the manifest {path}: {exc.strerror}") from None
    except ValueError:
        raise QkdnetError(f"the manifest {path} is not JSON") from None
    if not isinstance(document, dict):
        raise QkdnetError(f"the manifest {path} is not a JSON object")
    return document


def _quoted(sae_id: str) -> str:
    """An SAE ID as one URL path segment."""
    return quote(sae_id, safe="")
