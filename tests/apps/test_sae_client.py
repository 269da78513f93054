"""The SAE client against a KME played by ``httpx.MockTransport``: the requests it builds
(GET and POST forms, URL-encoded IDs), the typed records it returns, and each failure mapped
to its own error, never carrying key material. (tests/apps/test_sealed_files.py and
tests/live/test_kme_service.py run it against a real ``qkdnet serve``.)"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkdnet.apps.sae_client import (
    BadRequest,
    Key,
    KmeError,
    KmeProtocolError,
    KmeRefused,
    KmeUnavailable,
    KmeUnreachable,
    SaeClient,
    Unauthorized,
)
from qkdnet.errors import QkdnetError
from qkdnet.live.pki import Pki, init_pki

URL = "https://127.0.0.1:9999"
STATUS = {"source_KME_ID": "a", "target_KME_ID": "c", "master_SAE_ID": "sae-a",
          "slave_SAE_ID": "sae-c", "key_size": 256, "stored_key_count": 7,
          "max_key_count": 100, "max_key_per_request": 128, "max_key_size": 8192,
          "min_key_size": 64, "max_SAE_ID_count": 0}

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), ["a"], ["sae-a"])


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def kme(pki: Pki, seen: list[httpx.Request]) -> Iterator[Callable[[Handler], SaeClient]]:
    """A client for sae-a whose KME is ``handler``; the requests land in ``seen``."""
    clients: list[SaeClient] = []

    def make(handler: Handler) -> SaeClient:
        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        client = SaeClient(URL, pki.sae_cert("sae-a"), pki.sae_key("sae-a"), pki.ca_cert,
                           transport=httpx.MockTransport(record))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def container(*keys: tuple[str, bytes]) -> dict[str, Any]:
    return {"keys": [{"key_ID": i, "key": base64.b64encode(k).decode()} for i, k in keys]}


def replying(status: int, body: Any) -> Handler:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda _: httpx.Response(status, content=content)


def test_status_is_a_typed_record(kme: Callable[[Handler], SaeClient],
                                  seen: list[httpx.Request]) -> None:
    """Get status is a GET on .../{slave}/status and comes back as a KmeStatus."""
    status = kme(replying(200, STATUS)).status("sae-c")
    assert (status.source_kme_id, status.slave_sae_id, status.stored_key_count) == \
        ("a", "sae-c", 7)
    assert (seen[0].method, seen[0].url.path) == ("GET", "/api/v1/keys/sae-c/status")


def test_a_status_without_a_field_names_it(kme: Callable[[Handler], SaeClient]) -> None:
    """A Status reply missing max_key_size is a protocol error naming the field."""
    reply = {k: v for k, v in STATUS.items() if k != "max_key_size"}
    with pytest.raises(KmeProtocolError, match="max_key_size"):
        kme(replying(200, reply)).status("sae-c")


def test_enc_keys_posts_a_key_request_and_returns_keys(
        kme: Callable[[Handler], SaeClient], seen: list[httpx.Request]) -> None:
    """POST enc_keys carries number, size and the extensions given; keys come back typed."""
    made = [(str(uuid.uuid4()), os.urandom(32)) for _ in range(2)]
    client = kme(replying(200, container(*made)))
    keys = client.enc_keys("sae-c", 2, 256, extension_optional=[{"route": "short"}])
    assert keys == [Key(i, k) for i, k in made]
    assert seen[0].method == "POST" and seen[0].url.path == "/api/v1/keys/sae-c/enc_keys"
    assert json.loads(seen[0].content) == {"number": 2, "size": 256,
                                           "extension_optional": [{"route": "short"}]}


def test_enc_keys_get_form_puts_number_and_size_in_the_query(
        kme: Callable[[Handler], SaeClient], seen: list[httpx.Request]) -> None:
    """GET enc_keys?number=1&size=128; extensions need the POST form."""
    client = kme(replying(200, container((str(uuid.uuid4()), os.urandom(16)))))
    assert len(client.enc_keys("sae-c", 1, 128, method="GET")) == 1
    assert (seen[0].method, dict(seen[0].url.params)) == ("GET", {"number": "1",
                                                                  "size": "128"})
    with pytest.raises(ValueError, match="use POST"):
        client.enc_keys("sae-c", method="GET", extension_mandatory=[{"x": 1}])


def test_dec_keys_returns_the_keys_asked_for_as_the_kme_orders_them(
        kme: Callable[[Handler], SaeClient], seen: list[httpx.Request]) -> None:
    """POST dec_keys with Key IDs; the keys come back as delivered."""
    made = [(str(uuid.uuid4()), os.urandom(32)) for _ in range(3)]
    client = kme(replying(200, container(*reversed(made))))
    asked = [i for i, _ in made]
    assert client.dec_keys("sae-a", asked) == [Key(i, k) for i, k in reversed(made)]
    assert json.loads(seen[0].content) == {"key_IDs": [{"key_ID": i} for i in asked]}


def test_dec_keys_get_form_carries_one_key_id(kme: Callable[[Handler], SaeClient],
                                              seen: list[httpx.Request]) -> None:
    """GET dec_keys?key_ID=; two IDs need the POST form."""
    key_id = str(uuid.uuid4())
    client = kme(replying(200, container((key_id, os.urandom(32)))))
    assert client.dec_keys("sae-a", [key_id], method="GET")[0].key_id == key_id
    assert dict(seen[0].url.params) == {"key_ID": key_id}
    with pytest.raises(ValueError, match="one key_ID"):
        client.dec_keys("sae-a", [key_id, key_id], method="GET")


def test_sae_ids_are_url_encoded_in_the_path(kme: Callable[[Handler], SaeClient],
                                             seen: list[httpx.Request]) -> None:
    """An SAE ID with a slash stays one path segment."""
    kme(replying(200, STATUS)).status("sae/odd id")
    assert seen[0].url.raw_path == b"/api/v1/keys/sae%2Fodd%20id/status"


@pytest.mark.parametrize(("status", "kind"), [(400, BadRequest), (401, Unauthorized),
                                              (503, KmeUnavailable), (500, KmeRefused)])
def test_error_replies_become_typed_errors_with_the_standards_message(
        status: int, kind: type[KmeRefused], kme: Callable[[Handler], SaeClient]) -> None:
    """Each Error reply raises its own class with status, message and details."""
    body = {"message": "size shall be a multiple of 8", "details": [{"parameter": "size"}]}
    with pytest.raises(kind) as caught:
        kme(replying(status, body)).enc_keys("sae-c", 1, 100)
    error = caught.value
    assert (error.status, error.message, error.details) == \
        (status, body["message"], body["details"])
    assert str(error) == f"KME refused ({status}): size shall be a multiple of 8"
    assert isinstance(error, KmeError) and isinstance(error, QkdnetError)


def test_an_error_reply_without_an_error_object_is_a_protocol_error(
        kme: Callable[[Handler], SaeClient]) -> None:
    """A 401 with an HTML body: KmeProtocolError naming the status."""
    with pytest.raises(KmeProtocolError, match="401"):
        kme(replying(401, b"<html>no</html>")).status("sae-c")


def test_a_key_that_is_not_base64_is_refused_without_showing_it(
        kme: Callable[[Handler], SaeClient]) -> None:
    """Bad base64 in a Key container names the key_ID, not the value."""
    value = "QUJD!" + "x" * 40
    reply = {"keys": [{"key_ID": "k1", "key": value}]}
    with pytest.raises(KmeProtocolError, match="key k1 is not valid base64") as caught:
        kme(replying(200, reply)).enc_keys("sae-c")
    assert value not in str(caught.value)


def test_a_container_that_does_not_match_the_request_is_refused(
        kme: Callable[[Handler], SaeClient]) -> None:
    """Fewer keys, keys of another size, or other key_IDs than asked: protocol errors."""
    one = container((str(uuid.uuid4()), os.urandom(32)))
    with pytest.raises(KmeProtocolError, match="1 keys, not 2"):
        kme(replying(200, one)).enc_keys("sae-c", 2, 256)
    with pytest.raises(KmeProtocolError, match="not 128 bits"):
        kme(replying(200, one)).enc_keys("sae-c", 1, 128)
    with pytest.raises(KmeProtocolError, match="other key_IDs"):
        kme(replying(200, one)).dec_keys("sae-a", [str(uuid.uuid4())])


def test_no_reply_is_kme_unreachable(kme: Callable[[Handler], SaeClient]) -> None:
    """A refused connection raises KmeUnreachable naming the KME."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(KmeUnreachable, match=r"127\.0\.0\.1:9999"):
        kme(refuse).status("sae-c")


def test_key_material_is_not_in_a_keys_repr() -> None:
    """repr and str of a Key show its key_ID and size only."""
    key = Key("k1", bytes(range(32)))
    for text in (repr(key), str(key)):
        assert "k1" in text and bytes(range(32)).hex() not in text
        assert base64.b64encode(key.material).decode() not in text
    assert key.size == 256


def test_from_manifest_reads_the_sae_and_names_the_known_ones(pki: Pki, tmp_path: Path
                                                              ) -> None:
    """The manifest gives URL, certificate and CA; an SAE not in it is named with the list."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"ca": str(pki.ca_cert), "saes": {"sae-a": {
        "node": "a", "kme_url": URL + "/", "cert": str(pki.sae_cert("sae-a")),
        "key": str(pki.sae_key("sae-a"))}}}))
    with SaeClient.from_manifest(manifest, "sae-a") as client:
        assert client.kme_url == URL and "9999" in repr(client)
    with pytest.raises(QkdnetError, match="'sae-z' is not in the manifest; it lists: sae-a"):
        SaeClient.from_manifest(manifest, "sae-z")
    with pytest.raises(QkdnetError, match="cannot read the manifest"):
        SaeClient.from_manifest(tmp_path / "missing.json", "sae-a")
