"""ETSI GS QKD 020 V1.1.1, the Interoperable Key Management System API, without I/O: the
request bodies checked strictly, RFC 9457 problem details with the standard's type URIs,
and the interop KMS's state machine at a key management domain border.

A peer KMS pushes keys (``ext_keys``) for its initiator SAE to target SAEs; keys for target
SAEs attached to this node are held in the node's :class:`~qkdnet.keys.pool.KeyStore` for
the target (slave) under the initiator (master) and answered ``relayed``. Every key_id
ever associated is kept in a :class:`Ledger` (ids, SAEs, state and time, never a key
value): a replayed key_id never yields a second key, and a voided key_id stays a
tombstone, never delivered afterwards (also after a restart: the ledger is durable).
Keys this node pushes to a peer are recorded too, and reported releasable only once every
intended target has acknowledged them ``relayed``.

Times are passed in (s, on the driver's clock); nothing here reads a clock or a socket.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from qkdnet.errors import KeyStoreError
from qkdnet.keys.pool import HeldKey, KeyStore

TYPE_BASE: Final = "https://qkd.etsi.org/gs020-interop-kms/"
ACK_STATUSES: Final = ("relayed", "failed", "voided", "failed to void", "key not present")
MAX_URL_CHARS: Final = 1024
MAX_MESSAGE_CHARS: Final = 4096
MAX_SAE_ID_CHARS: Final = 64

_TITLES: Final = {
    "missing-parameters": "Missing or malformed parameters",
    "key-routing-error": "Key routing error",
    "unauthorized": "Unauthorized",
    "timeout": "Request timeout",
    "insufficient-key-material": "Insufficient key material",
    "unsupported-mandatory-extension": "Unsupported mandatory extension",
    "server-side-general-error": "Server side general error",
    "ack-not-understood": "Acknowledgement not understood",
    "key-not-present": "Key not present",
    "void-request-not-understood": "Void request not understood",
    "no-key-ids-or-confirmation": "No key IDs or confirmation",
    "about:blank": "Request body too large",  # the only about:blank Problem raised (413)
}
# RFC 9562 text form: 8-4-4-4-12 hexadecimal digits (either case; kept in lower case)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}")
_NIL = "00000000-0000-0000-0000-000000000000"
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class Problem(Exception):
    """An RFC 9457 problem detail: HTTP ``status``, the standard's ``kind`` (the last
    segment of its type URI) and ``details`` (never a key value)."""

    def __init__(self, status: int, kind: str, detail: str, **details: Any) -> None:
        super().__init__(f"{status} {kind}: {detail}")
        self.status = status
        self.kind = kind
        self.details: dict[str, Any] = {"reason": detail, **details}

    def document(self) -> dict[str, Any]:
        """The problem detail document ``{type, status, title, details}``."""
        kind = "about:blank" if self.kind == "about:blank" else TYPE_BASE + self.kind
        return {"type": kind, "status": self.status,
                "title": _TITLES.get(self.kind, self.kind), "details": self.details}


@dataclass(frozen=True, slots=True)
class Limits:
    """How many entries each array of a request may hold."""

    max_keys: int = 1024
    max_target_saes: int = 64
    max_ack_containers: int = 1024
    max_key_ids: int = 1024


@dataclass(frozen=True, slots=True)
class ExtKey:
    """One key of an ``ext_key_container``: its key_id and value (never in a repr)."""

    key_id: str
    value: bytes
    extension: Mapping[str, Any] | None = None

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return f"ExtKey(key_id={self.key_id!r}, value=<{len(self.value)} bytes>)"


@dataclass(frozen=True, slots=True)
class ExtKeys:
    """A checked ``ext_key_container``."""

    keys: tuple[ExtKey, ...]
    initiator: str
    targets: tuple[str, ...]
    callback_url: str | None = None
    extension_mandatory: tuple[Mapping[str, Any], ...] = ()
    extension_optional: tuple[Mapping[str, Any], ...] = ()

    def document(self) -> dict[str, Any]:
        """The ``ext_key_container`` JSON object (with the key values, base64)."""
        doc: dict[str, Any] = {
            "keys": [{"key_id": k.key_id, "value": base64.b64encode(k.value).decode(),
                      **({"extension": dict(k.extension)} if k.extension else {})}
                     for k in self.keys],
            "initiator_sae_id": self.initiator, "target_sae_ids": list(self.targets)}
        if self.callback_url is not None:
            doc["ack_callback_url"] = self.callback_url
        if self.extension_mandatory:
            doc["extension_mandatory"] = [dict(e) for e in self.extension_mandatory]
        if self.extension_optional:
            doc["extension_optional"] = [dict(e) for e in self.extension_optional]
        return doc


@dataclass(frozen=True, slots=True)
class Ack:
    """A checked ``ack_container``."""

    key_ids: tuple[str, ...]
    status: str
    initiator: str
    targets: tuple[str, ...]
    message: str | None = None

    def document(self) -> dict[str, Any]:
        """The ``ack_container`` JSON object."""
        doc: dict[str, Any] = {"key_id_container": [{"key_id": k} for k in self.key_ids],
                               "ack_status": self.status, "initiator_sae_id": self.initiator,
                               "target_sae_ids": list(self.targets)}
        if self.message is not None:
            doc["message"] = self.message
        return doc


@dataclass(frozen=True, slots=True)
class Void:
    """A checked ``void_container``: no key_ids means every key between the SAEs (only
    with ``all_confirmation``)."""

    key_ids: tuple[str, ...]
    initiator: str
    targets: tuple[str, ...]
    all_confirmation: bool = False
    callback_url: str | None = None

    def document(self) -> dict[str, Any]:
        """The ``void_container`` JSON object."""
        doc: dict[str, Any] = {"key_ids": list(self.key_ids),
                               "initiator_sae_id": self.initiator,
                               "target_sae_ids": list(self.targets),
                               "all_confirmation": self.all_confirmation}
        if self.callback_url is not None:
            doc["ack_callback_url"] = self.callback_url
        return doc


def acks_document(acks: Sequence[Ack]) -> list[dict[str, Any]]:
    """The ``ack_containers`` JSON array."""
    return [a.document() for a in acks]


# --- strict reading of request bodies ---------------------------------------------------


class _Reader:
    """Reads one JSON object, raising Problem(400, ``kind``) naming the field at fault."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def fail(self, where: str, problem: str) -> Problem:
        return Problem(400, self.kind, f"{where}: {problem}", field=where)

    def obj(self, value: Any, where: str, known: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a JSON object")
        unknown = sorted(set(value) - known)
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", "is not a field of this object")
        return value

    def required(self, doc: Mapping[str, Any], name: str, where: str) -> Any:
        if name not in doc:
            raise self.fail(f"{where}.{name}", "is required")
        return doc[name]

    def array(self, value: Any, where: str, most: int, *, empty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "must be an array")
        if not value and not empty:
            raise self.fail(where, "must not be empty")
        if len(value) > most:
            raise self.fail(where, f"holds {len(value)} entries; at most {most}")
        return value

    def sae(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_SAE_ID_CHARS:
            raise self.fail(where, f"must be an SAE ID of 1 to {MAX_SAE_ID_CHARS} characters")
        return value

    def saes(self, value: Any, where: str, most: int) -> tuple[str, ...]:
        ids = tuple(self.sae(v, f"{where}[{i}]")
                    for i, v in enumerate(self.array(value, where, most)))
        if len(set(ids)) != len(ids):
            raise self.fail(where, "names an SAE twice")
        return ids

    def key_id(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _UUID.fullmatch(value) or value == _NIL:
            raise self.fail(where, "must be a UUID (RFC 9562 text form, not nil)")
        return value.lower()

    def unique(self, ids: Sequence[str], where: str) -> tuple[str, ...]:
        if len(set(ids)) != len(ids):
            raise self.fail(where, "names a key_id twice")
        return tuple(ids)

    def url(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_URL_CHARS:
            raise self.fail(where, f"must be a URL of at most {MAX_URL_CHARS} characters")
        rest = value[len("https://"):] if value.lower().startswith("https://") else None
        if not rest or rest[0] in "/?#" or any(c.isspace() for c in value):
            raise self.fail(where, "must be an https URL with a host")
        return value

    def extensions(self, doc: Mapping[str, Any], name: str, where: str
                   ) -> tuple[Mapping[str, Any], ...]:
        value = doc.get(name)
        if value is None:
            return ()
        items = self.array(value, f"{where}.{name}", 64, empty=True)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.fail(f"{where}.{name}[{i}]", "must be a JSON object")
        return tuple(items)

    def extension(self, doc: Mapping[str, Any], where: str) -> Mapping[str, Any] | None:
        value = doc.get("extension")
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"{where}.extension", "must be a JSON object")
        return value


def _unwrap(body: Any, name: str) -> Any:
    """The container itself, also when sent wrapped as ``{name: container}``."""
    if isinstance(body, dict) and set(body) == {name}:
        return body[name]
    return body


def key_value(text: Any, where: str, reader: _Reader) -> bytes:
    """The bytes of a base64 key value (RFC 4648, padded); Problem if it is not that or
    holds no byte. The value itself is never quoted back."""
    if not isinstance(text, str) or not text or len(text) % 4 or not _B64.fullmatch(text):
        raise reader.fail(where, "must be non-empty padded base64 (RFC 4648) of whole bytes")
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise reader.fail(where, "must be base64 (RFC 4648) of whole bytes") from None
    # non-canonical trailing bits would let two texts name one key: refuse them
    if base64.b64encode(value).decode() != text or not value:
        raise reader.fail(where, "must be canonical base64 of at least one byte")
    return value


def parse_ext_keys(body: Any, limits: Limits = Limits()) -> ExtKeys:
    """A checked ``ext_key_container``; Problem 400 ``missing-parameters`` naming the field
    otherwise."""
    r = _Reader("missing-parameters")
    where = "ext_key_container"
    doc = r.obj(_unwrap(body, where), where,
                {"keys", "initiator_sae_id", "target_sae_ids", "ack_callback_url",
                 "extension_mandatory", "extension_optional"})
    items = r.array(r.required(doc, "keys", where), f"{where}.keys", limits.max_keys)
    keys = []
    for i, item in enumerate(items):
        at = f"{where}.keys[{i}]"
        entry = r.obj(item, at, {"key_id", "value", "extension"})
        keys.append(ExtKey(r.key_id(r.required(entry, "key_id", at), f"{at}.key_id"),
                           key_value(r.required(entry, "value", at), f"{at}.value", r),
                           r.extension(entry, at)))
    r.unique([k.key_id for k in keys], f"{where}.keys")
    url = doc.get("ack_callback_url")
    return ExtKeys(tuple(keys),
                   r.sae(r.required(doc, "initiator_sae_id", where),
                         f"{where}.initiator_sae_id"),
                   r.saes(r.required(doc, "target_sae_ids", where),
                          f"{where}.target_sae_ids", limits.max_target_saes),
                   None if url is None else r.url(url, f"{where}.ack_callback_url"),
                   r.extensions(doc, "extension_mandatory", where),
                   r.extensions(doc, "extension_optional", where))


def parse_acks(body: Any, limits: Limits = Limits(), *, empty: bool = False
               ) -> tuple[Ack, ...]:
    """Checked ``ack_containers`` (a JSON array, or ``{"ack_containers": [...]}``; none
    only if ``empty``); Problem 400 ``ack-not-understood`` naming the field otherwise."""
    r = _Reader("ack-not-understood")
    items = r.array(_unwrap(body, "ack_containers"), "ack_containers",
                    limits.max_ack_containers, empty=empty)
    acks = []
    for i, item in enumerate(items):
        at = f"ack_containers[{i}]"
        doc = r.obj(item, at, {"key_id_container", "ack_status", "initiator_sae_id",
                               "target_sae_ids", "message", "extension"})
        ids = []
        entries = r.array(r.required(doc, "key_id_container", at), f"{at}.key_id_container",
                          limits.max_key_ids)
        for j, entry in enumerate(entries):
            e_at = f"{at}.key_id_container[{j}]"
            e = r.obj(entry, e_at, {"key_id", "extension"})
            r.extension(e, e_at)
            ids.append(r.key_id(r.required(e, "key_id", e_at), f"{e_at}.key_id"))
        status = r.required(doc, "ack_status", at)
        if status not in ACK_STATUSES:
            raise r.fail(f"{at}.ack_status", "must be one of " + ", ".join(ACK_STATUSES))
        message = doc.get("message")
        if message is not None and (not isinstance(message, str)
                                    or len(message) > MAX_MESSAGE_CHARS):
            raise r.fail(f"{at}.message", f"must be text of at most {MAX_MESSAGE_CHARS} "
                         "characters")
        r.extension(doc, at)
        acks.append(Ack(r.unique(ids, f"{at}.key_id_container"), status,
                        r.sae(r.required(doc, "initiator_sae_id", at),
                              f"{at}.initiator_sae_id"),
                        r.saes(r.required(doc, "target_sae_ids", at), f"{at}.target_sae_ids",
                               limits.max_target_saes), message))
    return tuple(acks)


def parse_void(body: Any, limits: Limits = Limits()) -> Void:
    """A checked ``void_container``; Problem 400 ``void-request-not-understood`` naming the
    field, or ``no-key-ids-or-confirmation`` for no key_ids without ``all_confirmation``."""
    r = _Reader("void-request-not-understood")
    where = "void_container"
    doc = r.obj(_unwrap(body, where), where, {"key_ids", "initiator_sae_id", "target_sae_ids",
                                              "all_confirmation", "ack_callback_url",
                                              "extension"})
    raw = r.array(doc.get("key_ids", []), f"{where}.key_ids", limits.max_key_ids, empty=True)
    ids = r.unique([r.key_id(v, f"{where}.key_ids[{i}]") for i, v in enumerate(raw)],
                   f"{where}.key_ids")
    confirm = doc.get("all_confirmation", False)
    if not isinstance(confirm, bool):
        raise r.fail(f"{where}.all_confirmation", "must be true or false")
    url = doc.get("ack_callback_url")
    void = Void(ids, r.sae(r.required(doc, "initiator_sae_id", where),
                           f"{where}.initiator_sae_id"),
                r.saes(r.required(doc, "target_sae_ids", where), f"{where}.target_sae_ids",
                       limits.max_target_saes),
                confirm, None if url is None else r.url(url, f"{where}.ack_callback_url"))
    r.extension(doc, where)
    if not ids and not confirm:
        raise Problem(400, "no-key-ids-or-confirmation",
                      "void_container.key_ids is empty and all_confirmation is not true: "
                      "voiding every key between the SAEs needs the confirmation")
    return void


# --- the ledger: every key_id ever associated ---------------------------------------------

#: States of a key_id in the ledger. Inbound: ``relayed`` (held for its target here),
#: ``failed`` (refused, never held). Outbound: ``sent`` (pushed, not yet answered),
#: ``relayed`` (every target acknowledged), ``failed``, ``void-failed``. Either way
#: ``voided`` is a tombstone: final, the key never delivered afterwards. Inbound keys
#: relayed on to another node are ``forwarding`` until that relay ends.
VOIDED: Final = "voided"
FORWARDING: Final = "forwarding"


@dataclass(frozen=True, slots=True)
class Association:
    """What the ledger keeps of one key_id (never its value): from or to which ``peer``
    KMS (``inbound``: it came from the peer), the SAEs, the state, the targets that have
    acknowledged it ``relayed`` (outbound) and when it last changed (s)."""

    key_id: str
    inbound: bool
    peer: str
    initiator: str
    targets: tuple[str, ...]
    state: str
    at: float
    acked: tuple[str, ...] = ()


class Ledger(Protocol):
    """The durable record of every key_id associated (and every tombstone). Every method is
    atomic; nothing written here is a key value."""

    def get(self, key_ids: Sequence[str]) -> dict[str, Association]:
        """The associations of those key_ids that have one."""

    def put(self, entries: Sequence[Association]) -> None:
        """Record (insert or replace) each association, all or none."""

    def between(self, peer: str, initiator: str, targets: Sequence[str]
                ) -> list[Association]:
        """Every association with ``peer`` for these SAEs (the targets as a set) that is not
        a tombstone."""

    def in_state(self, state: str) -> list[Association]:
        """Every association in ``state``."""


class MemoryLedger:
    """A :class:`Ledger` in memory (the twin and the tests)."""

    def __init__(self) -> None:
        self.entries: dict[str, Association] = {}

    def get(self, key_ids: Sequence[str]) -> dict[str, Association]:
        """The associations of those key_ids that have one."""
        return {k: self.entries[k] for k in key_ids if k in self.entries}

    def put(self, entries: Sequence[Association]) -> None:
        """Record each association."""
        for entry in entries:
            self.entries[entry.key_id] = entry

    def between(self, peer: str, initiator: str, targets: Sequence[str]
                ) -> list[Association]:
        """Every non-tombstone association with ``peer`` for these SAEs."""
        want = set(targets)
        return [e for e in self.entries.values() if e.peer == peer and e.state != VOIDED
                and e.initiator == initiator and set(e.targets) == want]

    def in_state(self, state: str) -> list[Association]:
        """Every association in ``state``."""
        return [e for e in self.entries.values() if e.state == state]


# --- the interop KMS -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """What became of an ``ext_keys`` request: its acknowledgements, and the optional
    extensions this node did not act on, to pass on unchanged to the next hop."""

    acks: tuple[Ack, ...]
    extension_optional: tuple[Mapping[str, Any], ...] = ()
    #: Keys to relay on to their target's node (state ``forwarding``): acknowledged once
    #: the driver reports the relay's end (:meth:`InteropKms.forwarded`).
    onward: tuple[ExtKey, ...] = ()


@dataclass
class InteropKms:
    """The interop KMS of ``node`` at a domain border (sans-I/O).

    ``is_local(sae)``: whether an SAE is attached to this node (its keys are held here);
    ``store``: the node's key store; ``ledger``: the durable record of key_ids. Keys this
    node pushes are kept in memory until every target acknowledges them (then handed back
    by :meth:`acknowledge`) or they fail or are voided; ``on_settled(key_ids, state)`` is
    told when pushed keys end otherwise (``failed``, ``voided``, ``void-failed``).

    ``onward(sae)``: whether keys for an SAE not attached here can be relayed on to its
    node from here (a gateway between domains); such keys are recorded ``forwarding`` and
    handed back in :attr:`Received.onward`, and acknowledged once the driver reports the
    relay's end with :meth:`forwarded`.
    """

    node: str
    store: KeyStore
    ledger: Ledger
    is_local: Callable[[str], bool]
    limits: Limits = field(default_factory=Limits)
    onward: Callable[[str], bool] | None = None
    on_settled: Callable[[Sequence[str], str], None] | None = None
    _pending: dict[str, tuple[ExtKey, ExtKeys]] = field(default_factory=dict, repr=False)

    # -- inbound: a peer pushes keys ------------------------------------------------------

    def receive(self, peer: str, request: ExtKeys, now: float) -> Received:
        """Take ``request`` from ``peer``: hold new keys for their local target, answer
        replays from the ledger. Problem(400/503) before anything is kept, only."""
        if request.extension_mandatory:
            names = sorted({str(k) for e in request.extension_mandatory for k in e})
            raise Problem(503, "unsupported-mandatory-extension",
                          "this KMS implements no mandatory extension", extensions=names)
        if len(request.targets) > 1:
            # a key is held under its key_id for one target SAE; no route splits it
            raise Problem(503, "key-routing-error", "no route for multiple targets",
                          target_sae_ids=list(request.targets))
        target = request.targets[0]
        onward = not self.is_local(target) and self.onward is not None and self.onward(target)
        if not self.is_local(target) and not onward:
            raise Problem(400, "key-routing-error", f"target SAE {target!r} is unknown to "
                          f"KMS {self.node!r}", target_sae_id=target)
        known = self.ledger.get([k.key_id for k in request.keys])
        replies: dict[str, list[str]] = {}
        fresh: list[ExtKey] = []
        for key in request.keys:
            entry = known.get(key.key_id)
            if entry is None:
                fresh.append(key)
                continue
            same = (entry.inbound and entry.peer == peer and entry.initiator ==
                    request.initiator and entry.targets == request.targets)
            if same and entry.state == FORWARDING:
                continue  # a replay while its relay runs: the first request gets the ack
            status = (entry.state if same and entry.state in ("relayed", "failed")
                      else "failed")
            reason = ("replayed key_id: answered as before" if same and entry.state != VOIDED
                      else "key_id was voided: never delivered" if entry.state == VOIDED
                      else "key_id is already associated otherwise")
            replies.setdefault(f"{status}\0{reason}", []).append(key.key_id)
        if fresh and onward:
            # recorded before the relay starts: a replay never starts a second one
            self.ledger.put([Association(k.key_id, True, peer, request.initiator,
                                         request.targets, FORWARDING, now) for k in fresh])
        elif fresh:
            self._hold(peer, request, target, fresh, now, replies)
        acks = tuple(Ack(tuple(ids), status, request.initiator, request.targets,
                         None if reason == "-" else reason)
                     for key, ids in replies.items()
                     for status, reason in [key.split("\0")])
        return Received(acks, request.extension_optional,
                        tuple(fresh) if onward else ())

    def forwarded(self, key_ids: Sequence[str], relayed: bool, now: float,
                  reason: str | None = None) -> tuple[Ack, ...]:
        """The relay onward of ``key_ids`` (handed back in :attr:`Received.onward`) has
        ended: they are now ``relayed`` (held at the target's node) or ``failed`` (never
        delivered); the acknowledgements to send to the peer."""
        known = self.ledger.get(list(key_ids))
        moved = [e for e in known.values() if e.inbound and e.state == FORWARDING]
        state = "relayed" if relayed else "failed"
        self.ledger.put([replace(e, state=state, at=now) for e in moved])
        by_request: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for e in moved:
            by_request.setdefault((e.initiator, e.targets), []).append(e.key_id)
        return tuple(Ack(tuple(ids), state, initiator, targets, reason)
                     for (initiator, targets), ids in by_request.items())

    def _hold(self, peer: str, request: ExtKeys, target: str, fresh: list[ExtKey],
              now: float, replies: dict[str, list[str]]) -> None:
        """Record, then hold ``fresh``: the record comes first, so a crash between the two
        loses a key but never lets it be delivered twice."""
        entries = [Association(k.key_id, True, peer, request.initiator, request.targets,
                               "relayed", now) for k in fresh]
        self.ledger.put(entries)
        try:
            self.store.hold_keys([HeldKey(k.key_id, request.initiator, target, k.value)
                                  for k in fresh], now)
        except KeyStoreError:
            # held under that key_id already, outside this API: refused, never delivered
            self.ledger.put([replace(e, state="failed") for e in entries])
            replies.setdefault("failed\0key store refused the keys", []).extend(
                k.key_id for k in fresh)
            return
        replies.setdefault("relayed\0-", []).extend(k.key_id for k in fresh)

    def void(self, peer: str, request: Void, now: float) -> tuple[Ack, ...]:
        """Discard keys ``peer`` pushed (all between the SAEs for no key_ids, with
        confirmation) and leave a tombstone for each key_id, also one never seen (it may
        still be on its way)."""
        if request.key_ids:
            ids = list(request.key_ids)
            known = self.ledger.get(ids)
        else:
            known = {e.key_id: e for e in
                     self.ledger.between(peer, request.initiator, request.targets)
                     if e.inbound}
            ids = list(known)
        out: dict[str, list[str]] = {s: [] for s in ("voided", "failed to void",
                                                     "key not present")}
        tombs: list[Association] = []
        for key_id in ids:
            entry = known.get(key_id)
            if entry is not None and (not entry.inbound or entry.peer != peer):
                out["failed to void"].append(key_id)  # not this peer's to void
                continue
            if entry is not None and entry.state == VOIDED:
                out["voided"].append(key_id)
                continue
            if entry is not None and entry.state == FORWARDING:
                out["failed to void"].append(key_id)  # on its way on: settled by the relay
                continue
            if entry is not None and entry.state == "relayed":
                if self.store.held_for(key_id) is None:
                    out["failed to void"].append(key_id)  # delivered (or expired) already
                    continue
                self.store.release_keys([key_id], entry.initiator, entry.targets[0])
                out["voided"].append(key_id)
            else:
                out["key not present" if entry is None else "voided"].append(key_id)
            tombs.append(Association(key_id, True, peer, request.initiator,
                                     request.targets, VOIDED, now))
        self.ledger.put(tombs)
        return tuple(Ack(tuple(v), s, request.initiator, request.targets)
                     for s, v in out.items() if v)

    # -- outbound: this node pushes keys --------------------------------------------------

    def send(self, peer: str, request: ExtKeys, now: float) -> None:
        """Record keys about to be pushed to ``peer`` (state ``sent``); Problem(400) for a
        key_id already associated (a key is pushed under a fresh key_id)."""
        known = self.ledger.get([k.key_id for k in request.keys])
        # a retry of the same push (not yet relayed, failed or voided) is allowed
        clash = sorted(k for k, e in known.items()
                       if e.inbound or e.peer != peer or e.state != "sent"
                       or e.initiator != request.initiator or e.targets != request.targets)
        if clash:
            raise Problem(400, "missing-parameters", "key_id already associated otherwise",
                          key_ids=clash[:16])
        self.ledger.put([Association(k.key_id, False, peer, request.initiator,
                                     request.targets, "sent", now) for k in request.keys])
        for key in request.keys:
            self._pending[key.key_id] = (key, request)

    def refused(self, key_ids: Sequence[str], now: float) -> None:
        """The peer refused the push (400/401: it kept nothing): the keys are failed."""
        self._settle(key_ids, "failed", now)

    def acknowledge(self, peer: str, acks: Sequence[Ack], now: float
                    ) -> list[tuple[ExtKey, ExtKeys]]:
        """Apply ``peer``'s acknowledgements of keys pushed to it; the keys now relayed to
        every intended target (each with its request), to release to their SAE.
        Problem(400 ``key-not-present``) if an ack names a key_id not pushed to ``peer``."""
        ids = [k for a in acks for k in a.key_ids]
        known = self.ledger.get(ids)
        absent = sorted(k for k in set(ids) if k not in known or known[k].inbound
                        or known[k].peer != peer)
        if absent:
            raise Problem(400, "key-not-present", "no key pushed to this KMS under these "
                          "key_ids", key_ids=absent[:16])
        released: list[tuple[ExtKey, ExtKeys]] = []
        for ack in acks:
            for key_id in ack.key_ids:
                entry = self.ledger.get([key_id])[key_id]
                if entry.state in (VOIDED, "failed", "relayed"):
                    continue  # final: a late or repeated ack changes nothing
                if ack.status == "relayed":
                    acked = tuple(sorted(set(entry.acked) | (set(ack.targets)
                                                            & set(entry.targets))))
                    done = set(acked) == set(entry.targets)
                    self.ledger.put([replace(entry, acked=acked, at=now,
                                             state="relayed" if done else entry.state)])
                    pending = self._pending.pop(key_id, None) if done else None
                    if pending is not None:
                        released.append(pending)
                elif ack.status in ("voided", "key not present"):
                    self._settle([key_id], VOIDED, now)
                elif ack.status == "failed to void":
                    self._settle([key_id], "void-failed", now)
                else:
                    self._settle([key_id], "failed", now)
        return released

    def recover(self, now: float) -> tuple[str, ...]:
        """After a restart: keys that were ``forwarding`` lost their relay with the process
        that ran it; they are ``failed`` (never released: the peer's side never got a
        ``relayed`` for them), so a replay of one is answered again. Their key_ids."""
        lost = [e for e in self.ledger.in_state(FORWARDING) if e.inbound]
        self.ledger.put([replace(e, state="failed", at=now) for e in lost])
        return tuple(e.key_id for e in lost)

    def voiding(self, peer: str, request: Void, now: float) -> None:
        """Record that keys pushed to ``peer`` are being voided: never released here."""
        known = (self.ledger.get(list(request.key_ids)) if request.key_ids else
                 {e.key_id: e for e in
                  self.ledger.between(peer, request.initiator, request.targets)})
        self._settle([k for k, e in known.items() if not e.inbound and e.peer == peer],
                     VOIDED, now)

    def _settle(self, key_ids: Sequence[str], state: str, now: float) -> None:
        known = self.ledger.get(list(key_ids))
        self.ledger.put([replace(e, state=state, at=now) for e in known.values()
                         if e.state != VOIDED])
        for key_id in key_ids:
            self._pending.pop(key_id, None)
        if self.on_settled is not None and key_ids:
            self.on_settled(key_ids, state)
