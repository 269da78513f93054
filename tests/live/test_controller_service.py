"""The controller as a service: a ring a-b-c-d-a whose nodes report KM-link state to, and
ask routes of, a controller served over mutual TLS on loopback with node certificates;
identity checks, the stale-routes rule when the controller is lost, state rebuilt from
reports after a restart, and malformed bodies refused naming the field."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qkdnet.apps.sae_client import tls_context
from qkdnet.control.controller import Controller
from qkdnet.errors import NoRoute
from qkdnet.files.networks import load_network
from qkdnet.keys.link_state import KMLinkState
from qkdnet.live.controller_client import ASKING, RemoteReporter, RemoteRouter
from qkdnet.live.controller_service import (
    HEALTH_PATH,
    REPORTS_PATH,
    ROUTES_PATH,
    ControllerService,
    make_controller_app,
)
from qkdnet.live.http_client import LeanClient
from qkdnet.live.pki import Pki, init_pki
from qkdnet.live.tls_server import TlsServer, make_server, server_ssl_context
from qkdnet.topology.model import Network

SCENARIO = """\
qkdnet_scenario: 1
name: ring
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_access, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_access, lat: 30.6, lon: 110.0}
  - {id: d, kind: backbone_access, lat: 30.3, lon: 109.7}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: c, b: d, length_km: 40, loss_db: 10, device_type: I}
  - {a: d, b: a, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
"""
NODES = ("a", "b", "c", "d")
AB, BC = "km:a~b", "km:b~c"
AROUND = ("a", "d", "c", "b")  # a to b the long way, round the ring


@dataclass
class Control:
    """The ring, its PKI and the controller service now running (restartable)."""

    network: Network
    pki: Pki
    port: int = 0
    server: TlsServer | None = None
    task: asyncio.Task[None] | None = None
    service: ControllerService | None = None
    clients: list[LeanClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def context(self, who: str) -> Any:
        """A client TLS context for node (or other KME) ``who``, or SAE ``sae-*``."""
        if who.startswith("sae-"):
            return tls_context(self.pki.sae_cert(who), self.pki.sae_key(who), self.pki.ca_cert)
        return tls_context(self.pki.kme_cert(who), self.pki.kme_key(who), self.pki.ca_cert)

    def client(self, who: str) -> LeanClient:
        """A keep-alive client of the service presenting ``who``'s certificate."""
        client = LeanClient(self.url, self.context(who), timeout_s=5.0)
        self.clients.append(client)
        return client

    async def start(self) -> None:
        """Serve a fresh controller (nothing kept from any earlier one) on the same port."""
        self.service = ControllerService(self.network)
        app = make_controller_app(self.service)
        pki = self.pki
        self.server = make_server(app, "127.0.0.1", self.port, server_ssl_context(
            pki.kme_cert("controller"), pki.kme_key("controller"), pki.ca_cert))
        self.port = self.server.port
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the service (its state goes with it)."""
        if self.server is not None and self.task is not None:
            self.server.request_stop()
            await self.task
        self.server = self.task = None


@contextlib.asynccontextmanager
async def control(tmp_path: Path) -> AsyncIterator[Control]:
    """The ring's controller service on loopback, with certificates for the nodes, for the
    service itself ("controller") and for an SAE."""
    path = tmp_path / "ring.yaml"
    path.write_text(SCENARIO)
    pki = init_pki(tmp_path / "pki", [*NODES, "controller"], ["sae-a"])
    ctl = Control(load_network(path), pki)
    await ctl.start()
    try:
        yield ctl
    finally:
        for client in ctl.clients:
            await client.aclose()
        await ctl.stop()


def a_states(*down: str) -> Callable[[], list[KMLinkState]]:
    """What node a reports: its KM-links up with plenty of key, but ``down`` ones."""
    return lambda: [KMLinkState(k, 1e6, 1e4, k not in down) for k in (AB, "km:d~a")]


def report_body(node: str, *down: str) -> bytes:
    """A report body of ``node``'s KM-links, ``down`` ones down."""
    links = [k for k in (AB, BC, "km:c~d", "km:d~a") if node in k[3:].split("~")]
    return json.dumps({"node": node, "states": [
        {"km_link": k, "key_bits": 1e6, "rate_bps": 1e4, "up": k not in down}
        for k in links]}).encode()


async def route_of(client: LeanClient, source: str, destination: str) -> tuple[int, Any]:
    """(status, document) of a route request."""
    reply = await client.post(ROUTES_PATH, {"source": source, "destination": destination})
    return reply.status_code, json.loads(reply.content)


async def until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``check`` held within ``seconds`` (s) of event-loop time, polled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def test_a_km_link_reported_down_is_routed_around_as_in_process(tmp_path: Path) -> None:
    """A KM-link its ends report down moves the route round the ring, the same route the
    in-process Controller takes from the same reports; reported up again, it reverts."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            a, b = ctl.client("a"), ctl.client("b")
            local = Controller.for_network(ctl.network)
            status, document = await route_of(a, "a", "b")
            assert (status, document["nodes"], document["km_links"]) == (200, ["a", "b"], [AB])
            assert tuple(document["nodes"]) == local.route("a", "b").nodes
            assert (await a.post_bytes(REPORTS_PATH, report_body("a", AB))).status_code == 200
            local.report([KMLinkState(AB, 1e6, 1e4, False)])
            status, document = await route_of(b, "a", "b")
            assert (status, tuple(document["nodes"])) == (200, AROUND)
            assert tuple(document["nodes"]) == local.route("a", "b").nodes
            assert document["cost"] > 0
            assert (await b.post_bytes(REPORTS_PATH, report_body("b"))).status_code == 200
            # one end's report of up is not enough: a still says down
            assert tuple((await route_of(a, "a", "b"))[1]["nodes"]) == AROUND
            assert (await a.post_bytes(REPORTS_PATH, report_body("a"))).status_code == 200
            assert tuple((await route_of(a, "a", "b"))[1]["nodes"]) == ("a", "b")
    asyncio.run(run())


def test_no_route_is_503_with_the_reason(tmp_path: Path) -> None:
    """With both KM-links of node a down there is no route from a, and the controller says
    why with a 503."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            a = ctl.client("a")
            body = report_body("a", AB, "km:d~a")
            assert (await a.post_bytes(REPORTS_PATH, body)).status_code == 200
            status, document = await route_of(a, "a", "c")
            assert status == 503
            assert "'a'" in document["message"] and "'c'" in document["message"]
            assert document["reason"]
    asyncio.run(run())


def test_a_node_cannot_report_another_nodes_links(tmp_path: Path) -> None:
    """A report of another node, or of a KM-link the sender is no end of, is refused with
    403 and changes nothing; an SAE's certificate names no node (401), and a KME outside
    the network is refused (403)."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            a = ctl.client("a")
            assert tuple((await route_of(a, "a", "c"))[1]["nodes"]) == ("a", "b", "c")
            as_b = await a.post_bytes(REPORTS_PATH, report_body("b", AB, BC))
            assert as_b.status_code == 403
            assert "node" in json.loads(as_b.content)["message"]
            foreign = json.dumps({"node": "a", "states": [
                {"km_link": BC, "key_bits": 0, "rate_bps": 0, "up": False}]}).encode()
            reply = await a.post_bytes(REPORTS_PATH, foreign)
            assert reply.status_code == 403
            assert json.loads(reply.content)["message"].startswith("states[0].km_link:")
            assert tuple((await route_of(a, "a", "c"))[1]["nodes"]) == ("a", "b", "c")
            sae = await ctl.client("sae-a").post_bytes(REPORTS_PATH, report_body("a", AB))
            assert sae.status_code == 401
            stranger = await ctl.client("controller").get(HEALTH_PATH)
            assert stranger.status_code == 403
            health = json.loads((await a.get(HEALTH_PATH)).content)
            assert (health["status"], health["reports"]) == ("ok", 0)
    asyncio.run(run())


def test_malformed_bodies_are_refused_naming_the_field(tmp_path: Path) -> None:
    """Each malformed report or route request gets a 400 whose message starts with the
    field at fault."""
    good = {"km_link": AB, "key_bits": 1.0, "rate_bps": 1.0, "up": True}
    cases: list[tuple[str, Any, str]] = [
        (REPORTS_PATH, [1], "body:"),
        (REPORTS_PATH, {"states": []}, "node:"),
        (REPORTS_PATH, {"node": "a", "states": {}}, "states:"),
        (REPORTS_PATH, {"node": "a", "states": [], "extra": 1}, "extra:"),
        (REPORTS_PATH, {"node": "z", "states": []}, "node:"),
        (REPORTS_PATH, {"node": "a", "states": [7]}, "states[0]:"),
        (REPORTS_PATH, {"node": "a", "states": [{**good, "key_bits": -1}]},
         "states[0].key_bits:"),
        (REPORTS_PATH, {"node": "a", "states": [{**good, "rate_bps": True}]},
         "states[0].rate_bps:"),
        (REPORTS_PATH, {"node": "a", "states": [{**good, "up": 1}]}, "states[0].up:"),
        (REPORTS_PATH, {"node": "a", "states": [{**good, "km_link": "km:x"}]},
         "states[0].km_link:"),
        (REPORTS_PATH, {"node": "a", "states": [good, good]}, "states[1].km_link:"),
        (REPORTS_PATH, {"node": "a", "states": [{"km_link": AB, "up": True,
                                                 "rate_bps": 0}]}, "states[0].key_bits:"),
        (ROUTES_PATH, {"source": "a"}, "destination:"),
        (ROUTES_PATH, {"source": 3, "destination": "b"}, "source:"),
        (ROUTES_PATH, {"source": "a", "destination": "nowhere"}, "destination:"),
    ]

    async def run() -> None:
        async with control(tmp_path) as ctl:
            a = ctl.client("a")
            for path, document, field_name in cases:
                reply = await a.post(path, document)
                message = json.loads(reply.content)["message"]
                assert (reply.status_code, message[:len(field_name)]) == (400, field_name), \
                    (document, message)
            reply = await a.post_bytes(REPORTS_PATH, b"{not json")
            assert (reply.status_code, json.loads(reply.content)["message"]) == \
                (400, "body: not JSON")
            assert ctl.service is not None and ctl.service.reports == 0
    asyncio.run(run())


def test_remote_router_answers_from_the_routes_the_controller_gave(tmp_path: Path) -> None:
    """A first call for a pair gets NoRoute while the controller is asked; the route then
    comes back through RemoteRouter, and follows the controller when a report moves it."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            router = RemoteRouter(ctl.url, ctl.context("a"), refresh_s=0.05)
            router.start()
            reporter = RemoteReporter(ctl.url, "a", ctl.context("a"), a_states(AB),
                                      interval_s=0.05)
            try:
                with pytest.raises(NoRoute, match=ASKING):
                    router.route("a", "b")
                assert await until(lambda: _nodes(router, "a", "b") == ("a", "b"))
                reporter.start()
                assert await until(lambda: _nodes(router, "a", "b") == AROUND)
                assert not router.stale and router.controller_lost_since is None
                assert reporter.sent >= 1 and reporter.failed == 0
            finally:
                await reporter.close()
                await router.close()
    asyncio.run(run())


def test_a_lost_controller_leaves_the_last_routes_and_says_so(tmp_path: Path) -> None:
    """With the controller stopped the router keeps answering the last routes it was given
    and reports itself stale since a time; the reporter gives reports up without queueing;
    the controller back, the router is fresh again."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            router = RemoteRouter(ctl.url, ctl.context("a"), refresh_s=0.05)
            router.start()
            reporter = RemoteReporter(ctl.url, "a", ctl.context("a"), a_states(AB),
                                      interval_s=0.05, retries=1, retry_s=0.01)
            reporter.start()
            try:
                assert tuple((await router.ask("a", "b")).nodes) in {("a", "b"), AROUND}
                assert await until(lambda: _nodes(router, "a", "b") == AROUND)
                await ctl.stop()
                assert await until(lambda: router.stale and reporter.failed >= 2)
                assert router.controller_lost_since is not None
                assert reporter.controller_lost_since is not None
                assert router.route("a", "b").nodes == AROUND
                with pytest.raises(NoRoute, match=ASKING):
                    router.route("a", "c")  # never answered: nothing to fall back on
                await ctl.start()
                assert await until(lambda: not router.stale)
                assert await until(lambda: _nodes(router, "a", "c") is not None)
                assert router.controller_lost_since is None
                assert await until(lambda: reporter.controller_lost_since is None)
            finally:
                await reporter.close()
                await router.close()
    asyncio.run(run())


def test_a_restarted_controller_rebuilds_its_state_from_the_next_reports(
        tmp_path: Path) -> None:
    """A restarted controller has kept nothing (a KM-link down before is taken as up);
    after the nodes' next reports it routes as it did before the restart."""
    async def run() -> None:
        async with control(tmp_path) as ctl:
            a = ctl.client("a")
            assert (await a.post_bytes(REPORTS_PATH, report_body("a", AB))).status_code == 200
            assert tuple((await route_of(a, "a", "b"))[1]["nodes"]) == AROUND
            await ctl.stop()
            await ctl.start()
            a = ctl.client("a")  # the kept-alive connection went with the old service
            assert tuple((await route_of(a, "a", "b"))[1]["nodes"]) == ("a", "b")
            reporter = RemoteReporter(ctl.url, "a", ctl.context("a"), a_states(AB),
                                      interval_s=0.05)
            reporter.start()
            try:
                assert await until(lambda: reporter.sent >= 1)
                assert tuple((await route_of(a, "a", "b"))[1]["nodes"]) == AROUND
                health = json.loads((await a.get(HEALTH_PATH)).content)
                assert health["nodes_reporting"] == 1 and health["reports"] >= 1
            finally:
                await reporter.close()
    asyncio.run(run())


def _nodes(router: RemoteRouter, source: str, destination: str) -> tuple[str, ...] | None:
    """The nodes of the router's route for the pair now; None while it has none."""
    try:
        return router.route(source, destination).nodes
    except NoRoute:
        return None
