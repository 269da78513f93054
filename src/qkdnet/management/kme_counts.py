"""What the KMEs answered: calls by node, endpoint, calling SAE and HTTP status, latency
histograms by node and endpoint, and the 503 refusals by cause (sans-I/O).

The KME key path costs tens of microseconds of server CPU per call (issue 13), so counting
must cost next to nothing: :meth:`KmeCounts.record` does a few plain dict and list
increments, no locks (every KME of a process answers on one event loop) and no
prometheus_client object; :mod:`qkdnet.management.metrics` builds the families from these
counts at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

#: Upper bounds of the latency histogram's buckets (s), as Prometheus ``le`` (+Inf last,
#: implied): a same-node Get key takes ~1 ms under load, a 64-hop relay tens of ms, a
#: refused relay waits for its timer (seconds).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Why a KME answered 503, by the start of its message (the keys and live layers' texts):
#: what an operator acts on differs (a route, key supply, a store, a stopped KM).
_CAUSES: tuple[tuple[str, str], ...] = (
    ("no route", "no_route"),
    ("keys are not available", "not_enough_key"),
    ("the key store of node", "key_store"),
    ("key store:", "key_store"),
    ("the Key Manager of node", "node_stopped"),
    ("keys not relayed across the domain border", "domain_border"),
    ("keys not found at gateway", "domain_border"),
    ("the relay did not carry", "relay_failed"),
)

CAUSES: tuple[str, ...] = tuple(dict.fromkeys([*(c for _, c in _CAUSES), "other"]))
"""Every value of the ``cause`` label of the 503 counter."""


def refusal_cause(message: str) -> str:
    """The cause label of a 503 answer with ``message``: one of :data:`CAUSES`
    (``relay_failed`` for a relay that timed out or was refused on the way, ``other`` for
    a message not recognised)."""
    for start, cause in _CAUSES:
        if message.startswith(start):
            return cause
    if "could not be" in message or "not delivered" in message or "timer" in message:
        return "relay_failed"
    return "other"


class Histogram:
    """Counts of latencies (s) per bucket of :data:`LATENCY_BUCKETS_S` (not cumulative; the
    last is +Inf) and their sum (s)."""

    __slots__ = ("buckets", "sum_s")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum_s = 0.0


class KmeCounts:
    """The counts of every KME of one process, since it started.

    ``calls``: (node, endpoint, SAE, status) -> calls, where the endpoint is ``status``,
    ``enc_keys``, ``dec_keys``, ``openapi`` or ``other`` (an unknown path) and the SAE the
    one the client certificate names ("" when it names none); ``latency``: (node, endpoint)
    -> :class:`Histogram`; ``refused``: (node, endpoint, cause) -> 503 answers.
    """

    def __init__(self) -> None:
        self.calls: defaultdict[tuple[str, str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.refused: defaultdict[tuple[str, str, str], int] = defaultdict(int)

    def record(self, node: str, endpoint: str, sae: str, status: int,
               seconds: float) -> None:
        """One answered call that took ``seconds`` (s) from its start to its reply."""
        self.calls[node, endpoint, sae, status] += 1
        histogram = self.latency.get((node, endpoint))
        if histogram is None:
            histogram = self.latency[node, endpoint] = Histogram()
        histogram.buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        histogram.sum_s += seconds

    def refuse(self, node: str, endpoint: str, message: str) -> None:
        """One 503 answer with ``message`` (counted by :func:`refusal_cause`)."""
        self.refused[node, endpoint, refusal_cause(message)] += 1
