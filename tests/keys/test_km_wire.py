"""KM-to-KM batches on the wire: every message type survives a round trip, and anything
malformed is refused whole, by field, without showing key material."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qkdnet.keys.domain_border import CrossBorder, Crossed
from qkdnet.keys.km_wire import (
    MAX_MESSAGES,
    Envelope,
    WireError,
    decode_batch,
    encode_batch,
)
from qkdnet.keys.messages import ForwardKey, RelayAbort, RelayComplete, RelayFailed
from qkdnet.keys.pool import UnitRange
from qkdnet.keys.route import Route
from qkdnet.keys.supply_sync import KeySupply, KeySupplyAck, KmMessage, PoolSync, SuppliedBlock

ROUTE = Route(("a", "b", "c"), ("a-b", "b-c"))
SECRET = bytes(range(200, 232))  # stands for ciphertext: must never show in an error


def _forward(**change: Any) -> ForwardKey:
    fields: dict[str, Any] = dict(key_ids=("k1", "k2"), size_bits=256, master_sae="sae-a",
                                  slave_sae="sae-c", route=ROUTE, hop=1,
                                  pad=(UnitRange(3, 0, 2), UnitRange(4, 5, 1)),
                                  ciphertext=SECRET, tag=b"\x01" * 32)
    fields.update(change)
    return ForwardKey(**fields)


MESSAGES = [_forward(), RelayComplete("k1", b"\x02" * 32),
            RelayFailed("k1", "b", "not enough key on KM-link b-c"),
            RelayAbort(("k1", "k2"), "sae-a", "sae-c"),
            KeySupply("b-c", (SuppliedBlock(4, "id-4", True), SuppliedBlock(5, "id-5", False))),
            KeySupplyAck("b-c", (4, 5)), PoolSync("b-c", (2, 4, 5), 6),
            PoolSync("b-c", (), 0, reply=True),
            CrossBorder(("k1", "k2"), "sae-a", "sae-c", "op-west", "op-east", 2),
            Crossed(("k1", "k2"), True), Crossed(("k1",), False)]


def test_every_message_type_comes_back_equal() -> None:
    envelopes = [Envelope(f"inc-1:{i}", "c", m) for i, m in enumerate(MESSAGES)]
    assert decode_batch(encode_batch("b", envelopes)) == ("b", envelopes)


@given(ciphertext=st.binary(max_size=512), hop=st.integers(0, 1),
       pad=st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**20),
                              st.integers(1, 2**20)), min_size=1, max_size=8))
def test_forward_key_round_trips_whatever_its_bytes_and_pad(
        ciphertext: bytes, hop: int, pad: list[tuple[int, int, int]]) -> None:
    message = _forward(ciphertext=ciphertext, hop=hop, pad=tuple(UnitRange(*r) for r in pad))
    assert decode_batch(encode_batch("a", [Envelope("x", "b", message)]))[1][0].message \
        == message


def _batch(message: KmMessage | None = None, **change: Any) -> dict[str, Any]:
    """A batch of one message (a relay hop by default) with fields changed (None: left
    out), as JSON data."""
    document = json.loads(encode_batch("b", [Envelope("i1", "c", message or _forward())]))
    fields = document["messages"][0]
    for field, value in change.items():
        if value is None:
            del fields[field]
        else:
            fields[field] = value
    return document


@pytest.mark.parametrize(("change", "named"), [
    ({"type": "teleport"}, "messages[0].type"),
    ({"to": ""}, "messages[0].to"),
    ({"id": None}, "messages[0].id"),
    ({"hop": 2}, "messages[0].hop"),
    ({"hop": True}, "messages[0].hop"),
    ({"km_links": ["a-b"]}, "messages[0].km_links"),
    ({"nodes": ["a", 7, "c"]}, "messages[0].nodes[1]"),
    ({"pad": [[3, 0, 0]]}, "messages[0].pad[0]"),
    ({"pad": [[3, -1, 2]]}, "messages[0].pad[0]"),
    ({"pad": []}, "messages[0].pad"),
    ({"ciphertext": "not base64!"}, "messages[0].ciphertext"),
    ({"size_bits": 0}, "messages[0].size_bits"),
    ({"key_ids": []}, "messages[0].key_ids"),
])
def test_a_malformed_message_is_refused_naming_its_field(change: dict[str, Any],
                                                         named: str) -> None:
    with pytest.raises(WireError) as refused:
        decode_batch(json.dumps(_batch(**change)).encode())
    assert str(refused.value).startswith(named + ":"), refused.value


@pytest.mark.parametrize(("document", "named"), [
    ({"v": 2, "from": "b", "messages": []}, "v"),
    ({"v": 1, "messages": [{}]}, "from"),
    ({"v": 1, "from": "b", "messages": []}, "messages"),
    ({"v": 1, "from": "b", "messages": [{}] * (MAX_MESSAGES + 1)}, "messages"),
    ([1, 2], "batch"),
])
def test_a_malformed_batch_is_refused_naming_the_problem(document: Any, named: str) -> None:
    with pytest.raises(WireError, match=f"^{named}"):
        decode_batch(json.dumps(document).encode())


@pytest.mark.parametrize(("change", "named"), [
    ({"live": [1, -2]}, "messages[0].live"),
    ({"live": [True]}, "messages[0].live"),
    ({"next_block": "7"}, "messages[0].next_block"),
    ({"reply": None}, "messages[0].reply"),
])
def test_a_malformed_pool_synchronisation_is_refused_naming_its_field(
        change: dict[str, Any], named: str) -> None:
    with pytest.raises(WireError) as refused:
        decode_batch(json.dumps(_batch(PoolSync("b-c", (1,), 2), **change)).encode())
    assert str(refused.value).startswith(named + ":"), refused.value


@pytest.mark.parametrize(("message", "change", "named"), [
    (CrossBorder(("k1",), "sae-a", "sae-c", "op-west", "op-east", 1), {"borders": 0},
     "messages[0].borders"),
    (CrossBorder(("k1",), "sae-a", "sae-c", "op-west", "op-east", 1), {"borders": True},
     "messages[0].borders"),
    (CrossBorder(("k1",), "sae-a", "sae-c", "op-west", "op-east", 1), {"far_operator": None},
     "messages[0].far_operator"),
    (CrossBorder(("k1",), "sae-a", "sae-c", "op-west", "op-east", 1), {"near_operator": ""},
     "messages[0].near_operator"),
    (CrossBorder(("k1",), "sae-a", "sae-c", "op-west", "op-east", 1), {"key_ids": []},
     "messages[0].key_ids"),
    (Crossed(("k1",), True), {"relayed": "yes"}, "messages[0].relayed"),
    (Crossed(("k1",), True), {"relayed": None}, "messages[0].relayed"),
    (Crossed(("k1",), True), {"key_ids": ["k1", 3]}, "messages[0].key_ids[1]"),
])
def test_a_malformed_border_crossing_is_refused_naming_its_field(
        message: CrossBorder | Crossed, change: dict[str, Any], named: str) -> None:
    """A crossing request or answer with a missing or mistyped field is refused by name."""
    with pytest.raises(WireError) as refused:
        decode_batch(json.dumps(_batch(message, **change)).encode())
    assert str(refused.value).startswith(named + ":"), refused.value


def test_bytes_that_are_not_json_are_refused() -> None:
    with pytest.raises(WireError, match="not valid JSON"):
        decode_batch(b"\xff\x00{")


def test_no_error_shows_key_material() -> None:
    """A refusal quotes names and numbers it refused, never a ciphertext or tag."""
    encoded = encode_batch("b", [Envelope("i1", "c", _forward())]).decode()
    shown = json.loads(encoded)["messages"][0]["ciphertext"]
    for change in ({"tag": shown + "!"}, {"ciphertext": shown + "!"}, {"tag": 7}):
        with pytest.raises(WireError) as refused:
            decode_batch(json.dumps(_batch(**change)).encode())
        assert shown not in str(refused.value)
    assert SECRET.hex() not in repr(_forward())
