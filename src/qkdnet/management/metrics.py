"""Prometheus exposition of the NMS's latest state.

A custom collector reads an :class:`~qkdnet.management.nms.Nms` at scrape time, so the
exposition always shows the latest ingested samples without copying them into gauge
objects on every ingest. It is registered in a fresh ``CollectorRegistry`` per NMS: the
process-global registry would mix NMS instances (tests, twins running side by side).

Metrics (gauges but the counters; units in the names, as Prometheus conventions ask):

=====================================  ======================  =========================
name                                   labels                  value
=====================================  ======================  =========================
qkdnet_link_skr_bits_per_second        link, region            secure key rate, bit/s
qkdnet_link_qber_ratio                 link, region            QBER (NaN: not measured)
qkdnet_link_up                         link, region            1 up, 0 down
qkdnet_link_detector_current_alarm     link, region            1 alarm raised
qkdnet_kmlink_key_bits                 km_link, region         key held in the pool, bits
qkdnet_kmlink_refill_bits_per_second   km_link, region         refill rate, bit/s
qkdnet_kmlink_up                       km_link, region         1 up, 0 down
qkdnet_node_ok                         node, region            1 KM healthy
qkdnet_node_expired_held_keys_total    node, region            counter: held keys erased
qkdnet_kmlink_discarded_bits_total     km_link, region         counter: key discarded, bits
qkdnet_key_store_commit_rounds_total   (none)                  counter: group commit rounds
qkdnet_key_store_commits_total         (none)                  counter: store commits
qkdnet_satellite_pool_key_bits         satellite, station      key in the pool, bits
qkdnet_satellite_pass_in_progress      satellite, station      1 while a pass is under way
qkdnet_satellite_passes_total          satellite, station      counter: passes ended
qkdnet_satellite_passes_no_key_total   satellite, station      counter: night passes, no key
qkdnet_satellite_pass_key_bits_total   satellite, station      counter: key passes made, bits
=====================================  ======================  =========================

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qkdnet.management.nms import Latest, Nms
from qkdnet.management.satellite import SatelliteStatus

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
_NODE = (("qkdnet_node_ok", "ok", "Whether the node's Key Manager reports healthy (1)."),)
_EXPIRED = ("qkdnet_node_expired_held_keys",
            "Keys held for a slave SAE that were not fetched within the held-key TTL and so "
            "were erased from the node's key store (count since the server started).")


def _families(latest: Latest, label: str,
              specs: Sequence[tuple[str, str, str]]) -> Iterator[Metric]:
    keys = [[item, region] for item, region in zip(latest.ids, latest.regions, strict=True)]
    for name, column, help_text in specs:
        family = GaugeMetricFamily(name, help_text, labels=[label, "region"])
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
    they made); None: no such counter, as in a replay."""

    def __init__(self, nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
                 discarded_bits: Mapping[str, int] | None = None,
                 commit_rounds: Callable[[], tuple[int, int]] | None = None) -> None:
        self.nms = nms
        self.expired_held_keys = expired_held_keys
        self.discarded_bits = discarded_bits
        self.commit_rounds = commit_rounds

    def collect(self) -> Iterator[Metric]:
        """The metric families of the current state."""
        yield from _families(self.nms.latest("links"), "link", _LINK)
        km_links = self.nms.latest("km_links")
        yield from _families(km_links, "km_link", _KM)
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


def registry_for(nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
                 discarded_bits: Mapping[str, int] | None = None,
                 commit_rounds: Callable[[], tuple[int, int]] | None = None
                 ) -> CollectorRegistry:
    """A fresh registry holding only a collector over ``nms``, the ``expired_held_keys``
    counts by node, the ``discarded_bits`` by KM-link and the group ``commit_rounds``
    (rounds, commits) read at scrape time (never the global registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NmsCollector(nms, expired_held_keys, discarded_bits, commit_rounds))
    return registry


def exposition(nms: Nms, expired_held_keys: Mapping[str, int] | None = None,
               discarded_bits: Mapping[str, int] | None = None,
               commit_rounds: Callable[[], tuple[int, int]] | None = None) -> bytes:
    """The Prometheus text exposition of ``nms``'s latest state and, when given, of the
    count of held keys erased unfetched by node, of key discarded for full pools by
    KM-link (bits) and of the key stores' group commit rounds and commits."""
    return generate_latest(registry_for(nms, expired_held_keys, discarded_bits,
                                        commit_rounds))
