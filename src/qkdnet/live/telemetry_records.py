"""One node's telemetry as it travels from a node process to its region's EMS and on to
the NMS: JSON, the records :class:`~qkdnet.live.reports.LiveReports` builds for the whole
network in ``qkdnet serve``, for one node.

A record::

    {"node": "b", "t": 1764900000.5, "ok": true, "store_ok": true, "stale_routes": false,
     "links": [{"link": "b~c", "skr_bps": 1.2e4, "qber": 0.011, "up": true,
                "detector_current_alarm": false}, ...],
     "km_links": [{"km_link": "km:b~c", "key_bits": 2.1e6, "rate_bps": 1.2e4,
                   "up": true}, ...]}

A record may also carry what the node's KME counted since its process started (all
counts cumulative; both fields optional, absent in records of earlier versions and taken
as nothing counted)::

     "kme": {"calls": [{"endpoint": "enc_keys", "sae": "sae-a", "code": 200,
                        "count": 12}, ...],
             "latency": [{"endpoint": "enc_keys", "buckets": [0, 3, ...], "sum_s": 0.02}],
             "refusals": [{"endpoint": "enc_keys", "cause": "no_route", "count": 1}]},
     "services": [{"master": "sae-a", "slave": "sae-d", "requests": 3, "refused": 1,
                   "keys_delivered": 2, "keys_lost": 1, "bits_delivered": 512,
                   "keys_asked_by_id": 0, "keys_not_released": 0,
                   "last_refusal": "no route from a to d", "delays_s": [0.004, 0.005],
                   "route": {"nodes": ["a", "b", "d"], "km_links": ["km:a~b", "km:b~d"]},
                   "planned": [{"nodes": [...], "km_links": [...]}]}, ...]

``kme`` is :class:`~qkdnet.management.kme_counts.KmeCounts` of the node's KME: calls by
endpoint, calling SAE and HTTP status; latency histograms by endpoint (counts per bucket
of :data:`~qkdnet.management.kme_counts.LATENCY_BUCKETS_S`, +Inf last, not cumulative;
their sum, s); 503s by cause. ``services`` are the SAE pairs the node's KME counted
(:class:`~qkdnet.management.services.PairCounts`: the master's node counts Get key, the
slave's Get key with key IDs; bits, and response delays in s, the last
:data:`~qkdnet.management.services.DELAYS_KEPT`); on the master's node, also the route
the pair's relays use now (``route``, null: the controller has none; absent: not asked
yet) and those it was planned on (``planned``: working, then the last other one).

``t`` is the node's wall clock (s since the epoch); ``links`` are the QKD-links the node
is an end of (SKR in bit/s, QBER a ratio or null where not measured), ``km_links`` the
KM-links it is an end of as its KM sees its end (key in its outbound pool, bits; refill,
bit/s), ``ok`` whether its KM is healthy, ``store_ok`` whether its key store can be
written, ``stale_routes`` whether it relays on the last routes of a controller it has
lost. :func:`parse_record` checks a record against the network and refuses a malformed
one with :class:`~qkdnet.keys.etsi014.ApiError` 400 naming the field
(``records[3].km_links[0].up: must be true or false``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.keys.route import Route
from qkdnet.management.kme_counts import CAUSES, LATENCY_BUCKETS_S, Histogram, KmeCounts
from qkdnet.management.services import DELAYS_KEPT, PairCounts, ServiceRoutes
from qkdnet.topology.model import Network

_RECORD = frozenset({"node", "t", "ok", "store_ok", "stale_routes", "links", "km_links",
                     "kme", "services"})
_RECORD_REQUIRED = frozenset({"node", "t", "ok", "links", "km_links"})
_LINK = frozenset({"link", "skr_bps", "qber", "up", "detector_current_alarm"})
_KM_LINK = frozenset({"km_link", "key_bits", "rate_bps", "up"})
_KME = frozenset({"calls", "latency", "refusals"})
_CALL = frozenset({"endpoint", "sae", "code", "count"})
_LATENCY = frozenset({"endpoint", "buckets", "sum_s"})
_REFUSAL = frozenset({"endpoint", "cause", "count"})
_COUNTS = ("requests", "refused", "keys_delivered", "keys_lost", "bits_delivered",
           "keys_asked_by_id", "keys_not_released")
_SERVICE = frozenset({"master", "slave", *_COUNTS, "last_refusal", "delays_s", "route",
                      "planned"})
_SERVICE_REQUIRED = frozenset({"master", "slave", *_COUNTS})
_ROUTE = frozenset({"nodes", "km_links"})
#: The ``endpoint`` values a KME counts (:func:`qkdnet.live.kme_app.make_kme_app`).
ENDPOINTS = frozenset({"status", "enc_keys", "dec_keys", "openapi", "other"})
#: Longest SAE id and refusal text a record may carry (characters).
_TEXT_MAX = 500


@dataclass(frozen=True, slots=True)
class LinkEnd:
    """A QKD-link as one of its ends reports it: SKR (bit/s), QBER (ratio, NaN: not
    measured), up, detector-current alarm."""

    link: str
    skr_bps: float
    qber: float
    up: bool
    detector_current_alarm: bool


@dataclass(frozen=True, slots=True)
class KMLinkEnd:
    """A KM-link as one of its ends reports it: key (bits), refill (bit/s), up."""

    km_link: str
    key_bits: float
    rate_bps: float
    up: bool


@dataclass(frozen=True)
class ServiceEnd:
    """What one node counted of the SAE pair ``master``->``slave`` (cumulative), and, from
    the master's node, the pair's routes (None: not reported)."""

    master: str
    slave: str
    counts: PairCounts
    routes: ServiceRoutes | None = None


@dataclass(frozen=True)
class NodeRecord:
    """One node's telemetry at its time ``t`` (s since the epoch), with what its KME
    counted (``kme``, ``services``; nothing in a record that carries none)."""

    node: str
    t: float
    ok: bool
    store_ok: bool
    stale_routes: bool
    links: tuple[LinkEnd, ...]
    km_links: tuple[KMLinkEnd, ...]
    kme: KmeCounts = field(default_factory=KmeCounts)
    services: tuple[ServiceEnd, ...] = ()

    def document(self) -> dict[str, Any]:
        """The record as JSON-ready data (a QBER not measured is null)."""
        return {"node": self.node, "t": self.t, "ok": self.ok, "store_ok": self.store_ok,
                "stale_routes": self.stale_routes,
                "links": [{"link": e.link, "skr_bps": e.skr_bps,
                           "qber": None if math.isnan(e.qber) else e.qber, "up": e.up,
                           "detector_current_alarm": e.detector_current_alarm}
                          for e in self.links],
                "km_links": [{"km_link": e.km_link, "key_bits": e.key_bits,
                              "rate_bps": e.rate_bps, "up": e.up} for e in self.km_links],
                **_kme_document(self.kme),
                **({"services": [_service_document(s) for s in self.services]}
                   if self.services else {})}


def _kme_document(kme: KmeCounts) -> dict[str, Any]:
    if not (kme.calls or kme.latency or kme.refused):
        return {}
    return {"kme": {
        "calls": [{"endpoint": e, "sae": sae, "code": code, "count": n}
                  for (_, e, sae, code), n in sorted(kme.calls.items())],
        "latency": [{"endpoint": e, "buckets": list(h.buckets), "sum_s": h.sum_s}
                    for (_, e), h in sorted(kme.latency.items())],
        "refusals": [{"endpoint": e, "cause": cause, "count": n}
                     for (_, e, cause), n in sorted(kme.refused.items())]}}


def _route_document(route: Route) -> dict[str, Any]:
    return {"nodes": list(route.nodes), "km_links": list(route.km_links)}


def _service_document(end: ServiceEnd) -> dict[str, Any]:
    c = end.counts
    out: dict[str, Any] = {
        "master": end.master, "slave": end.slave, **{name: getattr(c, name)
                                                     for name in _COUNTS},
        "last_refusal": c.last_refusal,
        # to the microsecond: a record stays small with DELAYS_KEPT delays in it
        "delays_s": [round(d, 6) for d in c.delays]}
    if end.routes is not None:
        active = end.routes.active
        out["route"] = None if active is None else _route_document(active)
        out["planned"] = [_route_document(r) for r in end.routes.planned]
    return out


def json_object(value: Any, where: str, fields: frozenset[str],
            required: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{where or 'body'}: must be a JSON object")
    prefix = f"{where}." if where else ""
    for name in value:
        if name not in fields:
            raise ApiError(400, f"{prefix}{name}: unknown field")
    for name in sorted(required - value.keys()):
        raise ApiError(400, f"{prefix}{name}: missing")
    return value


def json_flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{where}: must be true or false")
    return value


def json_amount(value: Any, where: str, unit: str, *, at_most: float = math.inf) -> float:
    # bool is an int to Python, never an amount to a client
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 <= value <= at_most:
        bound = f" and <= {at_most:g}" if math.isfinite(at_most) else ""
        raise ApiError(400, f"{where}: must be a number >= 0{bound} ({unit})")
    return float(value)


def json_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"{where}: must be a list")
    return value


def parse_record(document: Any, network: Network, where: str = "") -> NodeRecord:
    """The record of ``document`` (``where``: its path in the body, "" for the body
    itself); ApiError 400 naming the field when malformed: unknown fields, a node, QKD-link
    or KM-link the network lacks, one listed twice, a value out of range."""
    prefix = f"{where}." if where else ""
    body = json_object(document, where, _RECORD, _RECORD_REQUIRED)
    node = body["node"]
    if not isinstance(node, str) or node not in network.node:
        raise ApiError(400, f"{prefix}node: unknown node {node!r}")
    t = body["t"]
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise ApiError(400, f"{prefix}t: must be a finite time (s since the epoch)")
    links: list[LinkEnd] = []
    for i, item in enumerate(json_list(body["links"], f"{prefix}links")):
        at = f"{prefix}links[{i}]"
        fields = json_object(item, at, _LINK, _LINK)
        link = fields["link"]
        if not isinstance(link, str) or link not in network.link:
            raise ApiError(400, f"{at}.link: unknown QKD-link {link!r}")
        if any(e.link == link for e in links):
            raise ApiError(400, f"{at}.link: {link!r} listed twice")
        qber = fields["qber"]
        links.append(LinkEnd(
            link, json_amount(fields["skr_bps"], f"{at}.skr_bps", "bit/s"),
            math.nan if qber is None else json_amount(qber, f"{at}.qber", "a ratio, or null",
                                                  at_most=1.0),
            json_flag(fields["up"], f"{at}.up"),
            json_flag(fields["detector_current_alarm"], f"{at}.detector_current_alarm")))
    km_links: list[KMLinkEnd] = []
    for i, item in enumerate(json_list(body["km_links"], f"{prefix}km_links")):
        at = f"{prefix}km_links[{i}]"
        fields = json_object(item, at, _KM_LINK, _KM_LINK)
        km_link = fields["km_link"]
        if not isinstance(km_link, str) or km_link not in network.km_link:
            raise ApiError(400, f"{at}.km_link: unknown KM-link {km_link!r}")
        if any(e.km_link == km_link for e in km_links):
            raise ApiError(400, f"{at}.km_link: {km_link!r} listed twice")
        km_links.append(KMLinkEnd(km_link,
                                  json_amount(fields["key_bits"], f"{at}.key_bits", "bits"),
                                  json_amount(fields["rate_bps"], f"{at}.rate_bps", "bit/s"),
                                  json_flag(fields["up"], f"{at}.up")))
    return NodeRecord(node, float(t), json_flag(body["ok"], f"{prefix}ok"),
                      json_flag(body.get("store_ok", True), f"{prefix}store_ok"),
                      json_flag(body.get("stale_routes", False), f"{prefix}stale_routes"),
                      tuple(links), tuple(km_links),
                      _parse_kme(body["kme"], node, f"{prefix}kme") if "kme" in body
                      else KmeCounts(),
                      _parse_services(body["services"], network, f"{prefix}services")
                      if "services" in body else ())


def json_count(value: Any, where: str) -> int:
    """A count: an integer >= 0 (not a bool, not 2.0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"{where}: must be an integer >= 0 (a count)")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > _TEXT_MAX:
        raise ApiError(400, f"{where}: must be a string of at most {_TEXT_MAX} characters")
    return value


def _endpoint(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in ENDPOINTS:
        raise ApiError(400, f"{where}: must be one of {', '.join(sorted(ENDPOINTS))}")
    return value


def _parse_kme(document: Any, node: str, where: str) -> KmeCounts:
    """The KME counts of ``node`` in ``document``; each key once."""
    body = json_object(document, where, _KME, _KME)
    kme = KmeCounts()
    for i, item in enumerate(json_list(body["calls"], f"{where}.calls")):
        at = f"{where}.calls[{i}]"
        fields = json_object(item, at, _CALL, _CALL)
        code = fields["code"]
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ApiError(400, f"{at}.code: must be an HTTP status code (100 to 599)")
        key = (node, _endpoint(fields["endpoint"], f"{at}.endpoint"),
               _text(fields["sae"], f"{at}.sae"), code)
        if key in kme.calls:
            raise ApiError(400, f"{at}: endpoint, sae and code listed twice")
        kme.calls[key] = json_count(fields["count"], f"{at}.count")
    for i, item in enumerate(json_list(body["latency"], f"{where}.latency")):
        at = f"{where}.latency[{i}]"
        fields = json_object(item, at, _LATENCY, _LATENCY)
        endpoint = _endpoint(fields["endpoint"], f"{at}.endpoint")
        if (node, endpoint) in kme.latency:
            raise ApiError(400, f"{at}.endpoint: {endpoint!r} listed twice")
        buckets = json_list(fields["buckets"], f"{at}.buckets")
        if len(buckets) != len(LATENCY_BUCKETS_S) + 1:
            raise ApiError(400, f"{at}.buckets: must be {len(LATENCY_BUCKETS_S) + 1} counts "
                                "(one per bucket, +Inf last)")
        histogram = kme.latency[node, endpoint] = Histogram()
        histogram.buckets = [json_count(n, f"{at}.buckets[{k}]")
                             for k, n in enumerate(buckets)]
        histogram.sum_s = json_amount(fields["sum_s"], f"{at}.sum_s", "s")
    for i, item in enumerate(json_list(body["refusals"], f"{where}.refusals")):
        at = f"{where}.refusals[{i}]"
        fields = json_object(item, at, _REFUSAL, _REFUSAL)
        cause = fields["cause"]
        if not isinstance(cause, str) or cause not in CAUSES:
            raise ApiError(400, f"{at}.cause: must be one of {', '.join(CAUSES)}")
        refusal = (node, _endpoint(fields["endpoint"], f"{at}.endpoint"), cause)
        if refusal in kme.refused:
            raise ApiError(400, f"{at}: endpoint and cause listed twice")
        kme.refused[refusal] = json_count(fields["count"], f"{at}.count")
    return kme


def _parse_route(document: Any, network: Network, where: str) -> Route:
    fields = json_object(document, where, _ROUTE, _ROUTE)
    nodes = json_list(fields["nodes"], f"{where}.nodes")
    km_links = json_list(fields["km_links"], f"{where}.km_links")
    for k, node in enumerate(nodes):
        if not isinstance(node, str) or node not in network.node:
            raise ApiError(400, f"{where}.nodes[{k}]: unknown node {node!r}")
    for k, km_link in enumerate(km_links):
        if not isinstance(km_link, str) or km_link not in network.km_link:
            raise ApiError(400, f"{where}.km_links[{k}]: unknown KM-link {km_link!r}")
        km = network.km_link[km_link]
        if k + 1 < len(nodes) and {km.a, km.b} != {nodes[k], nodes[k + 1]}:
            raise ApiError(400, f"{where}.km_links[{k}]: {km_link!r} does not join "
                                f"{nodes[k]!r} and {nodes[k + 1]!r}")
    if not nodes or len(km_links) != len(nodes) - 1:
        raise ApiError(400, f"{where}: must have one KM-link fewer than nodes (at least one "
                            "node)")
    return Route(tuple(nodes), tuple(km_links))


def _parse_services(document: Any, network: Network, where: str) -> tuple[ServiceEnd, ...]:
    """The SAE pairs' counts and routes in ``document``; each pair once."""
    out: list[ServiceEnd] = []
    for i, item in enumerate(json_list(document, where)):
        at = f"{where}[{i}]"
        fields = json_object(item, at, _SERVICE, _SERVICE_REQUIRED)
        master, slave = fields["master"], fields["slave"]
        for name, sae in (("master", master), ("slave", slave)):
            if not isinstance(sae, str) or sae not in network.sae:
                raise ApiError(400, f"{at}.{name}: unknown SAE {sae!r}")
        if any(e.master == master and e.slave == slave for e in out):
            raise ApiError(400, f"{at}: SAE pair {master!r}->{slave!r} listed twice")
        counts = PairCounts()
        for name in _COUNTS:
            setattr(counts, name, json_count(fields[name], f"{at}.{name}"))
        counts.last_refusal = _text(fields.get("last_refusal", ""), f"{at}.last_refusal")
        delays = json_list(fields.get("delays_s", []), f"{at}.delays_s")
        if len(delays) > DELAYS_KEPT:
            raise ApiError(400, f"{at}.delays_s: at most {DELAYS_KEPT} delays")
        counts.delays.extend(json_amount(d, f"{at}.delays_s[{k}]", "s")
                             for k, d in enumerate(delays))
        routes = None
        if "route" in fields:
            route = fields["route"]
            active = None if route is None else _parse_route(route, network, f"{at}.route")
            planned = tuple(_parse_route(r, network, f"{at}.planned[{k}]") for k, r in
                            enumerate(json_list(fields.get("planned", []), f"{at}.planned")))
            routes = ServiceRoutes(network.sae[master].node, network.sae[slave].node,
                                   active, planned)
        elif "planned" in fields:
            raise ApiError(400, f"{at}.planned: given without route")
        out.append(ServiceEnd(master, slave, counts, routes))
    return tuple(out)


def check_ends(record: NodeRecord, network: Network, where: str = "") -> None:
    """ApiError 403 naming the field unless the record's node is an end of every QKD-link
    and KM-link it reports, and the node of an SAE of every pair it counts (the master's,
    for a pair's route): a node speaks only for its own ends."""
    prefix = f"{where}." if where else ""
    node = record.node
    for i, e in enumerate(record.links):
        link = network.link[e.link]
        if node not in (link.a, link.b):
            raise ApiError(403, f"{prefix}links[{i}].link: node {node!r} is not an end of "
                                f"QKD-link {e.link!r}")
    for i, k in enumerate(record.km_links):
        km = network.km_link[k.km_link]
        if node not in (km.a, km.b):
            raise ApiError(403, f"{prefix}km_links[{i}].km_link: node {node!r} is not an end "
                                f"of KM-link {k.km_link!r}")
    for i, s in enumerate(record.services):
        master, slave = network.sae[s.master].node, network.sae[s.slave].node
        if node not in (master, slave):
            raise ApiError(403, f"{prefix}services[{i}]: node {node!r} is the node of neither "
                                f"SAE {s.master!r} nor {s.slave!r}")
        if s.routes is not None and node != master:
            raise ApiError(403, f"{prefix}services[{i}].route: only the master SAE's node "
                                f"{master!r} reports the pair's route")
