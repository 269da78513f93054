"""The lean HTTP/1.1 client (KM to KM, and the load generator's ``--client lean``) calls a
real KME (``qkdnet serve``) over mutual TLS as httpx does, and refuses what it cannot
read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_scenario import CHAIN_SCENARIO

from qkdnet.apps.sae_client import KmeRefused, parse_keys, parse_reply, tls_context
from qkdnet.live.http_client import LeanClient, NoReply, read_head
from qkdnet.live.launch import ServeProcess, start_serve


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("lean")
    scenario = folder / "scenario.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    process = start_serve(folder / "serve", str(scenario), ["--prefill-bits", "65536"])
    try:
        yield process
    finally:
        process.stop()


def _client(serve: ServeProcess, sae: str, cold: bool = False) -> LeanClient:
    (cert, key), ca = serve.tls(sae)
    return LeanClient(serve.kme_url(sae) + "/api/v1/keys",
                      tls_context(Path(cert), Path(key), Path(ca)), cold=cold)


def test_a_key_got_by_the_master_is_the_key_the_slave_gets(serve: ServeProcess) -> None:
    """Get key at the master's KME, Get key with key IDs at the slave's, on one keep-alive
    connection each: the same key material, as the reply checks of the SAE client read it."""
    async def run() -> None:
        async with _client(serve, "sae-a") as master, _client(serve, "sae-c") as slave:
            for _ in range(3):  # the connection is reused between calls
                reply = await master.post("/sae-c/enc_keys", json={"number": 2, "size": 256})
                got = parse_keys(parse_reply(reply.status_code, reply.content), 2, 256)
                asked = {"key_IDs": [{"key_ID": k.key_id} for k in got]}
                reply = await slave.post("/sae-a/dec_keys", json=asked)
                same = parse_keys(parse_reply(reply.status_code, reply.content), 2, 256)
                assert [(k.key_id, k.material) for k in same] == \
                    [(k.key_id, k.material) for k in got]
    asyncio.run(run())


def test_refusals_come_back_as_the_kme_sent_them(serve: ServeProcess) -> None:
    """A 400 (unknown slave) and a 404 (no such path) are read whole, Error object and all,
    and the connection goes on serving; a cold client opens one connection per call."""
    async def run() -> None:
        async with _client(serve, "sae-a") as master:
            reply = await master.get("/nobody/status")
            with pytest.raises(KmeRefused) as refused:
                parse_reply(reply.status_code, reply.content)
            assert (refused.value.status, refused.value.message) == (400, "unknown slave SAE ID")
            assert (await master.get("/sae-c/nowhere")).status_code == 404
            assert (await master.get("/sae-c/status")).status_code == 200
        async with _client(serve, "sae-a", cold=True) as cold:
            for _ in range(2):
                assert (await cold.get("/sae-c/status")).status_code == 200
                assert cold._streams is None  # closed after the call
    asyncio.run(run())


def test_a_server_that_is_not_there_is_no_reply(tmp_path: Path, serve: ServeProcess) -> None:
    """A refused connection is NoReply (counted as "no reply" by the load generator)."""
    (cert, key), ca = serve.tls("sae-a")
    client = LeanClient("https://127.0.0.1:9/api/v1/keys",
                        tls_context(Path(cert), Path(key), Path(ca)), timeout_s=5)
    with pytest.raises(NoReply):
        asyncio.run(client.get("/sae-c/status"))


@pytest.mark.parametrize(("head", "why"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", "Content-Length"),
    (b"SPDY/3 200 OK\r\nContent-Length: 2\r\n\r\n", "status line"),
    (b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n", "status line"),
])
def test_a_reply_head_it_cannot_read_is_refused_not_guessed(head: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        read_head(head)


def test_a_reply_head_is_read_for_status_length_and_close() -> None:
    assert read_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 41\r\n\r\n") == \
        (503, 41, False)
    assert read_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") \
        == (200, 0, True)
    assert read_head(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n") == (200, 7, True)
