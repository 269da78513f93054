"""``qkdnet serve``: the KMEs of a scenario on loopback, in one process.

Every served node gets its Key Manager, its own SQLite key store and its own KME on its own
port (ETSI GS QKD 014 over mutual TLS); emulators fill the KM-link pools at the modelled
key rates. A manifest JSON tells applications where everything is::

    {"scenario": ..., "ca": "<pki>/ca.crt", "pid": 1234,
     "kmes": {"<node>": {"url": "https://127.0.0.1:<port>", "port": <port>,
                          "cert": ..., "key": ..., "store": ...}},
     "saes": {"<sae>": {"node": "<node>", "kme_url": ..., "cert": ..., "key": ...}}}

The data folder keeps the stores and the PKI, so a restart resumes where it stopped. One
process serves a folder at a time (:mod:`qkdnet.live.data_lock`); the manifest is removed
when it stops.

PKI: the KMEs need ``DIR/pki/ca.crt``, their ``kme/`` pairs and, once something is revoked,
``crl.pem`` (re-read on change); never ``ca.key``. Deploy a PKI made by ``qkdnet pki init``
elsewhere without its ``ca.key``. For trying it out, ``serve`` on a data folder without a
PKI makes one, but in the folder ``DIR-ca`` beside the data folder (reused if it holds one),
and copies all of it but ``ca.key`` into ``DIR/pki``; it logs where the CA key went.
Revoke with ``qkdnet pki revoke SAE --dir DIR-ca --copy-to DIR/pki/crl.pem``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from qkdnet.control.controller import Controller
from qkdnet.errors import ParameterError
from qkdnet.keys.domain_border import interop_kms_ids
from qkdnet.live.audit import AuditLog, audit_file
from qkdnet.live.connection_limits import ConnectionBudget, ListenerLimits, raise_file_limit
from qkdnet.live.data_folder import open_data_folder
from qkdnet.live.data_lock import FolderLock
from qkdnet.live.dynamics import LiveDynamics
from qkdnet.live.handshake_audit import HandshakeRefusals, name_refused_certificates
from qkdnet.live.interop_relay import BorderKeyNetwork
from qkdnet.live.keynet import (
    DEFAULT_CAPACITY_BYTES,
    DEFAULT_HELD_KEY_TTL_S,
    KeyNetwork,
    served_nodes,
)
from qkdnet.live.kme_app import make_kme_app
from qkdnet.live.om_access import OmGate, OperatorAccess, is_loopback, served_names
from qkdnet.live.om_app import make_om_app
from qkdnet.live.pki import Pki, copy_public_pki, init_pki, load_pki, names_not_certified
from qkdnet.live.reports import LiveReports
from qkdnet.live.revocation import RevocationWatch
from qkdnet.live.runtime import loop_name
from qkdnet.live.satellite_state import STATE_FILE, SatelliteState
from qkdnet.live.satellite_supply import (
    DEFAULT_START,
    SatelliteSettings,
    SatelliteSupply,
    check_clouded,
    satellites_of,
)
from qkdnet.live.step_guard import StepGuard
from qkdnet.live.tls_server import (
    TlsServer,
    make_server,
    om_ssl_context,
    serve_many,
    server_ssl_context,
)
from qkdnet.management.monitor import NetworkMonitor
from qkdnet.topology.model import Network
from qkdnet.twin.satellite_passes import TWIN_EPOCH

log = logging.getLogger(__name__)

PUMP_INTERVAL_S = 0.05
#: CPU time one pump may take before it yields to the KMEs (s), while they deliver keys.
PUMP_BUDGET_S = 0.005
#: The same while no KME delivered a key since the last pump: the loop has nothing else
#: to do, so a filling network gets most of a core (a request that comes meanwhile waits
#: at most this long once; the next pump is back to PUMP_BUDGET_S).
PUMP_IDLE_BUDGET_S = 0.03
#: How often KM-link state reaches the control layer (s).
STATE_INTERVAL_S = 1.0
#: Connections one KME takes at once, in all and from one client address.
KME_LIMITS = ListenerLimits(max_connections=1024, max_per_address=256)
#: Connections the O&M port takes at once: a few browsers, Prometheus, scripts.
OM_LIMITS = ListenerLimits(max_connections=256, max_per_address=64)
#: How often held keys past their TTL are erased (s).
EXPIRE_INTERVAL_S = 1.0
#: How often the keys delivered are summed up in one log line, if any were (s).
SUMMARY_INTERVAL_S = 60.0


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: where the data lives, how fast key is made, which address to use."""

    folder: Path
    host: str = "127.0.0.1"
    speedup: float = 1.0
    prefill_bits: int = 0
    all_nodes: bool = False
    manifest: Path | None = None
    pool_capacity_bits: int = DEFAULT_CAPACITY_BYTES * 8
    om_port: int = 0
    dynamics: bool = True  # link rates follow the day-night drift and bursts of extra QBER
    seed: int = 1  # of the dynamics
    idle_timeout_s: int = 30  # before a connection's first request or between requests
    held_key_ttl_s: float = DEFAULT_HELD_KEY_TTL_S  # an unfetched held key is erased after
    allow_cn_identity: bool = False  # accept client certificates naming their SAE by CN only
    advertise: str | None = None  # host name clients use for the KMEs (DNS SAN, URLs)
    satellite_prefill_bits: float = 0.0  # key each satellite pool starts with (bits)
    satellite_pool_bits: float = 1e7  # most key a satellite pool holds (bits)
    satellite_start: datetime = DEFAULT_START  # the satellite clock's 0 (UTC)
    satellite_clouded: tuple[str, ...] = ()  # ground stations whose passes yield nothing

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise ParameterError("--speedup", self.speedup, "must be > 0")
        if self.prefill_bits < 0:
            raise ParameterError("--prefill-bits", self.prefill_bits, "must be >= 0")
        if self.pool_capacity_bits < 2**13:
            raise ParameterError("--pool-capacity-bits", self.pool_capacity_bits,
                                 "must be at least 8192 (one key block)")
        if not 0 < self.held_key_ttl_s < float("inf"):
            raise ParameterError("--held-key-ttl", self.held_key_ttl_s, "seconds, > 0")
        if not 0 <= self.om_port <= 65535:
            raise ParameterError("--om-port", self.om_port, "a TCP port, 0 to 65535")
        if self.idle_timeout_s < 1:
            raise ParameterError("--idle-timeout", self.idle_timeout_s, "must be >= 1 s")
        SatelliteSettings(self.satellite_prefill_bits, self.satellite_pool_bits,
                          self.satellite_start, self.satellite_clouded)  # checks them


def utc_time(option: str, text: str) -> datetime:
    """``text`` (ISO 8601 with a UTC offset or Z) as an aware time; ParameterError naming
    ``option`` otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ParameterError(option, text, "an ISO 8601 time with its UTC offset, "
                             "e.g. 2025-01-01T12:00:00Z")
    return when


def pki_for(network: Network, folder: Path, all_nodes: bool = False,
            kme_names: tuple[str, ...] = ()) -> Pki:
    """The PKI under ``folder`` (``DIR/pki``); if there is none, one made for the network's
    KMEs (naming ``kme_names`` too) and SAEs in ``DIR-ca`` beside the data folder ``DIR``,
    copied into ``folder`` without ``ca.key``."""
    if (folder / "ca.crt").exists():
        return load_pki(folder)
    data = folder.resolve().parent
    ca_folder = data.with_name(data.name + "-ca")
    if (ca_folder / "ca.crt").exists():
        ca = load_pki(ca_folder)
    else:
        nodes = served_nodes(network, all_nodes)
        ca = init_pki(ca_folder, [*nodes, *interop_kms_ids(network, nodes)],
                      [s.id for s in network.saes], kme_names=kme_names)
    log.warning("made the PKI in %s; its CA key %s stays there, outside the data folder "
                "(move it off this machine)", ca_folder, ca.ca_key)
    return copy_public_pki(ca, folder)


async def serve(network: Network, options: ServeOptions,
                ready: Callable[[dict[str, Any]], None] | None = None,
                progress: Callable[[str], None] | None = None) -> None:
    """Serve until cancelled; ``ready`` gets the manifest once every KME listens,
    ``progress`` a line at each stage of a start (a large network takes tens of seconds).

    The data folder is locked first (FolderInUse if another process serves it), and the
    address and O&M port checked before any certificate or store is made; the manifest is
    removed on exit.
    """
    say = progress or (lambda _line: None)
    check_clouded(network, options.satellite_clouded)
    open_data_folder(options.folder)  # before anything in it is created or opened
    raise_file_limit()
    lock = FolderLock.acquire(options.folder)
    manifest_path = options.manifest or options.folder / "manifest.json"
    try:
        _check_listen(options.host, options.om_port)
        await _serve_locked(network, options, lock, manifest_path, ready, say)
    finally:
        _remove_manifest(manifest_path)
        lock.release()


async def _serve_locked(network: Network, options: ServeOptions, lock: FolderLock,
                        manifest_path: Path, ready: Callable[[dict[str, Any]], None] | None,
                        say: Callable[[str], None]) -> None:
    nodes = served_nodes(network, options.all_nodes)
    if not (options.folder / "pki" / "ca.crt").exists():
        say(f"making certificates for {len(nodes)} KMEs and {len(network.saes)} SAEs...")
    names = (options.host, options.advertise) if options.advertise else (options.host,)
    pki = pki_for(network, options.folder / "pki", options.all_nodes, names)
    revocation = RevocationWatch.of_pki(pki)
    for node in nodes[:1]:  # one PKI made them all: the first tells
        if missing := names_not_certified(pki.kme_cert(node), names):
            log.warning("the KME certificates in %s do not name %s: remote clients that "
                        "verify host names will refuse them (`qkdnet pki init --kme-name`)",
                        pki.folder, ", ".join(missing))
    router = Controller.for_network(network)
    say(f"building {len(nodes)} key stores...")
    sizes: dict[str, Any] = {"capacity_bytes_per_link": options.pool_capacity_bits // 8,
                             "held_key_ttl_s": options.held_key_ttl_s}
    # gateways between operators' domains: the relays cross there through ETSI GS QKD 020
    keynet = BorderKeyNetwork(network, options.folder / "stores", nodes, pki,
                              host=options.host, router=router, **sizes) \
        if interop_kms_ids(network, nodes) else \
        KeyNetwork(network, options.folder / "stores", nodes, router=router, **sizes)
    try:
        loop = asyncio.get_running_loop()
        log.info("event loop: %s", loop_name(loop))
        if options.prefill_bits:
            say(f"filling {len(network.km_links)} KM-links with {options.prefill_bits} bits...")
        keynet.supply.start(loop.time(), options.speedup, options.prefill_bits)
        keynet.satellite = _satellite_supply(network, keynet, options)
        if keynet.satellite is not None:
            keynet.satellite.start(loop.time(), options.satellite_prefill_bits)
            keynet.satellite.pump(loop.time())
            # a satellite KM-link nobody has reported on carries nothing (satellite_cost):
            # the first report's wait would refuse the SAEs behind it for a second
            router.report(keynet.satellite.link_states())
        keynet.supply.pump(loop.time())
        keynet.supply.checkpoint_all()
        servers: dict[str, TlsServer] = {}
        budget = ConnectionBudget()
        step = max(1, -(-len(nodes) // 4))  # a quarter, rounded up: 4 lines at most
        audit = AuditLog(audit_file(options.folder))
        refusals = HandshakeRefusals(audit)  # one rate limit for every KME's handshakes
        for i, n in enumerate(nodes, 1):
            tls = server_ssl_context(pki.kme_cert(n), pki.kme_key(n), pki.ca_cert)
            name_refused_certificates(tls)
            servers[n] = make_server(
                make_kme_app(keynet, n, allow_cn_identity=options.allow_cn_identity,
                             revocation=revocation, audit=audit), options.host, 0, tls,
                limits=KME_LIMITS, budget=budget, keep_alive_s=options.idle_timeout_s,
                on_handshake_refused=functools.partial(refusals.handshake_failed, n))
            if i % step == 0 or i == len(nodes):
                say(f"starting KMEs {i}/{len(nodes)}")
        dynamics = LiveDynamics(network.qkd_links, options.seed) if options.dynamics else None
        live = LiveReports(keynet, router, NetworkMonitor(network), options.speedup, dynamics)
        om_app, om_tls = _om_access(live, options, pki, nodes[0])
        om = make_server(om_app, options.host, options.om_port, om_tls, limits=OM_LIMITS,
                         budget=budget, keep_alive_s=options.idle_timeout_s)
        budget.fit_below_file_limit()
        manifest = _manifest(network, options, pki, servers)
        if isinstance(keynet, BorderKeyNetwork):
            await keynet.start_borders()
            manifest["interop_kms"] = {k: {"url": u, "cert": str(pki.kme_cert(k))}
                                       for k, u in keynet.urls.items()}
        scheme = "https" if om_tls is not None else "http"
        manifest["om_url"] = f"{scheme}://{options.advertise or options.host}:{om.port}"
        lock.announce(manifest["om_url"])
        _write_json(manifest_path, manifest)
        pump = asyncio.create_task(_pump(keynet, live))
        # what start-up built (the network, routes, stores, apps) lives as long as the
        # server: out of the collector's reach, a full collection walks a few thousand
        # objects instead of ~130,000 (a 90 ms pause every so often under load, measured)
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready(manifest)
        try:
            await serve_many([*servers.values(), om])
        finally:
            pump.cancel()
            refusals.flush()  # the counts of refusals not yet written
    finally:
        if isinstance(keynet, BorderKeyNetwork):
            await keynet.stop_borders()
        keynet.close()


def _satellite_supply(network: Network, keynet: KeyNetwork, options: ServeOptions
                      ) -> SatelliteSupply | None:
    """The satellite segment's passes and pools, where the served network has satellite
    KM-links between served ground stations."""
    satellites = satellites_of(network)
    if not satellites:
        return None
    supply = SatelliteSupply(network, keynet.stores, satellites, options.satellite_pool_bits,
                             options.satellite_start, options.speedup,
                             options.satellite_clouded)
    if not supply.km_links:
        return None
    # kept across restarts in the data folder (the clock resumes, the pools hold their key)
    supply.state = SatelliteState(options.folder / STATE_FILE, supply.start_utc.isoformat())
    log.info("satellite segment: %d satellite KM-links; satellite clock from %s at x%g",
             len(supply.km_links), supply.start_utc.isoformat(), options.speedup)
    return supply


def _om_access(live: LiveReports, options: ServeOptions, pki: Pki, node: str
               ) -> tuple[OmGate, ssl.SSLContext | None]:
    """The O&M app behind its operator gate, and its TLS context: HTTPS with a KME
    certificate of the network (it names the served address) whenever the port is not on
    loopback, so that passwords and session cookies never cross a network in clear."""
    access = OperatorAccess(options.folder)
    if not access.operators.list():
        log.warning("no O&M operators in %s: every O&M call but the console page and "
                    "/metrics answers 401; add one with `qkdnet operator add NAME --role "
                    "admin --dir %s`", access.operators.path, options.folder)
    satellite = live.keynet.satellite
    clock: Callable[[], float] | None = None  # the app's default: from its start
    if satellite is not None:
        # the console shows the satellite where the passes that fill its pools put it: s
        # after TWIN_EPOCH, the satellite clock started at --satellite-start
        offset_s = (satellite.start_utc - TWIN_EPOCH).total_seconds()
        loop, flying = asyncio.get_running_loop(), satellite

        def clock() -> float:
            return offset_s + flying.clock_s(loop.time())
    app = OmGate(make_om_app(live.monitor.nms, live.monitor.alarms, live=live,
                             satellite_clock=clock),
                 served_names(options.host, options.advertise), access)
    if is_loopback(options.host):
        return app, None
    return app, om_ssl_context(pki.kme_cert(node), pki.kme_key(node))


def _check_listen(host: str, port: int) -> None:
    """ParameterError naming ``--host`` or ``--om-port`` unless this process can listen on
    ``host`` (the KMEs take any free port there) and on ``host``:``port`` (0: any port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for option, value, address in (("--host", host, (host, 0)),
                                   ("--om-port", port, (host, port))):
        if option == "--om-port" and port == 0:
            continue
        try:
            socket.create_server(address, family=family).close()
        except OSError as exc:
            raise ParameterError(option, value, f"cannot listen on {host}:{address[1]} "
                                 f"({exc.strerror or exc})"
                                 + ("; choose a free port or 0" if address[1] else "")
                                 ) from None


def _remove_manifest(path: Path) -> None:
    """Remove the manifest if it is this process's: applications then see no server."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass  # none written, or not ours: nothing to remove


async def _pump(keynet: KeyNetwork, live: LiveReports) -> None:
    """Fill the pools, and report them to the control layer, the NMS and its alarm rules
    every STATE_INTERVAL_S; erase held keys past their TTL every EXPIRE_INTERVAL_S. No step
    can end the task: an error (a key store's, or any other) is logged once while it repeats
    and the others go on, so that the supply resumes and the NMS clock keeps moving once its
    cause is gone."""
    loop = asyncio.get_running_loop()
    reported = expired = summarised = loop.time()
    served = (keynet.keys_relayed, keynet.keys_released)  # keys delivered, for the budget
    pumping, reporting = StepGuard("key supply"), StepGuard("report to the NMS")
    expiring, summing = StepGuard("expiry of held keys"), StepGuard("delivery summary")
    passing = StepGuard("satellite passes")
    while True:
        await asyncio.sleep(PUMP_INTERVAL_S)
        now_served = (keynet.keys_relayed, keynet.keys_released)
        budget = PUMP_IDLE_BUDGET_S if now_served == served else PUMP_BUDGET_S
        served = now_served
        pumping.run(functools.partial(keynet.supply.pump, loop.time(), budget))
        passing.run(functools.partial(_pump_satellite, keynet, loop.time()))
        if loop.time() - expired >= EXPIRE_INTERVAL_S:
            expired = loop.time()
            expiring.run(keynet.expire_held)
        if loop.time() - reported >= STATE_INTERVAL_S:
            reported = loop.time()
            reporting.run(live.report_now)
        if loop.time() - summarised >= SUMMARY_INTERVAL_S:
            summarised = loop.time()
            summing.run(keynet.log_delivery_summary)


def _pump_satellite(keynet: KeyNetwork, now: float) -> None:
    """Move the satellite's passes to loop time ``now`` (s) and top up its KM-links' pads,
    where the network has a satellite segment."""
    if keynet.satellite is not None:
        keynet.satellite.pump(now)


def _manifest(network: Network, options: ServeOptions, pki: Pki,
              servers: dict[str, TlsServer]) -> dict[str, Any]:
    url = {n: f"https://{options.host}:{s.port}" for n, s in servers.items()}
    return {
        "scenario": network.name,
        "pid": os.getpid(),
        "ca": str(pki.ca_cert),
        "kmes": {n: {"url": url[n], "port": s.port, "cert": str(pki.kme_cert(n)),
                     "key": str(pki.kme_key(n)),
                     "store": str(options.folder / "stores" / f"{n}.sqlite")}
                 for n, s in servers.items()},
        "saes": {s.id: {"node": s.node, "kme_url": url.get(s.node), "cert": str(pki.sae_cert(s.id)),
                        "key": str(pki.sae_key(s.id))} for s in network.saes},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers never see half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
