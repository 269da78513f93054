"""The KMEs' counts and the services' routes as node processes report them to the NMS of a
distributed deployment (``qkdnet up``), and how the NMS joins them (sans-I/O).

Under ``qkdnet serve`` one process counts every KME (:class:`~qkdnet.management.kme_counts.
KmeCounts`, :class:`~qkdnet.management.services.RequestCounts`) and asks its own controller
for each service's routes. In a deployment each node process counts its own nodes' KMEs
and sends each node's share, cumulative since the process started, in the node's telemetry
record; the NMS keeps each node's latest record and joins the shares:

* KME counts are keyed by node already: the NMS's are the union of the nodes' shares.
* A service's (SAE pair's) counts come from two nodes: the master's KME counts its Get key
  requests (taken, refused, keys and bits delivered, response delays), the slave's its
  Get key with key IDs (keys asked for by key_ID, those not handed over). The NMS adds
  them: each counter is counted at one node only, so nothing is counted twice.
* A restarted node process starts its counts again from zero, and the NMS, which keeps
  only the latest record of each node, shows that drop as it is: a Prometheus counter
  reset (``rate()`` handles it), never an old count added to the new one.

Routes. The KM of the master SAE's node asks for the route of each relay it starts, so it
knows the route its services use now; :class:`RouteMemory` keeps, per demand, the first
route it was given (the working route: a service on another one is degraded) and the last
other route, so that a service left without a route still names the nodes and KM-links it
ran over, where its root fault is looked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from qkdnet.keys.route import Route
from qkdnet.management.kme_counts import Histogram, KmeCounts
from qkdnet.management.services import PairCounts

__all__ = ["RouteMemory", "kme_share", "merge_kme", "merge_pairs", "pair_share"]


def kme_share(counts: KmeCounts, node: str) -> KmeCounts:
    """The counts of ``node``'s KME among a process's ``counts`` (a copy)."""
    share = KmeCounts()
    for key, n in list(counts.calls.items()):
        if key[0] == node:
            share.calls[key] = n
    for (at, endpoint), histogram in list(counts.latency.items()):
        if at == node:
            copy = share.latency[at, endpoint] = Histogram()
            copy.buckets, copy.sum_s = list(histogram.buckets), histogram.sum_s
    for refusal, n in list(counts.refused.items()):
        if refusal[0] == node:
            share.refused[refusal] = n
    return share


def pair_share(counts: PairCounts, master_side: bool, slave_side: bool) -> PairCounts:
    """What one node counted of a pair, from a process's ``counts`` of it (a copy): Get key
    on the master's side, Get key with key IDs on the slave's (both when the node is both;
    a process holding both nodes counts the pair once, and each node reports its side)."""
    share = PairCounts()
    if master_side:
        share.requests, share.refused = counts.requests, counts.refused
        share.keys_delivered, share.keys_lost = counts.keys_delivered, counts.keys_lost
        share.bits_delivered, share.last_refusal = counts.bits_delivered, counts.last_refusal
        share.delays.extend(counts.delays)
    if slave_side:
        share.keys_asked_by_id = counts.keys_asked_by_id
        share.keys_not_released = counts.keys_not_released
    return share


def merge_kme(shares: Iterable[KmeCounts]) -> KmeCounts:
    """One KmeCounts of the nodes' ``shares`` (each node's keys appear in its share only;
    were one in two, they would be added)."""
    merged = KmeCounts()
    for share in shares:
        for call, n in share.calls.items():
            merged.calls[call] += n
        for key, histogram in share.latency.items():
            into = merged.latency.get(key)
            if into is None:
                into = merged.latency[key] = Histogram()
            into.buckets = [a + b for a, b in zip(into.buckets, histogram.buckets,
                                                  strict=True)]
            into.sum_s += histogram.sum_s
        for refusal, n in share.refused.items():
            merged.refused[refusal] += n
    return merged


def merge_pairs(shares: Iterable[Mapping[tuple[str, str], PairCounts]]
                ) -> dict[tuple[str, str], PairCounts]:
    """The services' counts by (master, slave) from the nodes' ``shares``: their counters
    added, the response delays joined (the master's node keeps them), the last refusal
    the master's."""
    merged: dict[tuple[str, str], PairCounts] = {}
    for share in shares:
        for pair, counts in share.items():
            into = merged.get(pair)
            if into is None:
                into = merged[pair] = PairCounts()
            into.requests += counts.requests
            into.refused += counts.refused
            into.keys_delivered += counts.keys_delivered
            into.keys_lost += counts.keys_lost
            into.bits_delivered += counts.bits_delivered
            into.keys_asked_by_id += counts.keys_asked_by_id
            into.keys_not_released += counts.keys_not_released
            into.last_refusal = counts.last_refusal or into.last_refusal
            into.delays.extend(counts.delays)
    return merged


class RouteMemory:
    """The routes a node's KM was given for each demand (``source->target``): the one it
    uses now and those the service was planned on, as far as the node can tell (see the
    module docstring)."""

    def __init__(self) -> None:
        self._first: dict[str, Route] = {}
        self._last: dict[str, Route] = {}
        self._now: dict[str, Route | None] = {}

    def given(self, demand: str, route: Route | None) -> None:
        """The controller's answer for ``demand`` now: a route, or None (it has none)."""
        self._now[demand] = route
        if route is not None:
            self._first.setdefault(demand, route)
            if route != self._first[demand]:
                self._last[demand] = route

    def known(self, demand: str) -> bool:
        """Whether an answer for ``demand`` has come."""
        return demand in self._now

    def active(self, demand: str) -> Route | None:
        """The route ``demand`` uses now (None: none, or no answer yet)."""
        return self._now.get(demand)

    def planned(self, demand: str) -> tuple[Route, ...]:
        """The working route (the first given), then the last other one given."""
        first = self._first.get(demand)
        if first is None:
            return ()
        last = self._last.get(demand)
        return (first,) if last is None else (first, last)
