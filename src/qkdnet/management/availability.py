"""Outage timelines and the availability figures derived from them.

A timeline is the set of moments (seconds of simulated time) at which something could not
serve keys, held as :data:`Outages`: a sorted tuple of non-overlapping, non-touching
:class:`Interval` values. Pure functions only; there is no clock here.

Why union and intersection: a chain of KM-links is down whenever any one of them is down
(:func:`chain_outage`), while a service protected by alternative paths, such as the
Beijing-Wuhan ring of CN-QCN, is down only while every path is down at once
(:func:`protected_outage`). :func:`hours_per_week` gives the figures of the paper's Table 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import pairwise
from typing import TypeAlias

from qkdnet.errors import ParameterError
from qkdnet.units import HOUR_S, WEEK_S


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open stretch of time ``[start, end)`` in seconds; ``start < end``."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ParameterError("end", self.end, f"must be greater than start={self.start:g}")

    @property
    def length(self) -> float:
        """Duration in seconds."""
        return self.end - self.start


Outages: TypeAlias = tuple[Interval, ...]
"""A normalised timeline: sorted, no two intervals overlapping or touching."""


def outages(intervals: Iterable[tuple[float, float] | Interval]) -> Outages:
    """Build a normalised timeline, merging intervals that overlap or touch.

    Raises :class:`~qkdnet.errors.ParameterError` (a ``ValueError``) for an interval whose
    end is not after its start.
    """
    items = sorted(i if isinstance(i, Interval) else Interval(*i) for i in intervals)
    merged: list[Interval] = []
    for item in items:
        if merged and item.start <= merged[-1].end:
            last = merged.pop()
            merged.append(Interval(last.start, max(last.end, item.end)))
        else:
            merged.append(item)
    return tuple(merged)


def union(*timelines: Outages) -> Outages:
    """Moments at which at least one timeline is down; no timelines gives the empty one."""
    return outages(i for timeline in timelines for i in timeline)


def intersection(*timelines: Outages) -> Outages:
    """Moments at which every timeline is down at once (at least one timeline needed)."""
    if not timelines:
        raise ParameterError("timelines", 0, "at least one timeline is needed")
    return reduce(_intersect_two, (outages(t) for t in timelines))


def _intersect_two(a: Outages, b: Outages) -> Outages:
    found: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if start < end:
            found.append(Interval(start, end))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return outages(found)


def clip(timeline: Outages, start: float, end: float) -> Outages:
    """The part of ``timeline`` inside ``[start, end)``; empty when ``end <= start``."""
    if not end > start:
        return ()
    return tuple(Interval(max(i.start, start), min(i.end, end))
                 for i in outages(timeline) if i.end > start and i.start < end)


def total(timeline: Outages) -> float:
    """Seconds of outage in ``timeline``."""
    return sum((i.length for i in outages(timeline)), 0.0)


def chain_outage(link_outages: Mapping[str, Outages], km_links: Iterable[str]) -> Outages:
    """A chain of KM-links (a path's ``km_links``) is down whenever any link is down.

    A link absent from ``link_outages`` has no recorded outage and counts as always up.
    """
    return union(*(link_outages.get(link, ()) for link in km_links))


def protected_outage(link_outages: Mapping[str, Outages],
                     paths: Sequence[Iterable[str]]) -> Outages:
    """A service with alternative paths (each a chain of KM-links) is down only while every
    path is down at once."""
    if not paths:
        raise ParameterError("paths", 0, "at least one path is needed")
    return intersection(*(chain_outage(link_outages, p) for p in paths))


def per_window(timeline: Outages, start: float, window_s: float, count: int) -> list[float]:
    """Seconds of outage in each of ``count`` consecutive windows of ``window_s`` seconds
    from ``start``; an outage across a boundary is split between the windows."""
    if not window_s > 0:
        raise ParameterError("window_s", window_s, "must be > 0")
    if count < 0:
        raise ParameterError("count", count, "must be >= 0")
    bounds = [start + k * window_s for k in range(count + 1)]
    return [total(clip(timeline, lo, hi)) for lo, hi in pairwise(bounds)]


def availability(timeline: Outages, start: float, end: float) -> float:
    """Fraction of ``[start, end)`` not covered by ``timeline``, in [0, 1]."""
    if not end > start:
        raise ParameterError("end", end, f"must be greater than start={start:g}")
    return 1.0 - total(clip(timeline, start, end)) / (end - start)


def hours_per_week(timeline: Outages, weeks: int, start: float = 0.0) -> list[float]:
    """Hours of outage in each of ``weeks`` weeks from ``start`` (the unit of Table 1)."""
    return [s / HOUR_S for s in per_window(timeline, start, WEEK_S, weeks)]
