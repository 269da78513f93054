"""KM-to-KM over mutual TLS: the nodes of a chain a-b-c-d split between two key networks
(a, b | c, d), each with its own SQLite stores and KM listener on loopback, relaying keys
across the border with node certificates; acknowledgements only after commit, retries
done once, refusals by identity and shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from border_sides import BLOCK_UNITS, SIDES, border, node_context

from qkdnet.apps.sae_client import tls_context
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.live.http_client import LeanClient
from qkdnet.live.keynet import KeyNetwork
from qkdnet.live.km_app import make_km_app
from qkdnet.live.km_transport import KM_PATH, RemoteKMs
from qkdnet.live.tls_server import make_server, server_ssl_context


def test_keys_cross_the_border_and_are_the_same_at_both_saes(tmp_path: Path) -> None:
    """Get key at a's side, Get key with key IDs at d's side: the same keys, each once, in
    both directions across the border."""
    async def run() -> None:
        async with border(tmp_path) as net:
            left, right = net.sides
            for _ in range(3):
                keys = await left.keynet.enc_keys("sae-a", "sae-d", 2, 256)
                assert await right.keynet.dec_keys("sae-d", "sae-a", [k for k, _ in keys]) \
                    == keys
                back = await right.keynet.enc_keys("sae-d", "sae-a", 1, 256)
                assert await left.keynet.dec_keys("sae-a", "sae-d", [k for k, _ in back]) \
                    == back
            with pytest.raises(ApiError) as again:
                await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]])
            assert again.value.status == 400
            assert left.remote.delivered > 0 and right.remote.delivered > 0
            assert left.remote.lost == right.remote.lost == 0
    asyncio.run(run())


def test_each_border_unit_is_spent_once_at_each_end(tmp_path: Path) -> None:
    """After relays both ways, the border link's two ends hold the same units unused: every
    unit b sent with was taken once at c, and the other way round."""
    async def run() -> None:
        async with border(tmp_path) as net:
            left, right = net.sides
            for _ in range(4):
                await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
                await right.keynet.enc_keys("sae-d", "sae-a", 3, 256)
            b, c = left.keynet.stores["b"], right.keynet.stores["c"]
            link = net.border_link
            assert b.pool_bytes(link, True) == c.pool_bytes(link, False)
            assert b.pool_bytes(link, False) == c.pool_bytes(link, True)
            assert b.pool_bytes(link, True) < 4 * BLOCK_UNITS * UNIT_BYTES  # some was spent
    asyncio.run(run())


class _LoseFirstAck:
    """Fault injection: the KM listener does the first batch, then the connection drops
    before its acknowledgement reaches the sender."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lost = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.lost or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.lost = True

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.body":
                raise ConnectionResetError("acknowledgement lost (test)")

        with contextlib.suppress(ConnectionResetError):
            await self.app(scope, receive, swallow)
        raise ConnectionResetError("acknowledgement lost (test)")


def test_a_batch_sent_again_after_a_lost_acknowledgement_is_done_once(tmp_path: Path
                                                                      ) -> None:
    """The first hop across the border is done, its acknowledgement lost, the batch sent
    again: recognised by id, acknowledged, not done twice (no pad taken twice, the key
    delivered once)."""
    fault: list[_LoseFirstAck] = []

    def wrap(app: Any) -> Any:
        fault.append(_LoseFirstAck(app))
        return fault[0]

    async def run() -> None:
        async with border(tmp_path, wrap=wrap) as net:
            left, right = net.sides
            keys = await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert fault[0].lost
            for _ in range(200):  # the retry waits out its back-off (50 ms) first
                if left.remote.queued == 0:
                    break
                await asyncio.sleep(0.02)
            assert left.remote.retries >= 1 and left.remote.queued == 0
            listener = fault[0].app.app  # BodyLimit -> KmApp
            assert listener.duplicates >= 1
            assert await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]]) == keys
            b, c = left.keynet.stores["b"], right.keynet.stores["c"]
            assert b.pool_bytes(net.border_link, True) == c.pool_bytes(net.border_link, False)
    asyncio.run(run())


class _CrashAfterFirstBatch:
    """Fault injection: the receiving process does the first batch and commits it, then
    dies before it acknowledges it or sends anything on (its transport sends nothing, as
    a killed process's would not); ``restart`` then brings up a new process on the same
    stores, whose KM listener takes the sender's retries."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.crashed = False
        self.restart: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.crashed or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.crashed = True

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.body":
                raise ConnectionResetError("process killed (test)")

        with contextlib.suppress(ConnectionResetError):
            await self.app(scope, receive, swallow)
        await self.restart()
        raise ConnectionResetError("process killed (test)")


def test_a_relay_completes_once_across_a_crash_of_the_receiving_process(tmp_path: Path
                                                                         ) -> None:
    """The process of c and d does the hop from b, commits (keys held at d, the completion
    for a kept in d's store) and dies before acknowledging it or sending the completion.
    Restarted on the same stores, it sends the kept completion again and recognises b's
    retry of the hop as done (no pad taken twice): Get key at a succeeds, the keys are
    released once at d, and the border link's ends still hold the same units."""
    fault: list[_CrashAfterFirstBatch] = []

    def wrap(app: Any) -> Any:
        fault.append(_CrashAfterFirstBatch(app))
        return fault[0]

    async def run() -> None:
        async with border(tmp_path, wrap=wrap) as net:
            left, right = net.sides
            dead = right.remote.send
            right.remote.send = lambda *args, **kw: None  # type: ignore[method-assign]

            async def restart() -> None:
                right.keynet.close()
                url = f"https://127.0.0.1:{left.server.port}"
                right.remote = RemoteKMs(dict.fromkeys(SIDES[0], url),
                                         lambda node: node_context(net.pki, node))
                right.keynet = KeyNetwork(net.network, tmp_path / "side1", SIDES[1],
                                          remote=right.remote)
                fault[0].app = make_km_app(right.keynet.receive, SIDES[1])
                assert right.keynet.resend_kept() == 1  # the completion, from d to a

            fault[0].restart = restart
            keys = await left.keynet.enc_keys("sae-a", "sae-d", 2, 256)
            assert fault[0].crashed and dead is not right.remote.send
            for _ in range(200):  # b's retry waits out its back-off first
                if left.remote.queued == 0:
                    break
                await asyncio.sleep(0.02)
            assert left.remote.queued == 0 and right.keynet.replayed == 1
            assert await right.keynet.dec_keys("sae-d", "sae-a", [k for k, _ in keys]) == keys
            b, c = left.keynet.stores["b"], right.keynet.stores["c"]
            assert b.pool_bytes(net.border_link, True) == c.pool_bytes(net.border_link, False)
            for _ in range(100):  # the completion's acknowledgement reaches the transport
                if right.remote.queued == 0:
                    break
                await asyncio.sleep(0.02)
            assert right.remote.delivered == 1  # the completion; no failure said of the hop
            assert right.keynet.forget_settled() == 1
            assert right.keynet.stores["d"].outgoing() == []
    asyncio.run(run())


def test_with_the_other_side_down_a_relay_fails_and_resumes_after(tmp_path: Path) -> None:
    """Nobody listens for c and d: Get key from a to d fails (503) on the source's own timer
    and nothing is left held at d; once the listener is back, keys cross again."""
    async def run() -> None:
        async with border(tmp_path, timeout_s=1.0, give_up_s=1.5) as net:
            left, right = net.sides
            port = right.server.port
            right.server.request_stop()
            await right.task
            with pytest.raises(ApiError) as failed:
                await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert failed.value.status == 503
            await asyncio.sleep(1.6)  # past give_up_s: the queued hop is dropped
            assert left.remote.lost >= 1
            assert right.keynet.stores["d"].held_key_ids() == []
            app = make_km_app(right.keynet.receive, SIDES[1])
            right.server = make_server(app, "127.0.0.1", port, server_ssl_context(
                net.pki.kme_cert("c"), net.pki.kme_key("c"), net.pki.ca_cert))
            right.task = asyncio.create_task(right.server.serve())
            keys = await left.keynet.enc_keys("sae-a", "sae-d", 1, 256)
            assert await right.keynet.dec_keys("sae-d", "sae-a", [keys[0][0]]) == keys
    asyncio.run(run())


def test_the_listener_refuses_what_it_must_not_do(tmp_path: Path) -> None:
    """A batch claiming another sender than the certificate, from an SAE's certificate, to
    a node not served there, or malformed: refused whole (401 or 400, naming why)."""
    async def run() -> None:
        async with border(tmp_path) as net:
            url = f"https://127.0.0.1:{net.sides[1].server.port}"
            batch = {"v": 1, "from": "b", "messages": [
                {"id": "x:1", "to": "c", "type": "abort", "key_ids": ["k"],
                 "master_sae": "sae-a", "slave_sae": "sae-d"}]}

            async def post(cert_of: str, document: Any, sae: bool = False
                           ) -> tuple[int, str]:
                context = tls_context(net.pki.sae_cert(cert_of), net.pki.sae_key(cert_of),
                                      net.pki.ca_cert) if sae else node_context(net.pki, cert_of)
                async with LeanClient(url, context) as client:
                    reply = await client.post_bytes(KM_PATH, json.dumps(document).encode())
                answer = json.loads(reply.content)
                return reply.status_code, str(answer.get("message", answer))

            status, why = await post("a", batch)
            assert (status, "names node 'a'" in why) == (401, True)
            status, why = await post("sae-a", batch, sae=True)
            assert (status, "names no node" in why) == (401, True)
            status, why = await post("b", {**batch, "messages": [
                {**batch["messages"][0], "to": "a"}]})
            assert (status, "'a' is not served" in why) == (400, True)
            status, why = await post("b", {**batch, "messages": [
                {**batch["messages"][0], "type": "teleport"}]})
            assert (status, "messages[0].type" in why) == (400, True)
            assert await post("b", batch) == (200, "{'accepted': 1}")
    asyncio.run(run())
