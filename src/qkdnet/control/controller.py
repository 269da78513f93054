"""The control layer's one entry point: protection switching over the Level-1/Level-2
hierarchy, and the route source the Key Managers ask (both drivers run this code).

Each demand keeps a working route and an edge-disjoint backup; when a KM-link of the active
route fails the demand moves to the backup, and when no precomputed route survives it is
rerouted (or reported unserved). A route whose KM-link is reported drained (less key than
one request) is moved around the drained KM-links when another route exists; a repaired
working route is taken back (revertive). The twin declares its demands; in the live
network a demand is declared by the first key request between two nodes, and later
requests get its active route: :meth:`Controller.route` (the keys layer's
:class:`~qkdnet.keys.route.Router`) is the route cache, switched by the same rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from qkdnet.control.hierarchy import controllers_for
from qkdnet.control.level1 import KMLinkView
from qkdnet.control.level2 import Protected
from qkdnet.errors import NoRoute
from qkdnet.keys.link_state import KMLinkState
from qkdnet.keys.route import Route
from qkdnet.topology.model import KMLinkKind, Network

#: Key a live demand is routed for (bits): one 256-bit key's pad and MAC key, twice over.
ROUTE_NEED_BITS = 512.0


@dataclass(frozen=True, slots=True)
class Demand:
    """Keys wanted between two nodes: ``need_bits`` per request, never routed over the
    KM-links ``avoid`` (the twin's watched fibre segments avoid the satellite KM-links)."""

    id: str
    source: str
    target: str
    need_bits: float = 512.0
    avoid: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RouteChanged:
    """Demand ``demand`` now uses ``route`` (None: no route) because of ``reason``."""

    demand: str
    route: Route | None
    reason: str


def _drained_now(path: Route, reported: dict[str, KMLinkState], need_bits: float) -> bool:
    """Whether this batch reports a KM-link of ``path`` holding less than ``need_bits``."""
    return any((state := reported.get(km)) is not None and state.key_bits < need_bits
               for km in path.km_links)


class _Backoff:
    """Route searches per demand that back off while they keep failing: after a failure
    1, 2, 4 ... 64 chances are skipped; a success resets."""

    def __init__(self) -> None:
        self._skip: dict[str, tuple[int, int]] = {}  # demand -> (chances to skip, step)

    def due(self, demand_id: str) -> bool:
        """Whether this chance to search is taken (a skipped one counts down)."""
        skip, step = self._skip.get(demand_id, (0, 0))
        if skip:
            self._skip[demand_id] = (skip - 1, step)
            return False
        return True

    def record(self, demand_id: str, found: bool) -> None:
        """The search's outcome: a failure doubles the next wait."""
        if found:
            self._skip.pop(demand_id, None)
        else:
            step = min(2 * self._skip.get(demand_id, (0, 0))[1] or 1, 64)
            self._skip[demand_id] = (step, step)


class Controller:
    """Keeps the demands' routes protected as KM-link state changes (sans-I/O), over the
    Level-1 view ``level1`` (:meth:`for_network` builds the whole hierarchy)."""

    def __init__(self, level1: KMLinkView, need_bits: float = ROUTE_NEED_BITS) -> None:
        self.level1 = level1
        self.need_bits = need_bits
        self._demands: dict[str, Demand] = {}
        self._routes: dict[str, Protected | None] = {}
        self._planned: dict[str, Protected | None] = {}
        self._restore_searches = _Backoff()
        self._drain_searches = _Backoff()
        # unrouted demands whose news (a repair, a refill) came while their searches were
        # backing off: each later report is a chance for it, so a refill that crossed the
        # demand's need once, then stayed, is not lost
        self._news_waiting: set[str] = set()
        self._nodes: frozenset[str] | None = None  # known nodes, when built for a network

    @classmethod
    def for_network(cls, network: Network, need_bits: float = ROUTE_NEED_BITS,
                    fibre: Collection[KMLinkKind] = (KMLinkKind.DIRECT,)) -> Controller:
        """The controller of ``network``'s control hierarchy, routing over its fibre
        KM-links of the ``fibre`` kinds (and the satellite ones); ``need_bits`` is what the
        demands the KMs declare (:meth:`route`) are routed for."""
        controller = cls(controllers_for(network, fibre), need_bits)
        controller._nodes = frozenset(n.id for n in network.nodes)
        return controller

    def route(self, source: str, destination: str) -> Route:
        """The active route of the demand between two nodes, declared (and routed, with a
        backup) at its first request; NoRoute while it has none. The KMs' Router."""
        demand_id = f"{source}->{destination}"
        if demand_id not in self._demands:
            unknown = [n for n in (source, destination)
                       if self._nodes is not None and n not in self._nodes]
            if unknown:
                raise NoRoute(source, destination, f"unknown node {unknown[0]!r}")
            self.add(Demand(demand_id, source, destination, self.need_bits))
        active = self.active(demand_id)
        if active is None:
            raise NoRoute(source, destination)
        return active

    def add(self, demand: Demand) -> RouteChanged:
        """Route a new demand: its working path, with a backup where one exists."""
        self._demands[demand.id] = demand
        self._routes[demand.id] = self._planned[demand.id] = self.level1.protected(
            demand.source, demand.target, demand.need_bits, demand.avoid)
        return RouteChanged(demand.id, self.active(demand.id), "routed")

    def active(self, demand_id: str) -> Route | None:
        """The route the demand uses now."""
        routes = self._routes.get(demand_id)
        return None if routes is None else routes.working

    def backup(self, demand_id: str) -> Route | None:
        """The demand's standby route."""
        routes = self._routes.get(demand_id)
        return None if routes is None else routes.backup

    def planned(self, demand_id: str) -> tuple[Route, ...]:
        """The routes the demand was first given (working, then backup where it has one):
        what the operator dimensioned, whatever it uses now; none for an unknown demand."""
        routes = self._planned.get(demand_id)
        if routes is None:
            return ()
        return (routes.working,) if routes.backup is None else (routes.working, routes.backup)

    def report(self, states: Iterable[KMLinkState]) -> list[RouteChanged]:
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
            elif active is None and (repaired or demand.id in self._news_waiting or any(
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
        costs a Level-1 computation. A demand declared while nothing could carry it (a live
        network still filling its pools) takes the first route found as its plan, the one
        revertive protection returns to."""
        planned = self._planned.get(demand.id)
        on_plan = planned is not None and bool(repaired & set(planned.working.km_links))
        if not self._restore_searches.due(demand.id) and not on_plan:
            self._news_waiting.add(demand.id)
            return None
        self._news_waiting.discard(demand.id)
        route = self.level1.protected(demand.source, demand.target, demand.need_bits,
                                      demand.avoid)
        self._restore_searches.record(demand.id, found=route is not None)
        if route is None:
            return None
        self._routes[demand.id] = route
        if self._planned.get(demand.id) is None:
            self._planned[demand.id] = route
        return RouteChanged(demand.id, route.working, "restored")

    def _revertible(self, demand: Demand, active: Route | None,
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

    def _avoid_drained(self, demand: Demand, active: Route) -> RouteChanged | None:
        """A KM-link of the route just ran short: move to a route around the drained
        KM-links if one exists that refills faster (a drained route serves only what its
        slowest KM-link refills; a slower detour would serve less). A demand for more key
        than any route refills drains every route it takes; its searches back off as the
        restore searches do."""
        if not self._drain_searches.due(demand.id):
            return None
        drained = self.level1.drained(active, demand.need_bits)
        better = self.level1.protected(demand.source, demand.target, demand.need_bits,
                                       {*drained, *demand.avoid})
        if better is not None and \
                self.level1.refill_bps(better.working) <= self.level1.refill_bps(active):
            better = None
        self._drain_searches.record(demand.id, found=better is not None)
        if better is None:
            return None
        self._routes[demand.id] = better
        return RouteChanged(demand.id, better.working, "rerouted around drained KM-links")

    def _recover(self, demand: Demand) -> RouteChanged:
        backup = self.backup(demand.id)
        if backup is not None and self.level1.usable(backup, demand.need_bits):
            standby = self.level1.route(demand.source, demand.target, demand.need_bits,
                                        {*backup.km_links, *demand.avoid})
            self._routes[demand.id] = Protected(backup, standby)
            return RouteChanged(demand.id, backup, "switched to backup")
        rerouted = self.level1.protected(demand.source, demand.target, demand.need_bits,
                                         demand.avoid)
        self._routes[demand.id] = rerouted
        if rerouted is None:
            return RouteChanged(demand.id, None, "no route")
        return RouteChanged(demand.id, rerouted.working, "rerouted")
