"""Where relays cross between separately managed domains (sans-I/O).

A scenario's domain may name the operator whose key management system runs it
(``managed_by``). Two domains with different operators meet at their shared nodes, the
gateways; a gateway runs one ETSI GS QKD 020 interop KMS per operator there
(:func:`interop_kms_id`). A relay route that passes from one operator's KM-links to
another's at a gateway is split there (:func:`border_crossing`): the near leg is the usual
one-time-pad hop relay up to the gateway, the key then goes from the near operator's KMS
to the far operator's KMS over 020, and the far leg relays it on from the gateway.

The far leg relays the key it was handed, not a fresh one: :class:`StagedKeys` is the
relay's random source, and gives the staged key once, to the relay started right after
staging (the KM draws its key material first thing when it starts a relay).

When the gateway's KMs run in another process than the near leg's source (node
processes), the source asks the gateway's KM to take the keys across (:class:`CrossBorder`,
a KM-to-KM message) and hears how it went (:class:`Crossed`); :func:`crossing_asked`
decides whether a gateway can do what it is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from qkdnet.keys.route import Route
from qkdnet.topology.model import Network


@dataclass(frozen=True, slots=True)
class BorderCrossing:
    """A route split at ``gateway``: ``near`` (from the source to the gateway, KM-links of
    operator ``near_operator``) and ``far`` (from the gateway on, ``far_operator``'s)."""

    gateway: str
    near: Route
    far: Route
    near_operator: str
    far_operator: str


@dataclass(frozen=True, slots=True)
class CrossBorder:
    """KM-to-KM, a near leg's source to the gateway's KM: push the keys ``key_ids``, held
    at the gateway for ``master_sae`` and ``slave_sae``, from ``near_operator``'s interop
    KMS to ``far_operator``'s there and on towards the slave; ``borders``: the borders
    still ahead of the keys, this one included (how long the gateway waits)."""

    key_ids: tuple[str, ...]
    master_sae: str
    slave_sae: str
    near_operator: str
    far_operator: str
    borders: int


@dataclass(frozen=True, slots=True)
class Crossed:
    """KM-to-KM, the gateway's KM back to the source of a :class:`CrossBorder`: whether
    every key was acknowledged ``relayed`` (held at the slave's node), else none is."""

    key_ids: tuple[str, ...]
    relayed: bool


def crossing_asked(network: Network, gateway: str, asker: str, asked: CrossBorder) -> str:
    """Why ``gateway`` cannot take keys across as node ``asker`` ``asked`` ("" when it
    can): the asker must be the master SAE's node (the near leg's source) or a gateway (a
    far leg's, at the border before), and both operators must run a domain at the gateway,
    and differ."""
    found = gateways(network)
    master = network.sae.get(asked.master_sae)
    if asker not in found and (master is None or master.node != asker):
        return f"node {asker} is neither the master SAE's node nor a gateway"
    operators = found.get(gateway, ())
    if asked.near_operator == asked.far_operator:
        return "the near and far operators are the same"
    for operator in (asked.near_operator, asked.far_operator):
        if operator not in operators:
            return f"node {gateway} is no gateway of operator {operator}"
    return ""


def interop_kms_id(node: str, operator: str) -> str:
    """The KME identity (certificate ``kme-id:``) of ``operator``'s interop KMS at gateway
    ``node``."""
    return f"{node}.{operator}"


def interop_kms_ids(network: Network, nodes: Iterable[str]) -> list[str]:
    """The KME identities of the interop KMSs at the gateways among ``nodes`` (each needs
    a KME certificate: ``qkdnet pki init`` and ``qkdnet serve`` issue them)."""
    served = set(nodes)
    return [interop_kms_id(g, op) for g, ops in gateways(network).items() if g in served
            for op in ops]


def link_operator(network: Network, a: str, b: str) -> str:
    """The operator running the KM-link between nodes ``a`` and ``b``: that of the marked
    domain holding both ends ("" when none does, or when marked domains of different
    operators both hold them: no border can be told apart there)."""
    found = {d.managed_by for d in network.domains
             if d.managed_by and a in d.nodes and b in d.nodes}
    return found.pop() if len(found) == 1 else ""


def gateways(network: Network) -> dict[str, tuple[str, ...]]:
    """The nodes where domains of different operators meet, each with those operators
    (sorted)."""
    operators: dict[str, set[str]] = {}
    for domain in network.domains:
        if domain.managed_by:
            for node in domain.nodes:
                operators.setdefault(node, set()).add(domain.managed_by)
    return {node: tuple(sorted(ops)) for node, ops in sorted(operators.items())
            if len(ops) > 1}


def border_crossing(network: Network, route: Route) -> BorderCrossing | None:
    """The first place ``route`` passes from one operator's KM-links to another's, None
    when it stays with one operator (or no domain on it is marked)."""
    operator = ""
    for hop in range(route.hops):
        here = link_operator(network, route.nodes[hop], route.nodes[hop + 1])
        if not here:
            continue  # an unmarked KM-link belongs to whoever runs its neighbours
        if operator and here != operator:
            return BorderCrossing(route.nodes[hop],
                                  Route(route.nodes[:hop + 1], route.km_links[:hop]),
                                  Route(route.nodes[hop:], route.km_links[hop:]),
                                  operator, here)
        operator = here
    return None


def border_crossings(network: Network, route: Route) -> list[BorderCrossing]:
    """Every border ``route`` crosses, in order: each one's far leg is split again at the
    next (the last far leg ends at the route's destination)."""
    crossings: list[BorderCrossing] = []
    rest: Route | None = route
    while rest is not None and (crossing := border_crossing(network, rest)) is not None:
        crossings.append(crossing)
        rest = crossing.far
    return crossings


class StagedKeys:
    """A relay's random source (bytes from ``random_bytes``, a CSPRNG) that hands out a
    staged key once, to the next draw of its exact size: how a far leg relays the key it
    received instead of a fresh one."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        self._staged: bytes | None = None

    def __repr__(self) -> str:  # never the staged key
        return f"StagedKeys(staged={self._staged is not None})"

    def stage(self, material: bytes) -> None:
        """Have the next draw of ``len(material)`` bytes give ``material``."""
        self._staged = material

    def clear(self) -> bool:
        """Drop what is staged; whether it was still there (not drawn)."""
        left, self._staged = self._staged is not None, None
        return left

    def __call__(self, size_bytes: int) -> bytes:
        staged, self._staged = self._staged, None
        if staged is not None and len(staged) == size_bytes:
            return staged
        return self._random(size_bytes)
