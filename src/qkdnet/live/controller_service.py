"""The Level-1/Level-2 controllers of a network as a service: an ASGI app, served over
mutual TLS (:func:`~qkdnet.live.tls_server.make_server`), hosting one
:class:`~qkdnet.control.controller.Controller` that node processes report their KM-links'
state to and ask relay routes of.

Every caller presents a node certificate from the network's CA (``kme-id:<node>``); one
naming no node is refused with 401, one naming a node outside the network with 403.

``POST /control/v1/reports``
    ``{"node": N, "states": [{"km_link", "key_bits", "rate_bps", "up"}, ...]}``: the state
    of KM-links of node N (key in bits, refill in bit/s), as its KM sees its end. N must be
    the node the client certificate names, and an end of every KM-link it reports (403
    otherwise). The controller routes with the two ends' reports combined as
    :func:`~qkdnet.keys.link_state.km_link_state` combines the two pools: the tighter end's
    key and refill, up only while neither end reports it down. Answers ``{"accepted": n,
    "route_changes": m}``.
``POST /control/v1/routes``
    ``{"source": S, "destination": D}`` (node ids): 200 ``{"source", "destination",
    "nodes", "km_links", "cost"}``, the demand's active route (:meth:`Controller.route`:
    declared at its first request, then switched by the protection rules); 503
    ``{"message", "reason"}`` when it has none.
``GET /control/v1/health``
    ``{"status": "ok", "network", "reports", "nodes_reporting", "demands"}`` (reports
    taken since start, nodes that sent one, node pairs routes were asked for).

A malformed body is refused with 400 and a message naming the field
(``states[2].key_bits: must be a number >= 0``). The service keeps nothing on disk: a
restarted one knows no KM-link state (it routes as if every KM-link were up and plain,
the control layer's rule for KM-links nobody reported on) until the nodes' next reports,
which they send every interval anyway.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from qkdnet.control.controller import Controller
from qkdnet.errors import NoRoute
from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.link_state import KMLinkState
from qkdnet.live.request_limits import MAX_BODY_BYTES, BodyLimit
from qkdnet.live.service_calls import endpoint, json_body, respond
from qkdnet.live.tls_server import calling_kme
from qkdnet.topology.model import Network

__all__ = [
    "HEALTH_PATH",
    "REPORTS_PATH",
    "ROUTES_PATH",
    "ControllerService",
    "make_controller_app",
    "parse_report",
    "parse_route_request",
]

log = logging.getLogger("qkdnet.control")

REPORTS_PATH = "/control/v1/reports"
ROUTES_PATH = "/control/v1/routes"
HEALTH_PATH = "/control/v1/health"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_STATE_FIELDS = frozenset({"km_link", "key_bits", "rate_bps", "up"})
_ENDPOINTS = {REPORTS_PATH: "POST", ROUTES_PATH: "POST", HEALTH_PATH: "GET"}


def _object(value: Any, where: str, fields: frozenset[str],
            required: frozenset[str]) -> Mapping[str, Any]:
    """``value`` as a JSON object with only ``fields`` and every one of ``required``
    (``where``: its path in the body, "" for the body itself); ApiError 400 naming the
    field otherwise."""
    prefix = f"{where}." if where else ""
    if not isinstance(value, dict):
        raise ApiError(400, f"{where or 'body'}: must be a JSON object")
    for name in value:
        if name not in fields:
            raise ApiError(400, f"{prefix}{name}: unknown field")
    for name in sorted(required - value.keys()):
        raise ApiError(400, f"{prefix}{name}: missing")
    return value


def _node_id(value: Any, field: str, network: Network) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{field}: must be a node id (a non-empty string)")
    if value not in network.node:
        raise ApiError(400, f"{field}: unknown node {value!r}")
    return value


def _amount(value: Any, field: str, unit: str) -> float:
    # bool is an int to Python, never an amount to a client
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{field}: must be a number >= 0 ({unit})")
    return float(value)


def parse_report(document: Any, network: Network) -> tuple[str, list[KMLinkState]]:
    """The reporting node and its states from a report body; ApiError 400 naming the
    field when malformed (an unknown KM-link, one reported twice included)."""
    body = _object(document, "", frozenset({"node", "states"}),
                   frozenset({"node", "states"}))
    node = _node_id(body["node"], "node", network)
    raw = body["states"]
    if not isinstance(raw, list):
        raise ApiError(400, "states: must be a list")
    states: list[KMLinkState] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"states[{i}]"
        fields = _object(item, where, _STATE_FIELDS, _STATE_FIELDS)
        km_link = fields["km_link"]
        if not isinstance(km_link, str) or km_link not in network.km_link:
            raise ApiError(400, f"{where}.km_link: unknown KM-link {km_link!r}")
        if km_link in seen:
            raise ApiError(400, f"{where}.km_link: {km_link!r} reported twice")
        seen.add(km_link)
        if not isinstance(fields["up"], bool):
            raise ApiError(400, f"{where}.up: must be true or false")
        states.append(KMLinkState(km_link, _amount(fields["key_bits"], f"{where}.key_bits",
                                                   "bits"),
                                  _amount(fields["rate_bps"], f"{where}.rate_bps", "bit/s"),
                                  fields["up"]))
    return node, states


def parse_route_request(document: Any, network: Network) -> tuple[str, str]:
    """(source, destination) of a route request; ApiError 400 naming the field."""
    pair = frozenset({"source", "destination"})
    body = _object(document, "", pair, pair)
    return (_node_id(body["source"], "source", network),
            _node_id(body["destination"], "destination", network))


class ControllerService:
    """The controller of ``network`` behind the protocol of the module docstring."""

    def __init__(self, network: Network, controller: Controller | None = None) -> None:
        self.network = network
        self.controller = controller or Controller.for_network(network)
        #: KM-link -> reporting end -> its last report.
        self._ends: dict[str, dict[str, KMLinkState]] = {}
        #: Reports taken since start, and the (source, destination) pairs asked for.
        self.reports = 0
        self._asked: set[tuple[str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, self._handle(scope, receive), "controller service")

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        path = endpoint(scope, _ENDPOINTS)
        peer = self._peer(scope)
        if path == HEALTH_PATH:
            return 200, self.health()
        document = await json_body(receive)
        if path == REPORTS_PATH:
            node, states = parse_report(document, self.network)
            return 200, self.report(peer, node, states)
        source, destination = parse_route_request(document, self.network)
        return self.route(source, destination)

    def _peer(self, scope: Scope) -> str:
        """The node the client certificate names: 401 if it names none, 403 if that node
        is not in the network."""
        node = calling_kme(scope)
        if node is None:
            raise ApiError(401, "the client certificate names no node (kme-id: URI)")
        if node not in self.network.node:
            raise ApiError(403, f"the client certificate names {node!r}, not a node of "
                                f"network {self.network.name!r}")
        return node

    def report(self, peer: str, node: str, states: list[KMLinkState]) -> dict[str, Any]:
        """Take node ``node``'s report sent by ``peer`` (the certificate's node): 403 unless
        they are one node and it is an end of every KM-link reported; nothing is taken
        from a refused report."""
        if node != peer:
            raise ApiError(403, f"node: the client certificate names node {peer!r}, the "
                                f"report is of {node!r}")
        for i, state in enumerate(states):
            link = self.network.km_link[state.km_link]
            if node not in (link.a, link.b):
                raise ApiError(403, f"states[{i}].km_link: node {node!r} is not an end of "
                                    f"KM-link {state.km_link!r}")
        combined = []
        for state in states:
            ends = self._ends.setdefault(state.km_link, {})
            ends[node] = state
            combined.append(_combine(state.km_link, ends.values()))
        changes = self.controller.report(combined)
        for change in changes:
            log.info("route %s: %s", change.demand, change.reason)
        self.reports += 1
        return {"accepted": len(states), "route_changes": len(changes)}

    def route(self, source: str, destination: str) -> tuple[int, dict[str, Any]]:
        """The active route between two nodes (200), or 503 with the reason."""
        self._asked.add((source, destination))
        try:
            route = self.controller.route(source, destination)
        except NoRoute as exc:
            return 503, {"message": str(exc), "reason": "no usable route now"}
        return 200, {"source": source, "destination": destination,
                     "nodes": list(route.nodes), "km_links": list(route.km_links),
                     "cost": route.cost}

    def health(self) -> dict[str, Any]:
        """What the service knows, in counts."""
        reporting = {n for ends in self._ends.values() for n in ends}
        return {"status": "ok", "network": self.network.name, "reports": self.reports,
                "nodes_reporting": len(reporting),
                "demands": len(self._asked)}


def _combine(km_link: str, ends: Iterable[KMLinkState]) -> KMLinkState:
    """One KM-link's state from its ends' last reports: the tighter end's key (bits) and
    refill (bit/s), up only while no end reports it down."""
    states = list(ends)
    return KMLinkState(km_link, min(s.key_bits for s in states),
                       min(s.rate_bps for s in states), all(s.up for s in states))


def make_controller_app(service: ControllerService,
                        max_body_bytes: int = MAX_BODY_BYTES) -> BodyLimit:
    """``service`` (``ControllerService(network)``) behind the body cap (bytes): serve it
    with :func:`~qkdnet.live.tls_server.make_server` and a
    :func:`~qkdnet.live.tls_server.server_ssl_context`."""
    return BodyLimit(service, max_bytes=max_body_bytes)
