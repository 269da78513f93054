"""Prometheus exposition of the NMS's latest state.

A custom collector reads an :class:`~qkdnet.management.nms.Nms` at scrape time, so the
exposition always shows the latest ingested samples without copying them into gauge
objects on every ingest. It is registered in a fresh ``CollectorRegistry`` per NMS: the
process-global registry would mix NMS instances (tests, twins running side by side).

Metrics (gauges but the counters; units in the names, as Prometheus conventions ask):

=====================================  ======================  =========================
name                                   labels                  value
=====================================  ======================  =========================
qkdnet_link_skr_bits_per_second        link, region, *         secure key rate, bit/s
qkdnet_link_qber_ratio                 link, region, *         QBER (NaN: not measured)
qkdnet_link_up                         link, region, *         1 up, 0 down
qkdnet_link_detector_current_alarm     link, region, *         1 alarm raised
qkdnet_kmlink_key_bits                 km_link, region, kind   key held in the pool, bits
qkdnet_kmlink_refill_bits_per_second   km_link, region, kind   refill rate, bit/s
qkdnet_kmlink_up                       km_link, region, kind   1 up, 0 down
qkdnet_node_ok                         node, region            1 KM healthy
qkdnet_node_key_store_ok               node, region            1 key store writable
qkdnet_node_expired_held_keys_total    node, region            counter: held keys erased
qkdnet_kmlink_discarded_bits_total     km_link, region         counter: key discarded, bits
qkdnet_key_store_commit_rounds_total   (none)                  counter: group commit rounds
qkdnet_key_store_commits_total         (none)                  counter: store commits
qkdnet_satellite_pool_key_bits         satellite, station      key in the pool, bits
qkdnet_satellite_pass_in_progress      satellite, station      1 while a pass is under way
qkdnet_satellite_passes_total          satellite, station      counter: passes ended
qkdnet_satellite_passes_no_key_total   satellite, station      counter: night passes, no key
qkdnet_satellite_pass_key_bits_total   satellite, station      counter: key passes made, bits
qkdnet_alarms_active                   severity                active alarms
qkdnet_kme_requests_total              node, endpoint, sae,    counter: KME answers
                                       code
qkdnet_kme_request_duration_seconds    node, endpoint          histogram: call to reply, s
qkdnet_kme_refusals_total              node, endpoint, cause   counter: 503 answers
=====================================  ======================  =========================

``kind``: the KM-link's kind (``direct``, ``remote`` or ``satellite``). ``*``: the QKD-link
series also carry ``device_type`` (the link's QKD devices) and
``domain`` (the routing domain holding both its ends, the first declared where several
do; "" where none does). ``qkdnet_alarms_active`` has a sample for every severity, 0
included, where the NMS's alarm engine is given. The KME families come from
:class:`~qkdnet.management.kme_counts.KmeCounts` (``qkdnet serve``): ``endpoint`` is
``status``, ``enc_keys``, ``dec_keys``, ``openapi`` or ``other``; ``sae`` the SAE the
client certificate names ("" for none); ``cause`` one of
:data:`~qkdnet.management.kme_counts.CAUSES`.

The satellite families appear where the driver emulates passes (the NMS's ``satellite``).

Only elements that have reported at least once appear, but for the counters: they come from
the driver (``qkdnet serve`` counts the keys held for a slave SAE that were not fetched
within ``--held-key-ttl`` and so erased, one sample per served node, 0 included; and the key
its supply discarded because a KM-link's pools were full, one sample per supplied KM-link;
and its group commit rounds and the store commits they made: commits over rounds is how
many stores a round wrote, rounds over calls how well calls share them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from qkdnet.management.alarms import AlarmEngine, Severity
from qkdnet.management.kme_counts import LATENCY_BUCKETS_S, KmeCounts
from qkdnet.management.nms import Latest, Nms
from qkdnet.management.satellite import SatelliteStatus
from qkdnet.topology.model import Network

# (metric name, column, help) per kind; the label naming the element comes first
_LINK = (
    ("qkdnet_link_skr_bits_per_second", "skr_bps", "Secure key rate of the QKD-link (bit/s)."),
    ("qkdnet_link_qber_ratio", "qber", "Quantum bit error rate of the QKD-link (ratio)."),
    ("qkdnet_link_up", "up", "Whether the QKD-link distils key (1) or is down (0)."),
    ("qkdnet_link_detector_current_alarm", "detector_current_alarm",
     "Whether the detector bias-current monitor is out of range (1)."),
)
_KM = (
    ("qkdnet_kmlink_key_bits", "key_bits", "Key held in the KM-link's pool (bits)."),
    ("qkdnet_kmlink_refill_bits_per_second", "rate_bps",
     "Rate at which the KM-link's pool is refilled (bit/s)."),
    ("qkdnet_kmlink_up", "up", "Whether the KM-link can serve key (1) or is down (0)."),
)
_NODE = (("qkdnet_node_ok", "ok", "Whether the node's Key Manager reports healthy (1)."),
         ("qkdnet_node_key_store_ok", "store_ok",
          "Whether the node's key store can be written (1) or not (0: disk full, read-only "
          "or I/O error)."))
_EXPIRED = ("qkdnet_node_expired_held_keys",
            "Keys held for a slave SAE that were not fetched within the held-key TTL and so "
            "were erased from the node's key store (count since the server started).")


def link_domains(network: Network) -> dict[str, str]:
    """The routing domain holding both ends of each QKD-link (the first declared where
    several do), "" where none does, by link id."""
    of_node: dict[str, list[str]] = {}
    for d in network.domains:
        for node in d.nodes:
            of_node.setdefault(node, []).append(d.id)
    found = {}
    for lk in network.qkd_links:
        b = of_node.get(lk.b, ())
        found[lk.id] = next((d for d in of_node.get(lk.a, ()) if d in b), "")
    return found


def _link_labels(network: Network, latest: Latest) -> tuple[list[str], list[list[str]]]:
    """The label names of the QKD-link series, and link, region, device_type and domain of
    each reported QKD-link."""
    domain = link_domains(network)
    return _LINK_LABELS, [[item, region, network.link[item].device_type, domain[item]]
                          for item, region in zip(latest.ids, latest.regions, strict=True)]


_LINK_LABELS = ["link", "region", "device_type", "domain"]
_KM_LABELS = ["km_link", "region", "kind"]


def _km_labels(network: Network, latest: Latest) -> tuple[list[str], list[list[str]]]:
    """The label names of the KM-link series, and km_link, region and kind (direct, remote
    or satellite) of each reported KM-link."""
    return _KM_LABELS, [[item, region, str(network.km_link[item].kind)]
                        for item, region in zip(latest.ids, latest.regions, strict=True)]


def _families(latest: Latest, label: str, specs: Sequence[tuple[str, str, str]],
              rows: tuple[list[str], list[list[str]]] | None = None) -> Iterator[Metric]:
    """One gauge family per spec; ``rows``: the label names and each row's values, by
    default ``label`` and ``region``."""
    names, keys = rows or ([label, "region"], [
        [item, region] for item, region in zip(latest.ids, latest.regions, strict=True)])
    for name, column, help_text in specs:
        family = GaugeMetricFamily(name, help_text, labels=names)
        values: NDArray[Any] = latest.columns[column]
        # tolist() turns numpy bools into Python bools, which float() maps to 0/1
        for labels, value in zip(keys, values.tolist(), strict=True):
            family.add_metric(labels, float(value))
        yield family


_ROUNDS = ("qkdnet_key_store_commit_rounds",
           "Group commit rounds of the KMEs' writes to the key stores: each commits every "
           "store its calls wrote once (count since the server started).")
_COMMITS = ("qkdnet_key_store_commits",
            "Key store commits made by the group commit rounds (count since the server "
            "started).")
_DISCARDED = ("qkdnet_kmlink_discarded_bits",
              "Key the KM-link's QKD-link made but discarded because its pools were full at "
              "either end (bits since the server started).")


_SATELLITE = ("satellite", "station")


def _satellite_families(status: SatelliteStatus) -> Iterator[Metric]:
    """The satellite segment's pools, passes under way and pass counters."""
    pools = GaugeMetricFamily("qkdnet_satellite_pool_key_bits",
                              "Key the satellite shares with the ground station (bits).",
                              labels=list(_SATELLITE))
    for (sat, station), bits in sorted(status.pools.items()):
        pools.add_metric([sat, station], bits)
    yield pools
    under_way = {(p.satellite, p.station) for p in status.in_progress}
    passing = GaugeMetricFamily("qkdnet_satellite_pass_in_progress",
                                "Whether the satellite is passing over the ground station (1).",
                                labels=list(_SATELLITE))
    for cell in sorted(status.pools):
        passing.add_metric(list(cell), float(cell in under_way))
    yield passing
    for name, help_text, counts in (
            ("qkdnet_satellite_passes", "Passes of the satellite over the ground station "
             "that ended (count since the server started).", status.passes),
            ("qkdnet_satellite_passes_no_key", "Passes scheduled at night with key that "
             "yielded none (count since the server started).", status.passes_no_key),
            ("qkdnet_satellite_pass_key_bits", "Key the passes left in the pool, what did "
             "not fit included (bits since the server started).", status.pass_key_bits)):
        family = CounterMetricFamily(name, help_text, labels=list(_SATELLITE))
        for cell, count in sorted(counts.items()):
            family.add_metric(list(cell), float(count))
        yield family


def _alarm_families(alarms: AlarmEngine) -> Iterator[Metric]:
    """The active alarms by severity, every severity present (0 included) so that a rule
    on the gauge sees its series drop to 0 rather than vanish."""
    counts = dict.fromkeys(Severity, 0)
    for alarm in alarms.active():
        counts[alarm.severity] += 1
    family = GaugeMetricFamily("qkdnet_alarms_active", "Active alarms of the NMS's rules "
                               "by perceived severity (ITU-T X.733).", labels=["severity"])
    for severity in sorted(Severity, reverse=True):
        family.add_metric([str(severity)], float(counts[severity]))
    yield family


#: Prometheus ``le`` texts of the latency buckets, +Inf last.
_LE = [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]


def _kme_families(counts: KmeCounts) -> Iterator[Metric]:
    """The KMEs' answers by endpoint, calling SAE and status; their latency; the 503s by
    cause: built from plain counts at scrape time (the key path only adds to dicts)."""
    calls = CounterMetricFamily(
        "qkdnet_kme_requests", "Calls the node's KME answered (ETSI GS QKD 014), by endpoint, "
        "calling SAE and HTTP status code (count since the server started).",
        labels=["node", "endpoint", "sae", "code"])
    for (node, endpoint, sae, status), n in sorted(counts.calls.items()):
        calls.add_metric([node, endpoint, sae, str(status)], float(n))
    yield calls
    latency = HistogramMetricFamily(
        "qkdnet_kme_request_duration_seconds", "Time from a call's arrival at the node's KME "
        "to its reply (s).", labels=["node", "endpoint"])
    for (node, endpoint), histogram in sorted(counts.latency.items()):
        cumulative, total = [], 0
        for le, n in zip(_LE, histogram.buckets, strict=True):
            total += n
            cumulative.append((le, float(total)))
        latency.add_metric([node, endpoint], cumulative, histogram.sum_s)
    yield latency
    refused = CounterMetricFamily(
        "qkdnet_kme_refusals", "Calls the node's KME answered with 503, by cause: no_route, "
        "not_enough_key, key_store, node_stopped, domain_border, relay_failed, other (count "
        "since the server started).", labels=["node", "endpoint", "cause"])
    for (node, endpoint, cause), n in sorted(counts.refused.items()):
        refused.add_metric([node, endpoint, cause], float(n))
    yield refused


def _counter(latest: Latest, label: str, spec: tuple[str, str],
             counts: Mapping[str, int]) -> Metric:
    region_of = dict(zip(latest.ids, latest.regions, strict=True))
    family = CounterMetricFamily(*spec, labels=[label, "region"])
    for item, count in sorted(counts.items()):
        family.add_metric([item, str(region_of.get(item, ""))], float(count))
    return family


class NmsCollector(Collector):
    """Reads the NMS's latest state on every scrape, and ``expired_held_keys`` (a node's
    count of held keys erased unfetched), ``discarded_bits`` (a KM-link's key discarded
    for full pools, bits) and ``commit_rounds`` (group commit rounds and the store commits
    they made); None: no such counter, as in a replay. ``alarms``: the NMS's alarm engine
    (the active alarms by severity); ``kme``: the KMEs' answers."""

    def __init__(self, nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
                 discarded_bits: Mapping[str, int] | None = None,
                 commit_rounds: Callable[[], tuple[int, int]] | None = None, *,
                 alarms: AlarmEngine | None = None, kme: KmeCounts | None = None) -> None:
        self.nms = nms
        self.expired_held_keys = expired_held_keys
        self.discarded_bits = discarded_bits
        self.commit_rounds = commit_rounds
        self.alarms = alarms
        self.kme = kme

    def collect(self) -> Iterator[Metric]:
        """The metric families of the current state."""
        links = self.nms.latest("links")
        yield from _families(links, "link", _LINK, _link_labels(self.nms.network, links))
        km_links = self.nms.latest("km_links")
        yield from _families(km_links, "km_link", _KM, _km_labels(self.nms.network, km_links))
        nodes = self.nms.latest("nodes")
        yield from _families(nodes, "node", _NODE)
        if self.expired_held_keys is not None:
            yield _counter(nodes, "node", _EXPIRED, self.expired_held_keys)
        if self.discarded_bits is not None:
            yield _counter(km_links, "km_link", _DISCARDED, self.discarded_bits)
        if self.commit_rounds is not None:
            for spec, count in zip((_ROUNDS, _COMMITS), self.commit_rounds(), strict=True):
                family = CounterMetricFamily(*spec)
                family.add_metric([], float(count))
                yield family
        if self.nms.satellite is not None:
            yield from _satellite_families(self.nms.satellite)
        if self.alarms is not None:
            yield from _alarm_families(self.alarms)
        if self.kme is not None:
            yield from _kme_families(self.kme)


def registry_for(nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
                 discarded_bits: Mapping[str, int] | None = None,
                 commit_rounds: Callable[[], tuple[int, int]] | None = None, *,
                 alarms: AlarmEngine | None = None, kme: KmeCounts | None = None
                 ) -> CollectorRegistry:
    """A fresh registry holding only a collector over ``nms``, the ``expired_held_keys``
    counts by node, the ``discarded_bits`` by KM-link, the group ``commit_rounds``
    (rounds, commits), the ``alarms`` engine's active alarms and the ``kme`` counts, read
    at scrape time (never the global registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NmsCollector(nms, expired_held_keys, discarded_bits, commit_rounds,
                                   alarms=alarms, kme=kme))
    return registry


def exposition(nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
               discarded_bits: Mapping[str, int] | None = None,
               commit_rounds: Callable[[], tuple[int, int]] | None = None, *,
               alarms: AlarmEngine | None = None, kme: KmeCounts | None = None) -> bytes:
    """The Prometheus text exposition of ``nms``'s latest state and, when given, of the
    count of held keys erased unfetched by node, of key discarded for full pools by
    KM-link (bits), of the key stores' group commit rounds and commits, of the active
    alarms by severity and of the KMEs' answers."""
    return generate_latest(registry_for(nms, expired_held_keys, discarded_bits,
                                        commit_rounds, alarms=alarms, kme=kme))
