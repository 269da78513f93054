"""ETSI GS QKD 020 request checks, problem details and the interop KMS state machine,
without HTTP."""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdnet.errors import KeyNotFound
from qkdnet.keys.etsi020 import (
    TYPE_BASE,
    Ack,
    ExtKey,
    ExtKeys,
    InteropKms,
    Limits,
    MemoryLedger,
    Problem,
    Void,
    parse_acks,
    parse_ext_keys,
    parse_void,
)
from qkdnet.keys.memory_store import MemoryKeyStore

K1 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
K2 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
VALUE = bytes(range(32))


def body(**changes: Any) -> dict[str, Any]:
    """A valid ext_key_container with ``changes`` applied."""
    doc: dict[str, Any] = {"keys": [{"key_id": K1, "value": base64.b64encode(VALUE).decode()}],
                           "initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"],
                           "ack_callback_url": "https://127.0.0.1:9/kmapi/v1/ext_keys/ack"}
    doc.update(changes)
    return doc


def kms(ledger: MemoryLedger | None = None) -> InteropKms:
    """Node b's interop KMS with sae-b attached."""
    return InteropKms("b", MemoryKeyStore("b"), ledger or MemoryLedger(),
                      lambda sae: sae == "sae-b")


def push(key_ids: list[str], initiator: str = "sae-a") -> ExtKeys:
    """An ext_keys request for sae-b."""
    return ExtKeys(tuple(ExtKey(k, VALUE) for k in key_ids), initiator, ("sae-b",))


def statuses(acks: tuple[Ack, ...]) -> dict[str, str]:
    """key_id: ack_status."""
    return {k: a.status for a in acks for k in a.key_ids}


def test_a_valid_container_is_read_whole() -> None:
    """Keys, SAEs and callback come out as sent; the key_id in lower case."""
    req = parse_ext_keys(body(keys=[{"key_id": K1.upper(), "value": "AAE="}]))
    assert req.keys[0].key_id == K1 and req.keys[0].value == b"\0\1"
    assert (req.initiator, req.targets) == ("sae-a", ("sae-b",))
    assert req.callback_url is not None and parse_ext_keys(body()).keys[0].value == VALUE


BAD_FIELDS = [
    ("keys", None, {"keys": []}),
    ("keys", None, {"keys": "x"}),
    ("keys[0].key_id", None, {"keys": [{"key_id": "not-a-uuid", "value": "AAE="}]}),
    ("keys[0].key_id", None, {"keys": [{"key_id": "00000000-0000-0000-0000-000000000000",
                                        "value": "AAE="}]}),
    ("keys[0].value", None, {"keys": [{"key_id": K1, "value": "AAE"}]}),
    ("keys[0].value", None, {"keys": [{"key_id": K1, "value": "AAF="}]}),
    ("keys[0].value", None, {"keys": [{"key_id": K1, "value": ""}]}),
    ("keys[0].value", None, {"keys": [{"key_id": K1, "value": "A*E="}]}),
    ("keys[0].value", None, {"keys": [{"key_id": K1}]}),
    ("keys", None, {"keys": [{"key_id": K1, "value": "AAE="}, {"key_id": K1,
                                                                 "value": "AAE="}]}),
    ("initiator_sae_id", None, {"initiator_sae_id": ""}),
    ("initiator_sae_id", None, {"initiator_sae_id": "x" * 65}),
    ("target_sae_ids", None, {"target_sae_ids": []}),
    ("target_sae_ids[0]", None, {"target_sae_ids": [7]}),
    ("ack_callback_url", None, {"ack_callback_url": "http://peer/ack"}),
    ("ack_callback_url", None, {"ack_callback_url": "https://p/" + "a" * 1020}),
    ("extension_mandatory[0]", None, {"extension_mandatory": ["x"]}),
    ("surprise", None, {"surprise": 1}),
]


@pytest.mark.parametrize(("where", "_", "changes"), BAD_FIELDS)
def test_each_malformed_field_is_named(where: str, _: None, changes: dict[str, Any]) -> None:
    """A malformed field gives 400 missing-parameters naming it, never the key value."""
    with pytest.raises(Problem) as caught:
        parse_ext_keys(body(**changes))
    doc = caught.value.document()
    assert (doc["status"], doc["type"]) == (400, TYPE_BASE + "missing-parameters")
    assert doc["details"]["field"] == f"ext_key_container.{where}"
    assert base64.b64encode(VALUE).decode() not in str(doc)


def test_missing_required_fields_are_named() -> None:
    """Each required field left out is named."""
    for name in ("keys", "initiator_sae_id", "target_sae_ids"):
        doc = body()
        del doc[name]
        with pytest.raises(Problem, match=name):
            parse_ext_keys(doc)


def test_arrays_over_their_limit_are_refused() -> None:
    """More keys, acks or key_ids than the limits allow: 400."""
    keys = [{"key_id": str(uuid.UUID(int=i + 1)), "value": "AAE="} for i in range(5)]
    with pytest.raises(Problem, match="at most 4"):
        parse_ext_keys(body(keys=keys), Limits(max_keys=4))
    ack = {"key_id_container": [{"key_id": K1}], "ack_status": "relayed",
           "initiator_sae_id": "a", "target_sae_ids": ["b"]}
    with pytest.raises(Problem) as caught:
        parse_acks([ack] * 1025)
    assert caught.value.kind == "ack-not-understood"
    assert len(parse_acks([ack] * 1024)) == 1024


def test_acks_are_checked_strictly() -> None:
    """Unknown ack_status, a long message, a bad key_id: 400 ack-not-understood."""
    good = {"key_id_container": [{"key_id": K1}], "ack_status": "failed to void",
            "initiator_sae_id": "a", "target_sae_ids": ["b"], "message": "m" * 4096}
    assert parse_acks({"ack_containers": [good]})[0].status == "failed to void"
    for change in ({"ack_status": "ok"}, {"message": "m" * 4097},
                   {"key_id_container": [{"key_id": "x"}]}, {"key_id_container": []}):
        with pytest.raises(Problem) as caught:
            parse_acks([{**good, **change}])
        assert caught.value.status == 400 and caught.value.kind == "ack-not-understood"


def test_void_without_key_ids_needs_confirmation() -> None:
    """Empty key_ids: 400 no-key-ids-or-confirmation, unless all_confirmation."""
    doc = {"key_ids": [], "initiator_sae_id": "a", "target_sae_ids": ["b"]}
    with pytest.raises(Problem) as caught:
        parse_void(doc)
    assert caught.value.kind == "no-key-ids-or-confirmation"
    assert parse_void({**doc, "all_confirmation": True}).all_confirmation
    with pytest.raises(Problem) as caught:
        parse_void({**doc, "key_ids": ["x"]})
    assert caught.value.kind == "void-request-not-understood"


def test_reprs_hide_key_values() -> None:
    """An ExtKey's repr shows its size, not its value."""
    assert repr(VALUE) not in repr(ExtKey(K1, VALUE)) and "32 bytes" in repr(ExtKey(K1, VALUE))


def test_keys_are_held_for_their_local_target() -> None:
    """A new key is held for sae-b under sae-a and acknowledged relayed."""
    k = kms()
    got = k.receive("kms-a", push([K1]), 1.0)
    assert statuses(got.acks) == {K1: "relayed"}
    assert k.store.held_for(K1) == ("sae-a", "sae-b")
    assert k.store.release_keys([K1], "sae-a", "sae-b")[0].material == VALUE


def test_a_replay_never_delivers_a_second_key() -> None:
    """The same key_id again: relayed as before (same initiator), failed otherwise;
    never held twice, also after its delivery."""
    k = kms()
    k.receive("kms-a", push([K1]), 1.0)
    k.store.release_keys([K1], "sae-a", "sae-b")
    assert statuses(k.receive("kms-a", push([K1]), 2.0).acks) == {K1: "relayed"}
    assert statuses(k.receive("kms-a", push([K1], "sae-x"), 2.0).acks) == {K1: "failed"}
    assert statuses(k.receive("kms-z", push([K1]), 2.0).acks) == {K1: "failed"}
    assert k.store.held_for(K1) is None


def test_void_discards_and_tombstones() -> None:
    """Void of a held key discards it; pushing it again fails; a never-seen key_id is
    'key not present' and tombstoned; a delivered one is 'failed to void'."""
    k = kms()
    k.receive("kms-a", push([K1, K2]), 1.0)
    k.store.release_keys([K2], "sae-a", "sae-b")
    k3 = str(uuid.UUID(int=3))
    acks = k.void("kms-a", Void((K1, K2, k3), "sae-a", ("sae-b",)), 2.0)
    assert statuses(acks) == {K1: "voided", K2: "failed to void", k3: "key not present"}
    assert k.store.held_for(K1) is None
    again = k.receive("kms-a", push([K1, k3]), 3.0)
    assert statuses(again.acks) == {K1: "failed", k3: "failed"}
    assert k.store.held_for(K1) is None and k.store.held_for(k3) is None


def test_void_all_with_confirmation() -> None:
    """No key_ids with all_confirmation voids every key between the SAEs from that peer."""
    k = kms()
    k.receive("kms-a", push([K1, K2]), 1.0)
    acks = k.void("kms-a", Void((), "sae-a", ("sae-b",), all_confirmation=True), 2.0)
    assert statuses(acks) == {K1: "voided", K2: "voided"}
    assert k.store.held_count("sae-a", "sae-b") == 0


def test_refusals_keep_nothing() -> None:
    """Unknown target (400), several targets and mandatory extensions (503): no ledger
    entry, no held key."""
    k = kms()
    cases = [(ExtKeys((ExtKey(K1, VALUE),), "sae-a", ("sae-q",)), 400, "key-routing-error"),
             (ExtKeys((ExtKey(K1, VALUE),), "sae-a", ("sae-b", "sae-c")), 503,
              "key-routing-error"),
             (ExtKeys((ExtKey(K1, VALUE),), "sae-a", ("sae-b",),
                      extension_mandatory=({"x_route": 1},)), 503,
              "unsupported-mandatory-extension")]
    for request, status, kind in cases:
        with pytest.raises(Problem) as caught:
            k.receive("kms-a", request, 1.0)
        assert (caught.value.status, caught.value.kind) == (status, kind)
    assert k.ledger.get([K1]) == {} and k.store.held_for(K1) is None


def test_optional_extensions_are_passed_on() -> None:
    """extension_optional comes back unchanged for the next hop."""
    ext = ({"x_hint": {"a": 1}},)
    got = kms().receive("kms-a", ExtKeys((ExtKey(K1, VALUE),), "sae-a", ("sae-b",),
                                         extension_optional=ext), 1.0)
    assert got.extension_optional == ext


def test_pushed_keys_are_released_only_when_every_target_relayed() -> None:
    """Two targets: one relayed ack releases nothing, the second releases the key."""
    k = kms()
    request = ExtKeys((ExtKey(K1, VALUE),), "sae-b", ("sae-x", "sae-y"))
    k.send("kms-c", request, 1.0)
    assert k.acknowledge("kms-c", [Ack((K1,), "relayed", "sae-b", ("sae-x",))], 2.0) == []
    released = k.acknowledge("kms-c", [Ack((K1,), "relayed", "sae-b", ("sae-y",))], 3.0)
    assert [key.key_id for key, _ in released] == [K1]
    assert k.acknowledge("kms-c", [Ack((K1,), "relayed", "sae-b", ("sae-y",))], 4.0) == []
    with pytest.raises(Problem) as caught:
        k.acknowledge("kms-other", [Ack((K1,), "relayed", "sae-b", ("sae-y",))], 5.0)
    assert (caught.value.status, caught.value.kind) == (400, "key-not-present")


def test_failed_or_voided_pushes_are_never_released() -> None:
    """A failed ack, then a late relayed one: nothing released; voided likewise."""
    k = kms()
    k.send("kms-c", ExtKeys((ExtKey(K1, VALUE), ExtKey(K2, VALUE)), "sae-b", ("sae-x",)), 1.0)
    k.acknowledge("kms-c", [Ack((K1,), "failed", "sae-b", ("sae-x",))], 2.0)
    k.voiding("kms-c", Void((K2,), "sae-b", ("sae-x",)), 2.0)
    late = [Ack((K1, K2), "relayed", "sae-b", ("sae-x",))]
    assert k.acknowledge("kms-c", late, 3.0) == []
    assert k.ledger.get([K2])[K2].state == "voided"


def test_voiding_every_pushed_key_settles_them_all() -> None:
    """A void of all keys to a peer (no key_ids) marks each pushed one voided here."""
    k = kms()
    k.send("kms-c", ExtKeys((ExtKey(K1, VALUE), ExtKey(K2, VALUE)), "sae-b", ("sae-x",)), 1.0)
    k.voiding("kms-c", Void((), "sae-b", ("sae-x",), all_confirmation=True), 2.0)
    assert {e.state for e in k.ledger.get([K1, K2]).values()} == {"voided"}
    assert k.acknowledge("kms-c", [Ack((K1, K2), "relayed", "sae-b", ("sae-x",))], 3.0) == []


def test_a_retry_of_a_push_is_allowed_a_reuse_is_not() -> None:
    """The same push again while unanswered is fine; the key_id for other SAEs is 400."""
    k = kms()
    request = ExtKeys((ExtKey(K1, VALUE),), "sae-b", ("sae-x",))
    k.send("kms-c", request, 1.0)
    k.send("kms-c", request, 2.0)
    with pytest.raises(Problem) as caught:
        k.send("kms-c", ExtKeys((ExtKey(K1, VALUE),), "sae-b", ("sae-y",)), 3.0)
    assert caught.value.status == 400


IDS = [str(uuid.UUID(int=i + 1)) for i in range(4)]
OPS = st.lists(st.tuples(st.sampled_from(["push", "push-other", "void", "take", "restart"]),
                         st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True)),
               max_size=25)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_any_sequence_delivers_a_key_id_at_most_once_and_never_after_void(
        ops: list[tuple[str, list[str]]]) -> None:
    """Whatever mix of pushes, replays, voids, deliveries and restarts (a fresh store,
    the same ledger): each key_id reaches the SAE at most once, never once voided."""
    ledger = MemoryLedger()
    k = kms(ledger)
    delivered: list[str] = []
    voided: set[str] = set()
    for now, (op, ids) in enumerate(ops):
        if op == "push":
            k.receive("kms-a", push(ids), float(now))
        elif op == "push-other":
            k.receive("kms-a", push(ids, "sae-other"), float(now))
        elif op == "void":
            k.void("kms-a", Void(tuple(ids), "sae-a", ("sae-b",)), float(now))
            voided |= {i for i in ids if i not in delivered}
        elif op == "restart":  # held keys lost with the memory store, the ledger kept
            k = InteropKms("b", MemoryKeyStore("b"), ledger, copy.copy(k.is_local))
        else:
            for key_id in ids:
                try:
                    k.store.release_keys([key_id], "sae-a", "sae-b")
                except KeyNotFound:
                    continue
                delivered.append(key_id)
        assert len(delivered) == len(set(delivered))
        assert not voided & set(delivered)
