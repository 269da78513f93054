"""Protection switching: each demand keeps a working route and an edge-disjoint backup;
when a KM-link of the active route fails the demand moves to the backup, and when no
precomputed route survives it is rerouted (or reported unserved)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qkdnet.control.level1 import Level1Controller
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


class ProtectionController:
    """Keeps the demands' routes protected as KM-link state changes (sans-I/O)."""

    def __init__(self, level1: Level1Controller) -> None:
        self.level1 = level1
        self._demands: dict[str, Demand] = {}
        self._routes: dict[str, Protected | None] = {}

    def add(self, demand: Demand) -> RouteChanged:
        """Route a new demand: its working path, with a backup where one exists."""
        self._demands[demand.id] = demand
        self._routes[demand.id] = self.level1.protected(demand.source, demand.target,
                                                        demand.need_bits)
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
        any_up = False
        for state in states:
            self.level1.update(state)
            any_up = any_up or state.up
        changes = []
        for demand in self._demands.values():
            active = self.active(demand.id)
            if active is not None and not self.level1.usable(active, demand.need_bits):
                changes.append(self._recover(demand))
            elif active is None and any_up:
                route = self.level1.protected(demand.source, demand.target, demand.need_bits)
                if route is not None:
                    self._routes[demand.id] = route
                    changes.append(RouteChanged(demand.id, route.working, "restored"))
        return changes

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
