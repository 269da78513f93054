"""``qkdnet node``: one node process of a deployment (:mod:`qkdnet.files.deployment`), the
nodes placed in it and nothing else.

For each of its nodes the process runs the Key Manager and its SQLite key store and the
ETSI GS QKD 014 KME on the node's port; it keeps the KM-links between its own nodes
filled from their emulated devices as ``qkdnet serve`` does. Everything else goes over the
network with the nodes' certificates from the deployment's PKI:

- KM-to-KM (relay hops, completions, aborts, key supply notifications) to the KM listener
  of the process hosting the other node (:mod:`qkdnet.live.km_transport`), and from others
  to this process's KM listener on ``km_port`` (:mod:`qkdnet.live.km_app`);
- the key of a KM-link to another process comes from its QKD device pair, each end from
  its own device end, synchronised over KM-to-KM (:mod:`qkdnet.live.border_supply`). Each
  end's KM is an ETSI 014 client of its device end (:mod:`qkdnet.live.device_client`): a
  vendor's device where the deployment names one (``vendor_devices``), else the emulated
  pair in the deployment's devices service (``qkdnet qkd-devices``), else, with no devices
  service placed, the emulated pair run in the process of the link's end ``a``, which
  also serves end ``b``'s device end over ETSI 014 on its KM listener, under
  ``/devices/<km_link>`` (:mod:`qkdnet.live.device_app`);
- the key of a satellite KM-link (between two ground stations, here or not) comes from the
  satellite, which the devices service flies (:mod:`qkdnet.live.satellite_device`): each
  ground station's KM is its ETSI 014 client and synchronises with the other station's as
  on a border KM-link, keeping a pad of its own and leaving the rest in the satellite's
  pools; it asks the satellite every STATE_INTERVAL_S how much it can still relay, and
  reports that to the controller, which prices the satellite KM-link by it.

Routes come from the deployment's controller service (:mod:`qkdnet.live.controller_client`:
the last routes it gave are kept while it is lost), to which each node reports its
KM-links every STATE_INTERVAL_S: a KM-link between two nodes of this process as ``qkdnet
serve`` does, a border KM-link by this end's pool, and down when the other end's process
has not answered for :data:`~qkdnet.live.km_transport.DOWN_AFTER_S`, so routes go round a
dead or unreachable process and come back (revertive) once it answers. With
``local_controller`` the process runs a controller of its own over the whole network
instead, and reports to it also the KM-links between other processes, as nominal (full) or
down. A manifest in the data folder names the process's KMEs and SAEs, as ``qkdnet
serve``'s does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qkdnet.apps.sae_client import tls_context
from qkdnet.control.controller import Controller
from qkdnet.errors import NoRoute, ParameterError
from qkdnet.files.deployment import Deployment, ProcessPlacement, VendorDevice
from qkdnet.keys.domain_border import gateways as domain_gateways
from qkdnet.keys.link_state import KMLinkState, km_link_state
from qkdnet.keys.route import Route, Router
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.border_supply import FIGURES_FILE, write_figures
from qkdnet.live.connection_limits import ConnectionBudget, raise_file_limit
from qkdnet.live.controller_client import ASKING, RemoteReporter, RemoteRouter
from qkdnet.live.controller_process import controller_url
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.device_app import PREFIX as DEVICE_PREFIX
from qkdnet.live.device_app import make_device_app
from qkdnet.live.device_client import HttpDeviceEnd
from qkdnet.live.device_process import DEVICE_KEY_BYTES, device_url
from qkdnet.live.ems_process import service_url
from qkdnet.live.handshake_audit import HandshakeRefusals, audited
from qkdnet.live.interop_relay import BorderKeyNetwork
from qkdnet.live.keynet import DEFAULT_CAPACITY_BYTES, DEFAULT_HELD_KEY_TTL_S, KeyNetwork
from qkdnet.live.km_app import make_km_app
from qkdnet.live.km_transport import RemoteKMs
from qkdnet.live.kme_app import make_kme_app
from qkdnet.live.pki import Pki, load_pki
from qkdnet.live.qkd_device import DeviceEnd, EmulatedDevice
from qkdnet.live.revocation import RevocationWatch
from qkdnet.live.serve import KME_LIMITS
from qkdnet.live.step_guard import StepGuard
from qkdnet.live.telemetry_pusher import TelemetryPusher
from qkdnet.live.telemetry_records import KMLinkEnd, LinkEnd, NodeRecord, ServiceEnd
from qkdnet.live.tls_server import TlsServer, make_server, serve_many, server_ssl_context
from qkdnet.management.kme_counts import KmeCounts
from qkdnet.management.reported_counts import RouteMemory, kme_share, pair_share
from qkdnet.management.services import ServiceRoutes
from qkdnet.quantum.emulator import emulator_for_link
from qkdnet.quantum.link_rate import links_skr_bps
from qkdnet.quantum.rate_table import intrinsic_qber
from qkdnet.topology.model import KMLink, KMLinkKind

log = logging.getLogger(__name__)

PUMP_INTERVAL_S = 0.05
#: How often the process's KM-link states reach its controller (s).
STATE_INTERVAL_S = 1.0
PUMP_BUDGET_S = 0.005
EXPIRE_INTERVAL_S = 1.0

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class NodeOptions:
    """How to run a node process: its data folder, the PKI folder (``ca.crt``, ``kme/``),
    the address to listen on (default: its host's address in the deployment), how fast
    key is made, and the pools."""

    folder: Path
    pki: Path
    listen: str | None = None
    speedup: float = 1.0
    prefill_bits: int = 0
    pool_capacity_bits: int = DEFAULT_CAPACITY_BYTES * 8
    held_key_ttl_s: float = DEFAULT_HELD_KEY_TTL_S
    local_controller: bool = False  # a controller in this process, not the service

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise ParameterError("--speedup", self.speedup, "must be > 0")
        if self.prefill_bits < 0:
            raise ParameterError("--prefill-bits", self.prefill_bits, "must be >= 0")
        if not (self.pki / "ca.crt").is_file():
            raise ParameterError("--pki", str(self.pki), "no ca.crt there: make the "
                                 "deployment's PKI with `qkdnet up` or `qkdnet pki init`")


async def run_node(deployment: Deployment, process_id: str, options: NodeOptions,
                   ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Run the node process ``process_id`` until cancelled; ``ready`` gets its manifest
    once every listener is up."""
    placement = deployment.process(process_id)  # the caller checked the name
    open_data_folder(options.folder)
    raise_file_limit()
    lock = FolderLock.acquire(options.folder)
    try:
        await _run(deployment, placement, options, lock, ready)
    finally:
        with contextlib.suppress(OSError):
            path = options.folder / "manifest.json"
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        lock.release()


async def _run(deployment: Deployment, placement: ProcessPlacement, options: NodeOptions,
               lock: FolderLock, ready: Callable[[dict[str, Any]], None] | None) -> None:
    network = deployment.network
    nodes = placement.nodes
    pki = load_pki(options.pki)
    listen = options.listen or deployment.host(placement.host).address
    loop = asyncio.get_running_loop()

    def context_for(node: str) -> Any:
        return tls_context(pki.kme_cert(node), pki.kme_key(node), pki.ca_cert)

    peers = {n: _url(*deployment.km_address(n)) for n in deployment.nodes if n not in nodes}
    remote = RemoteKMs(peers, context_for)
    served, devices, pairs = _devices(deployment, placement, options, loop.time,
                                      context_for)
    controller: Controller | None = None
    remote_router: RemoteRouter | None = None
    router: Router
    if options.local_controller:
        router = controller = Controller.for_network(network)
    else:
        router = remote_router = RemoteRouter(controller_url(deployment), context_for(nodes[0]))
    parts: dict[str, Any] = {
        "router": router, "remote": remote, "devices": devices, "device_pairs": pairs,
        "capacity_bytes_per_link": options.pool_capacity_bits // 8,
        "held_key_ttl_s": options.held_key_ttl_s}
    # domains of different operators: relays cross at their gateways through ETSI GS QKD
    # 020, whichever process hosts the source and the gateway. A gateway's two interop KMSs
    # are both in its process and talk only to each other: loopback, ports of the system's
    # choosing (docs/etsi-gs-qkd-020.md)
    keynet = BorderKeyNetwork(network, options.folder / "stores", nodes, pki,
                              host="127.0.0.1", **parts) \
        if domain_gateways(network) else \
        KeyNetwork(network, options.folder / "stores", nodes, **parts)
    try:
        keynet.supply.start(loop.time(), options.speedup, options.prefill_bits)
        keynet.supply.pump(loop.time())
        keynet.supply.checkpoint_all()
        keynet.resend_kept()  # messages of relays under way when this process last stopped
        revocation = RevocationWatch.of_pki(pki)
        audit = AuditLog(audit_file(options.folder))
        # the hardening of `qkdnet serve`'s listeners: connection limits per listener and
        # per address, one budget for the process, refused handshakes audited
        budget = ConnectionBudget()
        refusals = HandshakeRefusals(audit)

        def listener(app: Any, port: int, node: str) -> TlsServer:
            tls = server_ssl_context(pki.kme_cert(node), pki.kme_key(node), pki.ca_cert)
            return make_server(app, listen, port, tls, limits=KME_LIMITS, budget=budget,
                               on_handshake_refused=audited(tls, refusals, node))

        kme_counts = KmeCounts()  # every KME's answers, for the NMS's /metrics
        servers = {node: listener(make_kme_app(keynet, node, revocation=revocation,
                                               audit=audit, counts=kme_counts),
                                  placement.kme_port_of(node), node)
                   for node in nodes}
        km = listener(_by_path(make_km_app(keynet.receive, nodes), make_device_app(served)),
                      placement.km_port, nodes[0])
        budget.fit_below_file_limit()
        manifest = _manifest(deployment, placement, pki, listen)
        _write_json(options.folder / "manifest.json", manifest)
        lock.announce(f"node process {placement.id}")
        background = [asyncio.create_task(_pump(keynet, options.folder / FIGURES_FILE)),
                      asyncio.create_task(remote.watch(nodes[0]))]
        flown = [k for k in deployment.satellite_links
                 if {network.km_link[k].a, network.km_link[k].b} & set(nodes)]
        if flown:
            background.append(asyncio.create_task(_ask_satellite(keynet, flown)))
        reporters: list[RemoteReporter] = []
        if controller is not None:
            background.append(asyncio.create_task(_report(
                keynet, remote, controller, options.pool_capacity_bits)))
        else:
            assert remote_router is not None
            remote_router.start()
            for node in nodes:
                links = [km for km in network.km_links if node in (km.a, km.b)]
                reporter = RemoteReporter(
                    controller_url(deployment), node, context_for(node),
                    functools.partial(_node_states, keynet, remote, links, node),
                    interval_s=STATE_INTERVAL_S)
                reporter.start()
                reporters.append(reporter)
        pushers = _pushers(deployment, keynet, remote, remote_router, options, context_for,
                           kme_counts)
        for pusher in pushers:
            pusher.start()
        if isinstance(keynet, BorderKeyNetwork):
            await keynet.start_borders()
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([*servers.values(), km])
        finally:
            refusals.flush()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            for reporter in reporters:
                await reporter.close()
            for pusher in pushers:
                await pusher.close()
            if isinstance(keynet, BorderKeyNetwork):
                await keynet.stop_borders()  # its last answers go out before the transport
            if remote_router is not None:
                await remote_router.close()
            await remote.close()
            for end in [*devices.values(), *(e for pair in pairs.values() for e in pair)]:
                if isinstance(end, HttpDeviceEnd):
                    await end.aclose()
    finally:
        keynet.close()


def _devices(deployment: Deployment, placement: ProcessPlacement,
             options: NodeOptions, now: Callable[[], float],
             context_for: Callable[[str], Any]
             ) -> tuple[dict[str, EmulatedDevice], dict[str, DeviceEnd],
                        dict[str, tuple[DeviceEnd, DeviceEnd]]]:
    """The emulated device pairs this process runs (its border KM-links' end a, when the
    deployment places no devices service), this process's device end of each border
    KM-link, and both device ends of each KM-link between two of its nodes with a vendor
    device pair."""
    network = deployment.network
    here = set(placement.nodes)
    served: dict[str, EmulatedDevice] = {}
    ends: dict[str, DeviceEnd] = {}
    pairs: dict[str, tuple[DeviceEnd, DeviceEnd]] = {
        km_link: (_vendor_end(vendor, True), _vendor_end(vendor, False))
        for km_link, vendor in deployment.vendor_devices.items()
        if {network.km_link[km_link].a, network.km_link[km_link].b} <= here}
    for km_link in deployment.satellite_links:
        # the devices service flies the satellite: each end's KM is its ETSI 014 client
        km = network.km_link[km_link]
        url = device_url(deployment, km.id)
        sat_ends = {n: HttpDeviceEnd(url, context_for(n), other, DEVICE_KEY_BYTES)
                    for n, other in ((km.a, km.b), (km.b, km.a)) if n in here}
        if len(sat_ends) == 2:
            pairs[km.id] = (sat_ends[km.a], sat_ends[km.b])
        elif sat_ends:
            (ends[km.id],) = sat_ends.values()
    for km_link in deployment.border_links:
        km = network.km_link[km_link]
        if (km.a in here) == (km.b in here):
            continue
        node, other = (km.a, km.b) if km.a in here else (km.b, km.a)
        vendor = deployment.vendor_devices.get(km.id)
        if vendor is not None:
            ends[km.id] = _vendor_end(vendor, node == km.a)
        elif deployment.devices is not None:
            ends[km.id] = HttpDeviceEnd(device_url(deployment, km.id), context_for(node),
                                        other, DEVICE_KEY_BYTES)
        elif km.a in here:
            link = network.link[km.path[0]]
            emulator = emulator_for_link(link, km.id, random_bytes=secrets.token_bytes,
                                         block_bytes=DEVICE_KEY_BYTES,
                                         speedup=options.speedup, start=now())
            device = served[km.id] = EmulatedDevice(km.id, (km.a, km.b), emulator, now)
            ends[km.id] = device.end(km.a)
        else:
            url = _url(*deployment.km_address(km.a)) + DEVICE_PREFIX + km.id
            ends[km.id] = HttpDeviceEnd(url, context_for(km.b), km.a, DEVICE_KEY_BYTES)
    return served, ends, pairs


def _vendor_end(vendor: VendorDevice, end_a: bool) -> HttpDeviceEnd:
    """The KM's client of its end (``a``, or ``b``) of a vendor device pair."""
    end = vendor.end(end_a)
    return HttpDeviceEnd(end.url, tls_context(end.cert, end.key, end.ca), end.peer_sae_id,
                         vendor.key_bits // 8)


def _by_path(km: App, devices: App) -> App:
    """One listener for KM-to-KM and for the device ends this process serves."""
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope["path"].startswith(DEVICE_PREFIX):
            await devices(scope, receive, send)
        else:
            await km(scope, receive, send)
    return app


async def _pump(keynet: KeyNetwork, figures: Path) -> None:
    """Fill the pools of the process's own KM-links, run the border supply, forget the KM
    messages other processes have acknowledged; every EXPIRE_INTERVAL_S erase held keys
    past their TTL and old message ids, and write the border supply's figures to
    ``figures``. A failing step is logged once while it repeats, and the others go on."""
    loop = asyncio.get_running_loop()
    expired = loop.time()
    pumping, bordering = StepGuard("key supply"), StepGuard("border key supply")
    forgetting = StepGuard("forgetting acknowledged KM messages")
    expiring = StepGuard("expiry of held keys")
    pruning = StepGuard("forgetting old KM message ids")
    telling = StepGuard("writing the border supply's figures")
    while True:
        await asyncio.sleep(PUMP_INTERVAL_S)
        pumping.run(functools.partial(keynet.supply.pump, loop.time(), PUMP_BUDGET_S))
        if keynet.border is not None:
            await bordering.run_async(keynet.border.step(loop.time()))
        forgetting.run(keynet.forget_settled)
        if loop.time() - expired >= EXPIRE_INTERVAL_S:
            expired = loop.time()
            expiring.run(keynet.expire_held)
            pruning.run(keynet.forget_received)
            if keynet.border is not None:
                telling.run(functools.partial(write_figures, figures, keynet.border))


async def _report(keynet: KeyNetwork, remote: RemoteKMs, controller: Controller,
                  nominal_bits: float) -> None:
    """Report the KM-link states to the process's controller every STATE_INTERVAL_S."""
    loop = asyncio.get_running_loop()
    reporting = StepGuard("report to the controller")

    def report() -> None:
        states = link_states(keynet, remote.down_nodes(loop.time()), nominal_bits)
        for change in controller.report(states):
            log.info("demand %s: %s", change.demand, change.reason)

    while True:
        await asyncio.sleep(STATE_INTERVAL_S)
        reporting.run(report)


def _node_states(keynet: KeyNetwork, remote: RemoteKMs, links: Sequence[KMLink],
                 node: str) -> list[KMLinkState]:
    """What ``node`` reports to the controller service of its KM-links ``links``: one the
    supply pump fills as it reports it, another by its pools (:func:`_pool_state`); down
    where the other end's process is silent."""
    down = remote.down_nodes(asyncio.get_running_loop().time())
    states = []
    for km in links:
        state = keynet.supply.link_state(km.id)
        if state is None:
            state = _pool_state(keynet, km, km.a not in down and km.b not in down)
        states.append(state)
    return states


def _pool_state(keynet: KeyNetwork, km: KMLink, up: bool) -> KMLinkState:
    """A KM-link the supply pump does not fill, by its pools here: both ends' (the tighter
    outbound pool) when both are here (a vendor device pair), else this end's outbound;
    a satellite KM-link's with what the satellite's pools can still relay (as its device
    last said), which the control layer prices it by."""
    if km.a in keynet.stores and km.b in keynet.stores:
        state = km_link_state(km.id, keynet.stores[km.a], keynet.stores[km.b], 0.0, up)
    else:
        end = keynet.stores[km.a] if km.a in keynet.stores else keynet.stores[km.b]
        state = KMLinkState(km.id, 8.0 * end.pool_bytes(km.id, True), 0.0, up)
    if km.kind is KMLinkKind.SATELLITE and keynet.border is not None:
        state = replace(state, key_bits=state.key_bits + keynet.border.ready_bits.get(km.id,
                                                                                     0.0))
    return state


async def _ask_satellite(keynet: KeyNetwork, links: Sequence[str]) -> None:
    """Every STATE_INTERVAL_S, how much key the satellite can relay on each satellite
    KM-link with an end here (its device's Get status)."""
    asking = StepGuard("status of the satellite KM-links' devices")
    while True:
        assert keynet.border is not None
        await asking.run_async(keynet.border.ask_ready(links))
        await asyncio.sleep(STATE_INTERVAL_S)


def _pushers(deployment: Deployment, keynet: KeyNetwork, remote: RemoteKMs,
             router: RemoteRouter | None, options: NodeOptions,
             context_for: Callable[[str], Any], kme_counts: KmeCounts
             ) -> list[TelemetryPusher]:
    """A pusher to its region's EMS for each node of the process whose region has one."""
    network = keynet.network
    telemetry = NodeTelemetry(keynet, remote, router, options.speedup, kme_counts)
    out = []
    for node in keynet.stores:
        try:
            ems = deployment.ems_address(network.node[node].region)
        except KeyError:
            continue  # a region without an EMS (a scenario that declares no regions)
        out.append(TelemetryPusher(service_url(*ems), node, context_for(node),
                                   functools.partial(telemetry.record, node),
                                   interval_s=STATE_INTERVAL_S))
    return out


class NodeTelemetry:
    """What the nodes of a process tell their EMS (:meth:`record`): each node's QKD-links
    at their modelled rates (times ``speedup``, bit/s) and intrinsic QBER (a cut link makes
    no key and measures nothing), its ends of its KM-links (down where the other end's
    process is silent), its KM's and key store's health, and whether its routes are stale;
    what its KME counted (``kme_counts``: the process's, of which the node's share) and of
    each SAE pair of its SAEs, with the pair's routes where it is the master's node
    (:mod:`qkdnet.management.reported_counts`). Each node's links are found once: a region
    process has up to ~80 nodes, each pushing every second."""

    def __init__(self, keynet: KeyNetwork, remote: RemoteKMs, router: RemoteRouter | None,
                 speedup: float, kme_counts: KmeCounts | None = None) -> None:
        self.keynet, self.remote, self.router = keynet, remote, router
        self.kme_counts = KmeCounts() if kme_counts is None else kme_counts
        self._routes = RouteMemory()
        network = keynet.network
        links = network.qkd_links
        rates = (links_skr_bps(links)[:, 0] * speedup).tolist()
        qber = intrinsic_qber(links).tolist()
        here = set(keynet.stores)
        self._links: dict[str, list[tuple[str, float, float]]] = {n: [] for n in here}
        for link, rate, q in zip(links, rates, qber, strict=True):
            for end in {link.a, link.b} & here:
                self._links[end].append((link.id, rate, q))
        self._km_links: dict[str, list[KMLink]] = {n: [] for n in here}
        for km in network.km_links:
            for end in {km.a, km.b} & here:
                self._km_links[end].append(km)

    def record(self, node: str) -> NodeRecord:
        """``node``'s record now."""
        faults = self.keynet.faults
        down, blinded = faults.down_links(), faults.blinded_links
        links = tuple(LinkEnd(link, 0.0 if link in down else rate,
                              float("nan") if link in down else q, link not in down,
                              link in blinded)
                      for link, rate, q in self._links[node])
        kms = tuple(KMLinkEnd(s.km_link, s.key_bits, s.rate_bps, s.up)
                    for s in _node_states(self.keynet, self.remote, self._km_links[node], node))
        return NodeRecord(node, time.time(), node not in faults.stopped_nodes,
                          self.keynet.supply.store_fault(node) is None,
                          self.router is not None and self.router.stale, links, kms,
                          kme_share(self.kme_counts, node), self._services(node))

    def _services(self, node: str) -> tuple[ServiceEnd, ...]:
        """What ``node``'s KME counted of each SAE pair it serves an end of, and the routes
        of those whose master SAE is at it."""
        out = []
        for (master, slave), counts in list(self.keynet.requests.pairs.items()):
            source, target = self.keynet.sae_node(master), self.keynet.sae_node(slave)
            if node not in (source, target) or source is None or target is None:
                continue
            routes = self._service_routes(source, target) if node == source else None
            out.append(ServiceEnd(master, slave, pair_share(counts, node == source,
                                                            node == target), routes))
        return tuple(out)

    def _service_routes(self, source: str, target: str) -> ServiceRoutes | None:
        """The routes of the demand ``source->target`` as this process's router knows them;
        None before the controller service has answered for it."""
        demand = f"{source}->{target}"
        router = self.keynet.router
        if source == target:
            return ServiceRoutes(source, target, Route((source,), ()))
        if isinstance(router, Controller):
            return ServiceRoutes(source, target, router.active(demand),
                                 router.planned(demand))
        # asking the remote router as a relay would keeps the pair's route refreshed while
        # the service is reported, so an idle service is not taken for one without a route
        try:
            self._routes.given(demand, router.route(source, target))
        except NoRoute as exc:
            if not str(exc).endswith(ASKING):
                self._routes.given(demand, None)
        if not self._routes.known(demand):
            return None
        return ServiceRoutes(source, target, self._routes.active(demand),
                             self._routes.planned(demand))


def link_states(keynet: KeyNetwork, down: set[str], nominal_bits: float | None
                ) -> list[KMLinkState]:
    """What this process knows of every KM-link: its own as the supply pump reports them or
    by their pools (:func:`_pool_state`), a KM-link between other processes as
    ``nominal_bits`` of key (None: not at all); down when an end is in ``down`` (a process
    not heard from)."""
    states = {s.km_link: s for s in keynet.supply.link_states()}
    for km in keynet.network.km_links:
        if km.id in states:
            continue
        up = km.a not in down and km.b not in down
        if km.a in keynet.stores or km.b in keynet.stores:
            states[km.id] = _pool_state(keynet, km, up)
        elif nominal_bits is not None:
            states[km.id] = KMLinkState(km.id, nominal_bits, 0.0, up)
    return list(states.values())


def _manifest(deployment: Deployment, placement: ProcessPlacement, pki: Pki,
              listen: str) -> dict[str, Any]:
    address = deployment.host(placement.host).address
    here = set(placement.nodes)
    return {
        "scenario": deployment.network.name,
        "process": placement.id,
        "pid": os.getpid(),
        "ca": str(pki.ca_cert),
        "km_url": _url(address, placement.km_port),
        "kmes": {n: {"url": deployment.kme_url(n), "port": placement.kme_port_of(n),
                     "cert": str(pki.kme_cert(n)), "key": str(pki.kme_key(n))}
                 for n in placement.nodes},
        "saes": {s.id: {"node": s.node, "kme_url": deployment.kme_url(s.node),
                        **({"cert": str(pki.sae_cert(s.id)), "key": str(pki.sae_key(s.id))}
                           if s.id in pki.sae_ids else {})}
                 for s in deployment.network.saes if s.node in here},
        "listen": listen,
    }


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers never see half a manifest."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
