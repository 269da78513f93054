"""One node's telemetry as it travels from a node process to its region's EMS and on to
the NMS: JSON, the records :class:`~qkdnet.live.reports.LiveReports` builds for the whole
network in ``qkdnet serve``, for one node.

A record::

    {"node": "b", "t": 1764900000.5, "ok": true, "store_ok": true, "stale_routes": false,
     "links": [{"link": "b~c", "skr_bps": 1.2e4, "qber": 0.011, "up": true,
                "detector_current_alarm": false}, ...],
     "km_links": [{"km_link": "km:b~c", "key_bits": 2.1e6, "rate_bps": 1.2e4,
                   "up": true}, ...]}

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
from dataclasses import dataclass
from typing import Any

from qkdnet.keys.etsi014 import ApiError
from qkdnet.topology.model import Network

_RECORD = frozenset({"node", "t", "ok", "store_ok", "stale_routes", "links", "km_links"})
_RECORD_REQUIRED = frozenset({"node", "t", "ok", "links", "km_links"})
_LINK = frozenset({"link", "skr_bps", "qber", "up", "detector_current_alarm"})
_KM_LINK = frozenset({"km_link", "key_bits", "rate_bps", "up"})


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
class NodeRecord:
    """One node's telemetry at its time ``t`` (s since the epoch)."""

    node: str
    t: float
    ok: bool
    store_ok: bool
    stale_routes: bool
    links: tuple[LinkEnd, ...]
    km_links: tuple[KMLinkEnd, ...]

    def document(self) -> dict[str, Any]:
        """The record as JSON-ready data (a QBER not measured is null)."""
        return {"node": self.node, "t": self.t, "ok": self.ok, "store_ok": self.store_ok,
                "stale_routes": self.stale_routes,
                "links": [{"link": e.link, "skr_bps": e.skr_bps,
                           "qber": None if math.isnan(e.qber) else e.qber, "up": e.up,
                           "detector_current_alarm": e.detector_current_alarm}
                          for e in self.links],
                "km_links": [{"km_link": e.km_link, "key_bits": e.key_bits,
                              "rate_bps": e.rate_bps, "up": e.up} for e in self.km_links]}


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
                      tuple(links), tuple(km_links))


def check_ends(record: NodeRecord, network: Network, where: str = "") -> None:
    """ApiError 403 naming the field unless the record's node is an end of every QKD-link
    and KM-link it reports: a node speaks only for its own ends."""
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
