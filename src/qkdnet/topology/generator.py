"""Synthetic carrier-like networks of any size, reproducible from a seed.

The shape follows CN-QCN (``cn-qcn.md``): a backbone of access nodes joined by chains of
trusted relays about 70 km apart, a few of the chains closing rings; metro networks of metro
access nodes in a ring or chain hanging off some access nodes; behind each metro access node
an optical switch serving up to 24 user nodes in a star. Units: km, dB, degrees.

Every random number is drawn in bulk with numpy and the records are built from plain lists,
so 100,000 nodes take a second or two; only the short backbone walk and the metro loop run
per item in Python (one step per access node or metro network, not per node).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import BACKBONE_DEVICE_TYPES, METRO_DEVICE_TYPES
from qkdnet.quantum.field import draw_link_fields
from qkdnet.topology.model import (
    Domain,
    DomainKind,
    KMLink,
    KMLinkKind,
    Multiplexing,
    Network,
    Node,
    NodeKind,
    QKDLink,
    Region,
)
from qkdnet.topology.validation import validated

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MIN_NODES = 10
#: Nodes per backbone access node: CN-QCN has 41 access nodes among ~1,000 nodes.
NODES_PER_ACCESS = 24
#: Relays per backbone chain are drawn from 0..5 (mean 2.5: CN-QCN has 104 relays on ~43
#: chains).
MAX_RELAYS = 5
#: One backbone ring per this many access nodes (CN-QCN: 2 rings, 41 access nodes).
ACCESS_PER_RING = 12
#: One management region per this many access nodes.
ACCESS_PER_REGION = 20
#: A metro access node and its users: 1 + about 20 users (CN-QCN: 36 serve 800+ users).
NODES_PER_METRO_ACCESS = 21
MAX_USERS = 24
#: Metro access nodes per metro network on average (CN-QCN: 36 in 20 metro networks).
METRO_ACCESS_PER_METRO = 1.8
#: Uniform ranges: link lengths (km) per tier, fibre attenuation (dB/km), connectors (dB).
SPAN_KM = {"backbone": (40.0, 100.0), "metro": (5.0, 30.0), "user": (2.0, 20.0)}
ATTENUATION_DB_KM = (0.2, 0.3)
CONNECTOR_DB = (0.5, 1.5)
#: Fibre route over straight line (the reference's ~1.39); km per degree of latitude.
FIBRE_FACTOR = 1.39
KM_PER_DEGREE = 111.2
#: The area the backbone wanders in (degrees), and the scatter of metro and user sites.
LAT_RANGE = (20.0, 50.0)
LON_RANGE = (100.0, 130.0)
METRO_SCATTER_DEG = 0.15
USER_SCATTER_DEG = 0.05

_TIERS = ("backbone", "metro", "user")
_BACKBONE, _METRO, _USER = 0, 1, 2


@dataclass(frozen=True)
class _Backbone:
    """Access nodes as a tree plus ring chords; every tree edge or chord is a relay chain."""

    access: int
    parent: IntArray  # tree parent of each access node; -1 for the root
    chain_a: IntArray  # access node each chain starts at
    chain_b: IntArray  # access node each chain ends at
    relays: IntArray  # relays on each chain

    @property
    def hops(self) -> IntArray:
        """QKD-links on each chain."""
        return self.relays + 1


@dataclass(frozen=True)
class _Metros:
    """Metro networks: where they attach and what is in them."""

    host: IntArray  # backbone access node of each metro network
    size: IntArray  # metro access nodes in each
    ring: npt.NDArray[np.bool_]  # closed into a ring through the host
    users: IntArray  # users behind each metro access node


@dataclass(frozen=True)
class _Links:
    """All QKD-links as node indexes; backbone first (chain by chain), then metro, user."""

    a: IntArray
    b: IntArray
    tier: IntArray
    time_share: FloatArray


def generate_network(nodes: int, seed: int) -> Network:
    """A validated carrier-like network of exactly ``nodes`` nodes, the same for the same
    ``seed``.

    Node ids: ``a<i>`` backbone access, ``r<i>`` relay, ``m<i>`` metro access, ``u<i>`` user.
    QKD-links ``bl``/``ml``/``ul<i>`` (backbone, metro, user); one direct KM-link ``k<link>``
    per QKD-link and one remote KM-link ``rk<i>`` per backbone chain that has relays (a chain
    without relays is one QKD-link, already served by its direct KM-link).
    """
    if nodes < MIN_NODES:
        raise ParameterError("--nodes", nodes, f"must be >= {MIN_NODES}")
    if seed < 0:
        raise ParameterError("--seed", seed, "must be >= 0")
    rng = np.random.default_rng(seed)
    backbone = _plan_backbone(nodes, rng)
    metros = _plan_metros(nodes - backbone.access - int(backbone.relays.sum()),
                          backbone.access, rng)
    return validated(_build(nodes, seed, backbone, metros, rng))


# --- the integer skeleton -------------------------------------------------------------


def _plan_backbone(nodes: int, rng: np.random.Generator) -> _Backbone:
    access = max(2, round(nodes / NODES_PER_ACCESS))
    parent = _tree_parents(access, rng)
    chord_a, chord_b = _ring_chords(parent, rng)
    chain_a = np.concatenate((parent[1:], chord_a))
    chain_b = np.concatenate((np.arange(1, access), chord_b))
    relays = rng.integers(0, MAX_RELAYS + 1, chain_a.size)
    # Leave room for at least one metro access node and one user.
    _trim(relays, nodes - access - 2)
    return _Backbone(access, parent, chain_a, chain_b, relays)


def _tree_parents(access: int, rng: np.random.Generator) -> IntArray:
    """Parent of each access node: mostly the previous one (long corridors), otherwise one
    of the few before it (branches)."""
    i = np.arange(access)
    low = np.maximum(0, i - 8)
    branch = low + (rng.random(access) * (i - low)).astype(np.int64)
    parent = np.where(rng.random(access) < 0.6, i - 1, branch)
    parent[0] = -1
    return parent


def _ring_chords(parent: IntArray, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Chains that close rings: from an ancestor 2-4 tree levels up down to the node.

    Such a pair is never a tree edge and distinct nodes give distinct pairs, so no two
    chains join the same access nodes.
    """
    candidates = np.flatnonzero(parent >= 1)
    count = min(candidates.size, max(1, round(parent.size / ACCESS_PER_RING)))
    ends = np.sort(rng.choice(candidates, count, replace=False)) if count else candidates
    levels = rng.integers(2, 5, ends.size)
    starts = [_ancestor(parent, int(e), int(k)) for e, k in zip(ends, levels, strict=True)]
    return np.array(starts, dtype=np.int64), ends.astype(np.int64)


def _ancestor(parent: IntArray, node: int, levels: int) -> int:
    for _ in range(levels):
        if parent[node] < 0:
            break
        node = int(parent[node])
    return node


def _trim(counts: IntArray, budget: int) -> None:
    """Lower the largest counts in place until they sum to at most ``budget`` (only tiny
    networks need it)."""
    while counts.sum() > budget:
        counts[int(np.argmax(counts))] -= 1


def _plan_metros(budget: int, access: int, rng: np.random.Generator) -> _Metros:
    """Metro networks using exactly ``budget`` nodes (metro access nodes plus users)."""
    count = max(1, math.ceil(budget / (MAX_USERS + 1)), round(budget / NODES_PER_METRO_ACCESS))
    users = _spread(budget - count, count, rng)
    networks = min(access, max(1, round(count / METRO_ACCESS_PER_METRO)))
    size = 1 + rng.multinomial(count - networks, np.full(networks, 1 / networks))
    host = np.sort(rng.choice(access, networks, replace=False))
    ring = (size >= 2) & (rng.random(networks) < 0.5)
    return _Metros(host.astype(np.int64), size.astype(np.int64), ring, users)


def _spread(total: int, bins: int, rng: np.random.Generator) -> IntArray:
    """``bins`` counts in [1, MAX_USERS] summing to ``total`` (needs bins <= total <=
    MAX_USERS * bins), roughly proportional to uniform draws so switches differ in load."""
    share = rng.uniform(8, MAX_USERS, bins)
    counts: IntArray = np.clip(np.floor(share * total / share.sum()), 1, MAX_USERS).astype(
        np.int64)
    while (gap := total - int(counts.sum())) != 0:
        room = np.flatnonzero(counts < MAX_USERS if gap > 0 else counts > 1)
        pick = rng.choice(room, min(abs(gap), room.size), replace=False)
        counts[pick] += 1 if gap > 0 else -1
    return counts


# --- links ----------------------------------------------------------------------------


def _links(backbone: _Backbone, metros: _Metros) -> _Links:
    relay_base = backbone.access
    metro_base = relay_base + int(backbone.relays.sum())
    user_base = metro_base + int(metros.size.sum())
    parts = [
        _backbone_links(backbone, relay_base),
        _metro_links(metros, metro_base),
        _user_links(metros, metro_base, user_base),
    ]
    a, b, share = (np.concatenate([p[k] for p in parts]) for k in range(3))
    tier = np.repeat([_BACKBONE, _METRO, _USER], [p[0].size for p in parts])
    return _Links(a.astype(np.int64), b.astype(np.int64), tier, share.astype(np.float64))


def _chain_of_link(backbone: _Backbone) -> tuple[IntArray, IntArray]:
    """For each backbone link: its chain, and its position along the chain from 0."""
    hops = backbone.hops
    first = np.cumsum(hops) - hops
    chain = np.repeat(np.arange(hops.size), hops)
    return chain, np.arange(chain.size) - first[chain]


def _backbone_links(bb: _Backbone, relay_base: int) -> tuple[IntArray, IntArray, FloatArray]:
    chain, pos = _chain_of_link(bb)
    hops = bb.hops[chain]
    first_relay = (relay_base + np.cumsum(bb.relays) - bb.relays)[chain]

    def node_at(p: IntArray) -> IntArray:
        # chain position 0 is its start, 1..relays its relays in order, relays+1 its end
        inner = np.where(p == hops, bb.chain_b[chain], first_relay + p - 1)
        return np.where(p == 0, bb.chain_a[chain], inner)

    return node_at(pos), node_at(pos + 1), np.ones(chain.size)


def _metro_links(metros: _Metros, metro_base: int) -> tuple[IntArray, IntArray, FloatArray]:
    a: list[int] = []
    b: list[int] = []
    start = metro_base
    for host, size, ring in zip(metros.host.tolist(), metros.size.tolist(),
                                metros.ring.tolist(), strict=True):
        seq = [host, *range(start, start + size)] + ([host] if ring else [])
        a.extend(seq[:-1])
        b.extend(seq[1:])
        start += size
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), np.ones(len(a))


def _user_links(metros: _Metros, metro_base: int,
                user_base: int) -> tuple[IntArray, IntArray, FloatArray]:
    """A star of user links behind each metro access node's switch; each gets 1/n of it."""
    users = metros.users
    a = np.repeat(metro_base + np.arange(users.size), users)
    b = user_base + np.arange(a.size)
    return a, b, 1.0 / np.repeat(users, users)


# --- geography ------------------------------------------------------------------------


def _coordinates(bb: _Backbone, metros: _Metros, lengths_km: FloatArray,
                 rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Latitude and longitude of every node, in node-index order."""
    hops = bb.hops
    chain_km = np.add.reduceat(lengths_km[: int(hops.sum())], np.cumsum(hops) - hops)
    lat, lon = _walk(bb.parent, chain_km, rng)
    r_lat, r_lon = _relay_sites(bb, lat, lon, lengths_km, rng)
    metro_host = np.repeat(metros.host, metros.size)
    m_lat, m_lon = _scatter(lat[metro_host], lon[metro_host], METRO_SCATTER_DEG, rng)
    users = metros.users
    u_lat, u_lon = _scatter(np.repeat(m_lat, users), np.repeat(m_lon, users),
                            USER_SCATTER_DEG, rng)
    return np.concatenate((lat, r_lat, m_lat, u_lat)), np.concatenate((lon, r_lon, m_lon, u_lon))


def _walk(parent: IntArray, chain_km: FloatArray,
          rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Access nodes as a random walk down the tree: each one a straight-line distance of its
    chain's fibre length / FIBRE_FACTOR from its parent, reflected into the area."""
    access = parent.size
    step_deg = chain_km[: access - 1] / FIBRE_FACTOR / KM_PER_DEGREE
    heading = rng.uniform(0, 2 * np.pi, access - 1)
    lat = np.empty(access)
    lon = np.empty(access)
    lat[0], lon[0] = rng.uniform(28, 42), rng.uniform(108, 122)
    for i, p in enumerate(parent[1:].tolist(), start=1):
        d, h = step_deg[i - 1], heading[i - 1]
        lat[i] = _reflect(lat[p] + d * math.cos(h), LAT_RANGE)
        lon[i] = _reflect(lon[p] + d * math.sin(h) / math.cos(math.radians(lat[p])), LON_RANGE)
    return lat, lon


def _reflect(x: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if x < low:
        return min(2 * low - x, high)
    if x > high:
        return max(2 * high - x, low)
    return x


def _relay_sites(bb: _Backbone, lat: FloatArray, lon: FloatArray, lengths_km: FloatArray,
                 rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Relays along the straight line between their chain's ends, spaced as their links."""
    chain, pos = _chain_of_link(bb)
    lengths = lengths_km[: chain.size]
    done_km = np.cumsum(lengths)
    chain_start_km = (done_km - lengths)[pos == 0][chain]
    along = (done_km - chain_start_km) / np.add.reduceat(lengths, np.flatnonzero(pos == 0))[chain]
    ends_at_relay = pos < bb.hops[chain] - 1
    c, f = chain[ends_at_relay], along[ends_at_relay]
    a, b = bb.chain_a[c], bb.chain_b[c]
    return _scatter(lat[a] + f * (lat[b] - lat[a]), lon[a] + f * (lon[b] - lon[a]), 0.05, rng)


def _scatter(lat: FloatArray, lon: FloatArray, deg: float,
             rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Points moved by a normal offset of ``deg`` degrees, kept on the globe."""
    jitter = rng.normal(0, deg, (2, lat.size))
    return np.clip(lat + jitter[0], -90, 90), np.clip(lon + jitter[1], -180, 180)


# --- records --------------------------------------------------------------------------


def _build(nodes: int, seed: int, bb: _Backbone, metros: _Metros,
           rng: np.random.Generator) -> Network:
    links = _links(bb, metros)
    lengths = _draw_lengths(links.tier, rng)
    lat, lon = _coordinates(bb, metros, lengths, rng)
    ids = _node_ids(bb, metros)
    region = _regions_of_nodes(bb, metros)
    qkd = _qkd_links(links, lengths, ids, rng)
    return Network(
        name=f"synthetic-{nodes}-seed{seed}",
        nodes=_nodes(bb, metros, ids, lat, lon, region),
        qkd_links=qkd,
        km_links=_km_links(qkd, bb),
        domains=_domains(bb, metros, ids),
        regions=tuple(Region(f"R{i + 1}", f"Region {i + 1}") for i in range(_region_count(bb))),
        notes=f"Synthetic carrier-like network from qkdnet.topology.generator, seed {seed}.",
    )


def _draw_lengths(tier: IntArray, rng: np.random.Generator) -> FloatArray:
    low = np.array([SPAN_KM[t][0] for t in _TIERS])[tier]
    high = np.array([SPAN_KM[t][1] for t in _TIERS])[tier]
    return np.round(rng.uniform(low, high), 2)


def _counts(bb: _Backbone, metros: _Metros) -> tuple[int, int, int, int]:
    """Access nodes, relays, metro access nodes, users."""
    return bb.access, int(bb.relays.sum()), int(metros.size.sum()), int(metros.users.sum())


def _node_ids(bb: _Backbone, metros: _Metros) -> list[str]:
    counts = _counts(bb, metros)
    return [f"{prefix}{i}" for prefix, n in zip("armu", counts, strict=True) for i in range(n)]


_KINDS = (NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY, NodeKind.METRO_ACCESS,
          NodeKind.USER)
_LABELS = ("Access", "Relay", "Metro access", "User")


def _nodes(bb: _Backbone, metros: _Metros, ids: list[str], lat: FloatArray, lon: FloatArray,
           region: list[str]) -> tuple[Node, ...]:
    counts = _counts(bb, metros)
    kinds = [k for k, n in zip(_KINDS, counts, strict=True) for _ in range(n)]
    names = [f"{label} {i}" for label, n in zip(_LABELS, counts, strict=True) for i in range(n)]
    city = [f"City {i}" for i in _city_of_nodes(bb, metros).tolist()]
    # relays lie between cities
    city[bb.access: bb.access + counts[1]] = [""] * counts[1]
    return tuple(map(Node, ids, names, kinds, lat.tolist(), lon.tolist(), city, region))


def _city_of_nodes(bb: _Backbone, metros: _Metros) -> IntArray:
    """The access node each node belongs to: itself, its chain's end, or its metro's host."""
    chain, pos = _chain_of_link(bb)
    relay_chain = chain[pos < bb.hops[chain] - 1]
    metro_host = np.repeat(metros.host, metros.size)
    return np.concatenate((np.arange(bb.access), bb.chain_b[relay_chain], metro_host,
                           np.repeat(metro_host, metros.users)))


def _region_count(bb: _Backbone) -> int:
    return max(1, round(bb.access / ACCESS_PER_REGION))


def _regions_of_nodes(bb: _Backbone, metros: _Metros) -> list[str]:
    """Regions as consecutive blocks of access nodes (neighbours in the walk), each node
    in its access node's region."""
    region = np.arange(bb.access) * _region_count(bb) // bb.access
    names = [f"R{i + 1}" for i in range(_region_count(bb))]
    return [names[r] for r in region[_city_of_nodes(bb, metros)].tolist()]


def _qkd_links(links: _Links, lengths: FloatArray, ids: list[str],
               rng: np.random.Generator) -> tuple[QKDLink, ...]:
    n = links.a.size
    loss = np.round(lengths * rng.uniform(*ATTENUATION_DB_KM, n) + rng.uniform(*CONNECTOR_DB, n),
                    2)
    types = _draw_types(links.tier, rng)
    fields = draw_link_fields(types, rng)
    prefix = ("bl", "ml", "ul")
    link_ids = [f"{prefix[t]}{i}" for i, t in enumerate(links.tier.tolist())]
    mux = [Multiplexing.OPTICAL_SWITCH if t == _USER else Multiplexing.WDM
           for t in links.tier.tolist()]
    return tuple(map(QKDLink, link_ids, [ids[i] for i in links.a.tolist()],
                     [ids[i] for i in links.b.tolist()], lengths.tolist(), loss.tolist(),
                     types, [1] * n, mux, links.time_share.tolist(), fields))


def _draw_types(tier: IntArray, rng: np.random.Generator) -> list[str]:
    """Backbone links get one of types I-IV, metro and user links one of V-VII."""
    backbone = tier == _BACKBONE
    pick = rng.integers(0, np.where(backbone, len(BACKBONE_DEVICE_TYPES),
                                    len(METRO_DEVICE_TYPES)))
    table = np.array(METRO_DEVICE_TYPES + BACKBONE_DEVICE_TYPES)
    offset = np.where(backbone, len(METRO_DEVICE_TYPES), 0)
    return [str(t) for t in table[offset + pick].tolist()]


def _km_links(qkd: tuple[QKDLink, ...], bb: _Backbone) -> tuple[KMLink, ...]:
    direct = [KMLink(f"k{lk.id}", lk.a, lk.b, KMLinkKind.DIRECT, (lk.id,)) for lk in qkd]
    hops = bb.hops.tolist()
    first = (np.cumsum(bb.hops) - bb.hops).tolist()
    remote = [
        KMLink(f"rk{c}", f"a{a}", f"a{b}", KMLinkKind.REMOTE,
               tuple(lk.id for lk in qkd[first[c]: first[c] + hops[c]]))
        for c, (a, b) in enumerate(zip(bb.chain_a.tolist(), bb.chain_b.tolist(), strict=True))
        if hops[c] > 1
    ]
    return (*direct, *remote)


def _domains(bb: _Backbone, metros: _Metros, ids: list[str]) -> tuple[Domain, ...]:
    _, relays, _, _ = _counts(bb, metros)
    backbone = Domain("backbone", DomainKind.BACKBONE, "Backbone",
                      frozenset(ids[: bb.access + relays]))
    metro_start = bb.access + relays
    user_start = metro_start + int(metros.size.sum())
    metro_ends = metro_start + np.cumsum(metros.size)
    user_ends = user_start + np.cumsum(metros.users)[metro_ends - metro_start - 1]
    out = [backbone]
    m0, u0 = metro_start, user_start
    for g, (host, m1, u1) in enumerate(zip(metros.host.tolist(), metro_ends.tolist(),
                                           user_ends.tolist(), strict=True)):
        members = frozenset([ids[host], *ids[m0:m1], *ids[u0:u1]])
        out.append(Domain(f"metro{g}", DomainKind.METRO, f"Metro network {g} (City {host})",
                          members))
        m0, u0 = m1, u1
    return tuple(out)
