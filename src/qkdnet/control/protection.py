"""Protection switching: each demand keeps a working route and an edge-disjoint backup;
when a KM-link of the active route fails the demand moves to the backup, and when no
precomputed route survives it is rerouted (or reported unserved). A route whose KM-link is
reported drained (less key than one request) is moved around the drained KM-links when
another route exists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qkdnet.control.level1 import KMLinkView
from qkdnet.control.level2 import Path, Protected
from qkdnet.control.link_state import KMLinkState


@dataclass(frozen=True, slots=True)
class Demand:
    """Keys wanted between two nodes: ``need_bits`` per request."""

    id: str
    source: str
    target: str
    need_bits: float = 512.0


@dataclass(frozen=True, slots=True)
class RouteChanged:
    """Demand ``demand`` now uses ``path`` (None: no route) because of ``reason``."""

    demand: str
    path: Path | None
    reason: str


def _drained_now(path: Path, reported: dict[str, KMLinkState], need_bits: float) -> bool:
    """Whether this batch reports a KM-link of ``path`` holding less than ``need_bits``."""
    return any((state := reported.get(km)) is not None and state.key_bits < need_bits
               for km in path.km_links)


class ProtectionController:
    """Keeps the demands' routes protected as KM-link state changes (sans-I/O)."""

    def __init__(self, level1: KMLinkView) -> None:
        self.level1 = level1
        self._demands: dict[str, Demand] = {}
        self._routes: dict[str, Protected | None] = {}
        self._planned: dict[str, Protected | None] = {}
        self._backoff: dict[str, tuple[int, int]] = {}  # demand -> (batches to skip, step)

    def add(self, demand: Demand) -> RouteChanged:
        """Route a new demand: its working path, with a backup where one exists."""
        self._demands[demand.id] = demand
        self._routes[demand.id] = self._planned[demand.id] = self.level1.protected(
            demand.source, demand.target, demand.need_bits)
        return RouteChanged(demand.id, self.active(demand.id), "routed")

    def active(self, demand_id: str) -> Path | None:
        """The route the demand uses now."""
        routes = self._routes.get(demand_id)
        return None if routes is None else routes.working

    def backup(self, demand_id: str) -> Path | None:
        """The demand's standby route."""
        routes = self._routes.get(demand_id)
        return None if routes is None else routes.backup

    def handle(self, state: KMLinkState) -> list[RouteChanged]:
        """Take a KM-link state report; return the demands whose route changed."""
        return self.handle_all([state])

    def handle_all(self, states: Iterable[KMLinkState]) -> list[RouteChanged]:
        """Take a batch of KM-link state reports (one KM's or one period's) and check
        every demand once; return the demands whose route changed."""
        repaired: set[str] = set()  # KM-links back up after being down
        refilled: dict[str, float] = {}  # KM-links whose key grew: the key they had before
        reported: dict[str, KMLinkState] = {}
        for state in states:
            before = self.level1.state(state.km_link)
            if state.up and (before is None or not before.up):
                repaired.add(state.km_link)
            elif before is not None and state.key_bits > before.key_bits:
                refilled[state.km_link] = before.key_bits
            self.level1.update(state)
            reported[state.km_link] = state
        changes = []
        for demand in self._demands.values():
            active = self.active(demand.id)
            if active is not None and not self.level1.usable(active, demand.need_bits):
                changes.append(self._recover(demand))
            elif (planned := self._revertible(demand, active, repaired)) is not None:
                self._routes[demand.id] = planned
                changes.append(RouteChanged(demand.id, planned.working,
                                            "reverted to the working route"))
            elif active is not None and _drained_now(active, reported, demand.need_bits):
                change = self._avoid_drained(demand, active)
                if change is not None:
                    changes.append(change)
            elif active is None and (repaired or any(
                    before < demand.need_bits <= reported[km].key_bits
                    for km, before in refilled.items())):
                change = self._restore(demand, repaired)
                if change is not None:
                    changes.append(change)
        return changes

    def _restore(self, demand: Demand, repaired: set[str]) -> RouteChanged | None:
        """Search a route for an unrouted demand after news that may open one. A repair on
        its planned route is always worth a search; other news is, but searches that keep
        failing back off (1, 2, 4 ... 64 reports skipped), since on a large network each
        costs a Level-1 computation."""
        planned = self._planned.get(demand.id)
        on_plan = planned is not None and bool(repaired & set(planned.working.km_links))
        skip, step = self._backoff.get(demand.id, (0, 0))
        if skip and not on_plan:
            self._backoff[demand.id] = (skip - 1, step)
            return None
        route = self.level1.protected(demand.source, demand.target, demand.need_bits)
        if route is None:
            step = min(2 * step or 1, 64)
            self._backoff[demand.id] = (step, step)
            return None
        self._backoff.pop(demand.id, None)
        self._routes[demand.id] = route
        return RouteChanged(demand.id, route.working, "restored")

    def _revertible(self, demand: Demand, active: Path | None,
                    repaired: set[str]) -> Protected | None:
        """The demand's planned routes, when it has left its working route and a KM-link of
        that route was just repaired, the whole route usable again (revertive protection:
        the planned route is the one the operator dimensioned)."""
        planned = self._planned.get(demand.id)
        if planned is None or active is None or active == planned.working:
            return None
        if repaired & set(planned.working.km_links) and \
                self.level1.usable(planned.working, demand.need_bits):
            return planned
        return None

    def _avoid_drained(self, demand: Demand, active: Path) -> RouteChanged | None:
        """A KM-link of the route just ran short: move to a route around the drained
        KM-links if one exists (the pool would otherwise serve only what it refills)."""
        drained = self.level1.drained(active, demand.need_bits)
        better = self.level1.protected(demand.source, demand.target, demand.need_bits, drained)
        if better is None:
            return None
        self._routes[demand.id] = better
        return RouteChanged(demand.id, better.working, "rerouted around drained KM-links")

    def _recover(self, demand: Demand) -> RouteChanged:
        backup = self.backup(demand.id)
        if backup is not None and self.level1.usable(backup, demand.need_bits):
            standby = self.level1.route(demand.source, demand.target, demand.need_bits,
                                        backup.km_links)
            self._routes[demand.id] = Protected(backup, standby)
            return RouteChanged(demand.id, backup, "switched to backup")
        rerouted = self.level1.protected(demand.source, demand.target, demand.need_bits)
        self._routes[demand.id] = rerouted
        if rerouted is None:
            return RouteChanged(demand.id, None, "no route")
        return RouteChanged(demand.id, rerouted.working, "rerouted")
