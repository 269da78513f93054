"""KM-to-KM messages on the wire: batches of Key Manager messages as JSON, for the
transport between node processes (ITU-T Y.3803 hop-by-hop key relay; ITU-T Q.4163 names
the message set: key relay, relay completion, relay failure, abort, and the key supply
notification with its acknowledgement, :mod:`qkdnet.keys.supply_sync`), and at a border
between operators' domains the request to take keys across at a gateway and its answer
(:mod:`qkdnet.keys.domain_border`).

A batch is what one sending node posts to one receiving process::

    {"v": 1, "from": NODE, "messages": [{"id": ID, "to": NODE, "type": TYPE, ...}, ...]}

``id`` names a message for the receiver's duplicate check (the sender's incarnation and a
sequence number: a retry after a lost acknowledgement carries the same id). Bytes (a relay's
ciphertext and tags) travel as base64. Decoding is strict: a missing or mistyped field, an
unknown type, a route whose KM-links do not match its nodes, or a batch over the limits is
a :class:`WireError` naming the field, and nothing of the batch is used. No error or repr
shows ciphertext or tags (they are one-time-pad protected key material).

Sans-I/O: bytes in, records out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qkdnet.keys.domain_border import CrossBorder, Crossed
from qkdnet.keys.messages import ForwardKey, RelayAbort, RelayComplete, RelayFailed
from qkdnet.keys.pool import UnitRange
from qkdnet.keys.route import Route
from qkdnet.keys.supply_sync import (
    KeySupply,
    KeySupplyAck,
    KmMessage,
    PoolSync,
    SuppliedBlock,
)

VERSION = 1
#: Most messages in one batch, and most bytes of one encoded batch: a batch holds the
#: messages one node had for one process at one moment (a few relays' hops), far below.
MAX_MESSAGES = 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Most block numbers one pool synchronisation names (a pool of 64 Mbit in 128-byte blocks).
MAX_BLOCKS = 65_536
#: Longest node, KM-link, SAE and message id, and longest reason text (characters).
MAX_NAME = 256
MAX_REASON = 1024
_TYPES = {ForwardKey: "forward", RelayComplete: "complete", RelayFailed: "failed",
          RelayAbort: "abort", KeySupply: "supply", KeySupplyAck: "supply_ack",
          PoolSync: "pool_sync", CrossBorder: "cross", Crossed: "crossed"}
#: Most borders one relay may still have ahead of it (a route crosses each at most once).
MAX_BORDERS = 64


class WireError(ValueError):
    """A batch that is not a well-formed KM message batch; the message names the field."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message of a batch: its id (for the duplicate check), its receiving node and
    the message."""

    id: str
    to: str
    message: KmMessage


def encode_batch(sender: str, envelopes: Sequence[Envelope]) -> bytes:
    """The batch of ``envelopes`` sent by node ``sender``, as UTF-8 JSON."""
    return json.dumps({"v": VERSION, "from": sender,
                       "messages": [_encode(e) for e in envelopes]},
                      separators=(",", ":")).encode()


def decode_batch(data: bytes) -> tuple[str, list[Envelope]]:
    """(sending node, envelopes) of an encoded batch; WireError naming the first problem."""
    if len(data) > MAX_BATCH_BYTES:
        raise WireError(f"batch of {len(data)} bytes: at most {MAX_BATCH_BYTES}")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WireError("batch is not valid JSON") from None
    if not isinstance(document, dict):
        raise WireError("batch: expected an object")
    if document.get("v") != VERSION:
        raise WireError(f"v: expected {VERSION}, got {_shown(document.get('v'))}")
    sender = _checked_name(document.get("from"), "from")
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages: expected a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise WireError(f"messages: {len(messages)} messages, at most {MAX_MESSAGES}")
    return sender, [_decode(m, f"messages[{i}]") for i, m in enumerate(messages)]


# --- one message ------------------------------------------------------------------------------

def _encode(envelope: Envelope) -> dict[str, Any]:
    m = envelope.message
    out: dict[str, Any] = {"id": envelope.id, "to": envelope.to, "type": _TYPES[type(m)]}
    if isinstance(m, ForwardKey):
        out.update(key_ids=list(m.key_ids), size_bits=m.size_bits, master_sae=m.master_sae,
                   slave_sae=m.slave_sae, nodes=list(m.route.nodes),
                   km_links=list(m.route.km_links), hop=m.hop,
                   pad=[[r.block, r.start, r.count] for r in m.pad],
                   ciphertext=_b64(m.ciphertext), tag=_b64(m.tag))
    elif isinstance(m, RelayComplete):
        out.update(relay_id=m.relay_id, tag=_b64(m.tag))
    elif isinstance(m, RelayFailed):
        out.update(relay_id=m.relay_id, node=m.node, reason=m.reason)
    elif isinstance(m, RelayAbort):
        out.update(key_ids=list(m.key_ids), master_sae=m.master_sae, slave_sae=m.slave_sae)
    elif isinstance(m, KeySupply):
        out.update(km_link=m.km_link, blocks=[[b.block, b.key_id, b.initiator_sends]
                                              for b in m.blocks])
    elif isinstance(m, PoolSync):
        out.update(km_link=m.km_link, live=list(m.live), next_block=m.next_block,
                   reply=m.reply)
    elif isinstance(m, CrossBorder):
        out.update(key_ids=list(m.key_ids), master_sae=m.master_sae, slave_sae=m.slave_sae,
                   near_operator=m.near_operator, far_operator=m.far_operator,
                   borders=m.borders)
    elif isinstance(m, Crossed):
        out.update(key_ids=list(m.key_ids), relayed=m.relayed)
    else:
        out.update(km_link=m.km_link, blocks=list(m.blocks))
    return out


def _decode(item: Any, where: str) -> Envelope:
    if not isinstance(item, dict):
        raise WireError(f"{where}: expected an object")
    ident, to = _name(item, "id", where), _name(item, "to", where)
    kind = item.get("type")
    message: KmMessage
    if kind == "forward":
        nodes = _names(item, "nodes", where, least=2)
        km_links = _names(item, "km_links", where, least=1)
        if len(km_links) != len(nodes) - 1:
            raise WireError(f"{where}.km_links: {len(km_links)} KM-links for "
                            f"{len(nodes)} nodes (expected one fewer)")
        hop = _int(item, "hop", where, 0, len(km_links) - 1)
        message = ForwardKey(
            _names(item, "key_ids", where, least=1), _int(item, "size_bits", where, 1, 2**20),
            _name(item, "master_sae", where), _name(item, "slave_sae", where),
            Route(nodes, km_links), hop, _pad(item, where),
            _bytes(item, "ciphertext", where), _bytes(item, "tag", where))
    elif kind == "complete":
        message = RelayComplete(_name(item, "relay_id", where), _bytes(item, "tag", where))
    elif kind == "failed":
        message = RelayFailed(_name(item, "relay_id", where), _name(item, "node", where),
                              _text(item, "reason", where))
    elif kind == "abort":
        message = RelayAbort(_names(item, "key_ids", where, least=1),
                             _name(item, "master_sae", where), _name(item, "slave_sae", where))
    elif kind == "supply":
        message = KeySupply(_name(item, "km_link", where), _supplied(item, where))
    elif kind == "supply_ack":
        message = KeySupplyAck(_name(item, "km_link", where),
                               _blocks(item, "blocks", where, MAX_MESSAGES))
    elif kind == "pool_sync":
        reply = item.get("reply")
        if not isinstance(reply, bool):
            raise WireError(f"{where}.reply: expected true or false")
        message = PoolSync(_name(item, "km_link", where),
                           _blocks(item, "live", where, MAX_BLOCKS),
                           _int(item, "next_block", where, 0, 2**53), reply)
    elif kind == "cross":
        message = CrossBorder(_names(item, "key_ids", where, least=1),
                              _name(item, "master_sae", where), _name(item, "slave_sae", where),
                              _name(item, "near_operator", where),
                              _name(item, "far_operator", where),
                              _int(item, "borders", where, 1, MAX_BORDERS))
    elif kind == "crossed":
        relayed = item.get("relayed")
        if not isinstance(relayed, bool):
            raise WireError(f"{where}.relayed: expected true or false")
        message = Crossed(_names(item, "key_ids", where, least=1), relayed)
    else:
        raise WireError(f"{where}.type: expected one of {', '.join(_TYPES.values())}, got "
                        f"{_shown(kind)}")
    return Envelope(ident, to, message)


# --- fields -----------------------------------------------------------------------------------

def _name(item: dict[str, Any], field: str, where: str) -> str:
    return _checked_name(item.get(field), f"{where}.{field}")


def _checked_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise WireError(f"{path}: expected a string of 1..{MAX_NAME} characters, got "
                        f"{_shown(value)}")
    return value


def _names(item: dict[str, Any], field: str, where: str, least: int) -> tuple[str, ...]:
    values = item.get(field)
    if not isinstance(values, list) or not least <= len(values) <= MAX_MESSAGES:
        raise WireError(f"{where}.{field}: expected a list of {least}..{MAX_MESSAGES} names")
    return tuple(_checked_name(v, f"{where}.{field}[{i}]") for i, v in enumerate(values))


def _int(item: dict[str, Any], field: str, where: str, low: int, high: int) -> int:
    value = item.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise WireError(f"{where}.{field}: expected an integer in {low}..{high}, got "
                        f"{_shown(value)}")
    return value


def _blocks(item: dict[str, Any], field: str, where: str, most: int) -> tuple[int, ...]:
    values = item.get(field)
    if not isinstance(values, list) or len(values) > most or not all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 2**53
            for b in values):
        raise WireError(f"{where}.{field}: expected a list of at most {most} block numbers")
    return tuple(values)


def _text(item: dict[str, Any], field: str, where: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise WireError(f"{where}.{field}: expected a string of at most {MAX_REASON} "
                        "characters")
    return value


def _bytes(item: dict[str, Any], field: str, where: str) -> bytes:
    value = item.get(field)
    if not isinstance(value, str):
        raise WireError(f"{where}.{field}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}.{field}: not valid base64") from None  # value not shown


def _pad(item: dict[str, Any], where: str) -> tuple[UnitRange, ...]:
    ranges = item.get("pad")
    if not isinstance(ranges, list) or not 1 <= len(ranges) <= MAX_MESSAGES:
        raise WireError(f"{where}.pad: expected a list of 1..{MAX_MESSAGES} unit ranges")
    out = []
    for i, r in enumerate(ranges):
        if not (isinstance(r, list) and len(r) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in r)) \
                or r[0] < 0 or r[1] < 0 or r[2] < 1 or max(r) > 2**53:
            raise WireError(f"{where}.pad[{i}]: expected [block, start, count] with block, "
                            "start >= 0 and count >= 1")
        out.append(UnitRange(r[0], r[1], r[2]))
    return tuple(out)


def _supplied(item: dict[str, Any], where: str) -> tuple[SuppliedBlock, ...]:
    blocks = item.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= MAX_MESSAGES:
        raise WireError(f"{where}.blocks: expected a list of 1..{MAX_MESSAGES} blocks")
    out = []
    for i, b in enumerate(blocks):
        path = f"{where}.blocks[{i}]"
        if not (isinstance(b, list) and len(b) == 3 and isinstance(b[0], int)
                and not isinstance(b[0], bool) and 0 <= b[0] <= 2**53
                and isinstance(b[2], bool)):
            raise WireError(f"{path}: expected [block, key_ID, initiator sends]")
        out.append(SuppliedBlock(b[0], _checked_name(b[1], f"{path}[1]"), b[2]))
    return tuple(out)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _shown(value: Any) -> str:
    """A short rendering of a refused value for an error (never of a bytes field)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

