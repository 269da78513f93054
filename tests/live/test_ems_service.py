"""The EMS and NMS services on loopback over mutual TLS with certificates of one CA: what
the EMS refuses (another node's record, another region's node, no identity, malformed
bodies) with its status and field, forwarding north with a bounded queue while the NMS is
away, and the NMS's reports raising the alarms of a node that falls silent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from node_deployment import SQUARE

from qkdnet.apps.sae_client import tls_context
from qkdnet.files.networks import load_network
from qkdnet.live.ems_service import TELEMETRY_PATH, EmsForwarder, EmsService, make_ems_app
from qkdnet.live.http_client import LeanClient
from qkdnet.live.nms_service import NmsService, NmsState, ems_id, make_nms_intake
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.telemetry_records import parse_record
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.topology.model import Network


def record(node: str, t: float = 1000.0, *, down: tuple[str, ...] = (),
           ok: bool = True) -> dict[str, Any]:
    """``node``'s record: its KM-links and QKD-links up (but ``down`` ones)."""
    kms = [k for k in ("km:a~b", "km:b~c", "km:c~d", "km:d~a") if node in k[3:].split("~")]
    links = [k.removeprefix("km:").replace("~", "--") for k in kms]
    return {"node": node, "t": t, "ok": ok,
            "links": [{"link": lk, "skr_bps": 1e4, "qber": 0.01, "up": lk.replace("--", "~") not in
                       [k.removeprefix("km:") for k in down],
                       "detector_current_alarm": False} for lk in links],
            "km_links": [{"km_link": k, "key_bits": 1e6, "rate_bps": 1e4,
                          "up": k not in down} for k in kms]}


@dataclass
class Services:
    """The square, its PKI, the west EMS and (restartable) the NMS intake."""

    network: Network
    pki: Pki
    ems: EmsService
    ems_server: TlsServer
    nms: NmsState
    nms_port: int = 0
    nms_server: TlsServer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clients: list[LeanClient] = field(default_factory=list)

    def client(self, who: str) -> LeanClient:
        """A client of the west EMS presenting ``who``'s certificate (a node or an SAE)."""
        pki = self.pki
        cert, key = ((pki.sae_cert(who), pki.sae_key(who)) if who.startswith("sae-")
                     else (pki.kme_cert(who), pki.kme_key(who)))
        client = LeanClient(f"https://127.0.0.1:{self.ems_server.port}",
                            tls_context(cert, key, pki.ca_cert), timeout_s=5.0)
        self.clients.append(client)
        return client

    async def start_nms(self) -> None:
        pki, me = self.pki, "qkdnet-nms"
        self.nms_server = make_server(
            make_nms_intake(NmsService(self.nms, ("west", "east"))), "127.0.0.1",
            self.nms_port, server_ssl_context(pki.kme_cert(me), pki.kme_key(me), pki.ca_cert))
        self.nms_port = self.nms_server.port
        self.tasks.append(asyncio.create_task(self.nms_server.serve()))
        while not self.nms_server.started:
            await asyncio.sleep(0.01)

    async def stop_nms(self) -> None:
        if self.nms_server is not None:
            self.nms_server.request_stop()
            await self.tasks.pop()
            self.nms_server = None


@contextlib.asynccontextmanager
async def services(tmp_path: Path, queue_records: int = 100) -> AsyncIterator[Services]:
    """The west EMS and the NMS intake serving on loopback."""
    (tmp_path / "square.yaml").write_text(SQUARE)
    network = load_network(tmp_path / "square.yaml")
    pki = init_pki(tmp_path / "pki", ["a", "b", "c", "d", ems_id("west"), "qkdnet-nms"],
                   ["sae-a"])
    ems = EmsService(network, "west", queue_records)
    me = ems_id("west")
    server = make_server(make_ems_app(ems), "127.0.0.1", 0,
                         server_ssl_context(pki.kme_cert(me), pki.kme_key(me), pki.ca_cert))
    s = Services(network, pki, ems, server, NmsState(NetworkMonitor(network)))
    s.tasks.append(asyncio.create_task(server.serve()))
    while not server.started:
        await asyncio.sleep(0.01)
    await s.start_nms()
    try:
        yield s
    finally:
        for client in s.clients:
            await client.aclose()
        await s.stop_nms()
        server.request_stop()
        await asyncio.gather(*s.tasks)


async def push(client: LeanClient, body: Any) -> tuple[int, dict[str, Any]]:
    reply = await client.post(TELEMETRY_PATH, body)
    return reply.status_code, json.loads(reply.content)


@pytest.mark.parametrize(("who", "body", "status", "start"), [
    ("a", record("b"), 403, "node: the client certificate names node 'a'"),
    ("c", record("c"), 403, "node 'c' is in region 'east', not 'west'"),
    ("sae-a", record("a"), 401, "the client certificate names no identity"),
    ("a", {**record("a"), "km_links": [{"km_link": "km:b~c", "key_bits": 1.0,
                                         "rate_bps": 0.0, "up": True}]},
     403, "km_links[0].km_link: node 'a' is not an end of KM-link 'km:b~c'"),
    ("a", {**record("a"), "km_links": [{"km_link": "km:a~b", "key_bits": 1.0,
                                         "rate_bps": 0.0, "up": "yes"}]},
     400, "km_links[0].up: must be true or false"),
    ("a", {**record("a"), "t": "now"}, 400, "t: must be a finite time"),
    ("a", {**record("a"), "links": [{"link": "a--b", "skr_bps": -1.0, "qber": 0.01,
                                     "up": True, "detector_current_alarm": False}]},
     400, "links[0].skr_bps: must be a number >= 0"),
    ("a", {**record("a"), "colour": "red"}, 400, "colour: unknown field"),
    ("a", [1, 2], 400, "body: must be a JSON object"),
])
def test_the_ems_refuses_what_a_node_may_not_push(
        tmp_path: Path, who: str, body: Any, status: int, start: str) -> None:
    """A push of another node's, another region's, unnamed or malformed telemetry is
    refused with its status and the field at fault, and nothing of it is queued."""
    async def run() -> None:
        async with services(tmp_path) as s:
            got, document = await push(s.client(who), body)
            assert got == status
            assert document["message"].startswith(start), document
            assert len(s.ems.queue) == 0 and s.ems.taken == 0

    asyncio.run(run())


def test_records_reach_the_nms_and_wait_in_a_bounded_queue_while_it_is_away(
        tmp_path: Path) -> None:
    """Pushed records go north in a batch; with the NMS down the EMS keeps the newest
    ``queue_records`` and counts the oldest it dropped; back, the NMS gets the newest."""
    async def run() -> None:
        async with services(tmp_path, queue_records=3) as s:
            client = s.client("a")
            assert (await push(client, record("a", 1000.0)))[0] == 200
            forwarder = EmsForwarder(
                s.ems, f"https://127.0.0.1:{s.nms_port}",
                tls_context(s.pki.kme_cert(ems_id("west")), s.pki.kme_key(ems_id("west")),
                            s.pki.ca_cert), retries=0)
            try:
                assert await forwarder.forward_now()
                assert s.ems.forwarded == 1 and not s.ems.queue
                assert s.nms.report() == []
                assert s.nms.monitor.nms.km_link_status("km:a~b") is not None

                await s.stop_nms()
                for k in range(5):
                    assert (await push(client, record("a", 1001.0 + k, down=("km:a~b",))))[0] == 200
                assert not await forwarder.forward_now()
                assert s.ems.nms_lost_since is not None
                assert len(s.ems.queue) == 3 and s.ems.dropped == 2

                await s.start_nms()
                assert await forwarder.forward_now()
                assert s.ems.nms_lost_since is None and s.ems.forwarded == 4
                events = s.nms.report()
                assert [(e.kind, e.alarm.rule, e.alarm.subject) for e in events
                        if e.alarm.subject == "km:a~b"] == [("raised", "km-link-down", "km:a~b")]
            finally:
                await forwarder.close()

    asyncio.run(run())


def test_a_silent_node_raises_node_down_and_its_links_go_down(tmp_path: Path) -> None:
    """A node whose records stop is unreachable after the silence time: node-down, and its
    KM-links and QKD-links down, while its neighbours' own links stay up."""
    (tmp_path / "square.yaml").write_text(SQUARE)
    network = load_network(tmp_path / "square.yaml")
    clock = [1000.0]
    state = NmsState(NetworkMonitor(network), clock=lambda: clock[0], silent_after_s=5.0)
    for node in "abcd":
        state.take([parse_record(record(node, clock[0]), network)])
    assert state.report() == []
    clock[0] += 3.0
    for node in "acd":  # b falls silent
        state.take([parse_record(record(node, clock[0]), network)])
    assert state.report() == []
    clock[0] += 3.0
    for node in "acd":
        state.take([parse_record(record(node, clock[0]), network)])
    raised = {(e.alarm.rule, e.alarm.subject) for e in state.report() if e.kind == "raised"}
    assert raised == {("node-down", "b"), ("km-link-down", "km:a~b"),
                      ("km-link-down", "km:b~c"), ("qkd-link-down", "a--b"),
                      ("qkd-link-down", "b--c")}
    nms = state.monitor.nms
    status = nms.link_status("c--d")
    assert status is not None and status.up and not math.isnan(status.qber)



def test_a_batch_north_stops_at_its_byte_budget_but_carries_at_least_one(tmp_path: Path
                                                                           ) -> None:
    """Records that would pass the byte budget wait for the next batch; one larger than the
    whole budget still goes, alone."""
    (tmp_path / "square.yaml").write_text(SQUARE)
    ems = EmsService(load_network(tmp_path / "square.yaml"), "west")
    for t in (1.0, 2.0, 3.0):
        ems.take("a", record("a", t))
    size = ems.queue[0][2]
    last, records = ems.batch(limit_bytes=2 * size)
    assert [r["t"] for r in records] == [1.0, 2.0] and last == ems.queue[1][0]
    _, records = ems.batch(limit_bytes=1)
    assert [r["t"] for r in records] == [1.0]
