"""ETSI GS QKD 014 request checks and documents, without HTTP."""

from __future__ import annotations

import base64
import uuid

import pytest

from qkdnet.keys.etsi014 import (
    EXTENSIONS_UNSUPPORTED,
    NOT_KME_CONFIGURATION,
    SIZE_NOT_MULTIPLE_OF_8,
    ApiError,
    Limits,
    key_container,
    key_ids,
    key_order,
    status_document,
)

LIMITS = Limits()


def test_defaults_are_one_key_of_the_default_size() -> None:
    """An empty request (simple GET or empty POST) asks for one key of key_size bits."""
    assert key_order(None, {}, LIMITS) == key_order({}, {}, LIMITS)
    order = key_order(None, {}, LIMITS)
    assert (order.number, order.size) == (1, LIMITS.key_size)


def test_query_parameters_of_the_get_form_are_read() -> None:
    """GET enc_keys?number=3&size=512."""
    order = key_order(None, {"number": "3", "size": "512"}, LIMITS)
    assert (order.number, order.size) == (3, 512)


@pytest.mark.parametrize(("body", "message"), [
    ({"size": 100}, SIZE_NOT_MULTIPLE_OF_8),
    ({"number": 0}, NOT_KME_CONFIGURATION),
    ({"number": 1000}, NOT_KME_CONFIGURATION),
    ({"size": 8}, NOT_KME_CONFIGURATION),
    ({"size": 1 << 20}, NOT_KME_CONFIGURATION),
    ({"extension_mandatory": [{"route": "fast"}]}, EXTENSIONS_UNSUPPORTED),
    ({"additional_slave_SAE_IDs": ["x"]}, NOT_KME_CONFIGURATION),
    ({"number": "three"}, "number shall be an integer"),
    ({"number": True}, "number shall be an integer"),
    ({"size": 256.5}, "size shall be an integer"),
    ([1, 2], "request body shall be a Key request JSON object"),
])
def test_bad_key_requests_get_400_with_the_standard_message(body: object, message: str) -> None:
    """Each malformed or unsupported request is a 400 with its message."""
    with pytest.raises(ApiError) as error:
        key_order(body, {}, LIMITS)
    assert error.value.status == 400
    assert error.value.body()["message"] == message


def test_optional_extensions_are_ignored() -> None:
    """extension_optional may be ignored by the KME."""
    assert key_order({"extension_optional": [{"x": 1}]}, {}, LIMITS).number == 1


def test_key_ids_from_post_body_and_get_query() -> None:
    """Both forms of Get key with key IDs give the IDs in order."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert key_ids({"key_IDs": [{"key_ID": a}, {"key_ID": b}]}, {}, LIMITS) == [a, b]
    assert key_ids(None, {"key_ID": a}, LIMITS) == [a]


@pytest.mark.parametrize("body", [
    {"key_IDs": [{"key_ID": "not-a-uuid"}]},
    {"key_IDs": []},
    {"key_IDs": [{"id": "x"}]},
    {"keys": []},
    None,
])
def test_bad_key_id_requests_get_400(body: object) -> None:
    """Missing, empty, malformed or non-UUID key IDs are refused."""
    with pytest.raises(ApiError) as error:
        key_ids(body, {}, LIMITS)
    assert error.value.status == 400


def test_repeated_key_ids_are_refused() -> None:
    """One ID twice in a request is a client error, not a double delivery."""
    a = str(uuid.uuid4())
    with pytest.raises(ApiError, match="repeat"):
        key_ids({"key_IDs": [{"key_ID": a}, {"key_ID": a}]}, {}, LIMITS)


def test_status_has_the_eleven_fields() -> None:
    """Every Status field of the standard, with the KME's limits."""
    doc = status_document("kme-a", "kme-b", "sae-1", "sae-2", 42, LIMITS)
    assert set(doc) == {
        "source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID", "key_size",
        "stored_key_count", "max_key_count", "max_key_per_request", "max_key_size",
        "min_key_size", "max_SAE_ID_count"}
    assert doc["stored_key_count"] == 42 and doc["max_SAE_ID_count"] == 0


def test_key_container_carries_base64_keys() -> None:
    """Keys travel base64-encoded with their UUIDs."""
    kid = str(uuid.uuid4())
    container = key_container([(kid, b"\x00\xff" * 16)])
    assert container == {"keys": [{"key_ID": kid,
                                   "key": base64.b64encode(b"\x00\xff" * 16).decode()}]}


@pytest.mark.parametrize("text", ["٢٥٦", " 256 ", "2_56", "２５６", "+256", "\t256\n"])
def test_size_in_anything_but_ascii_digits_is_refused(text: str) -> None:
    """Sizes int() would take (Arabic-Indic or full-width digits, spaces, underscores) get 400."""
    for source in ({"size": text}, None):
        with pytest.raises(ApiError) as err:
            key_order(source, {"size": text}, LIMITS)
        assert err.value.status == 400
        assert err.value.message == "size shall be an integer"


@pytest.mark.parametrize("value", ["１", "٣", float("inf"), float("nan"), float("-inf")])
def test_number_that_is_not_a_plain_integer_is_refused(value: object) -> None:
    """A full-width digit, a non-finite or fractional number, a list: 400, never a crash."""
    with pytest.raises(ApiError) as err:
        key_order({"number": value}, {}, LIMITS)
    assert (err.value.status, err.value.message) == (400, "number shall be an integer")


def test_key_ids_are_case_insensitive_and_come_back_lower_case() -> None:
    """RFC 4122: an upper-case key_ID is the same key_ID, handed on in lower case."""
    key_id = str(uuid.uuid4())
    assert key_ids({"key_IDs": [{"key_ID": key_id.upper()}]}, {}, LIMITS) == [key_id]
    assert key_ids(None, {"key_ID": key_id.upper()}, LIMITS) == [key_id]
    with pytest.raises(ApiError, match="repeat"):
        key_ids({"key_IDs": [{"key_ID": key_id}, {"key_ID": key_id.upper()}]}, {}, LIMITS)
