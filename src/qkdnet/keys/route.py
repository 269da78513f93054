"""Relay routes: the :class:`Route` a key travels (one type for the control layer, which
prices and chooses it, and the Key Managers, which relay along it) and the
:class:`Router` interface through which the KMs ask the control layer for one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Route:
    """A relay path: ``nodes[i]`` and ``nodes[i + 1]`` share KM-link ``km_links[i]``.

    ``cost`` is the key-aware cost the control layer priced the route at (0 when not
    priced); it does not take part in comparisons, so one path is one route whatever its
    price was when it was found.
    """

    nodes: tuple[str, ...]
    km_links: tuple[str, ...]
    cost: float = field(default=0.0, compare=False)

    def __post_init__(self) -> None:
        if len(self.nodes) != len(self.km_links) + 1 or not self.nodes:
            raise ValueError("a route has one KM-link fewer than nodes, and at least one node")

    @property
    def source(self) -> str:
        return self.nodes[0]

    @property
    def destination(self) -> str:
        return self.nodes[-1]

    @property
    def hops(self) -> int:
        return len(self.km_links)

    def reversed(self) -> Route:
        """The same path walked from its destination to its source."""
        return Route(self.nodes[::-1], self.km_links[::-1], self.cost)


class Router(Protocol):
    """Chooses the relay route for a key from ``source`` to ``destination`` (node ids)."""

    def route(self, source: str, destination: str) -> Route:
        """The route; :class:`~qkdnet.errors.NoRoute` if no usable one joins the nodes."""
        ...
