"""Satellite key pools: filled pass by pass, a satellite KM-link relaying through the
satellite as a trusted relay (each relayed bit spends a bit of both stations' pools), key
flowing between stations never seen in the same pass, the best satellite of several chosen,
refusals that change nothing, and accounting in which no bit is lost."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import NotEnoughKey, PadMismatch, ParameterError
from qkdnet.keys.amount_store import AmountPools
from qkdnet.keys.in_memory import InMemoryKMs
from qkdnet.keys.messages import KeyDelivered, KeyRequest
from qkdnet.keys.pool import UNIT_BITS, UnitRange
from qkdnet.keys.relay_cost import hop_cost_bits, relayable_keys
from qkdnet.keys.relay_crypto import KeyAmounts
from qkdnet.keys.route import Route
from qkdnet.keys.satellite_pools import SatellitePools
from qkdnet.topology.model import KMLink, KMLinkKind

STATIONS = ("gx", "gy", "gz")
SAT_LINKS = [KMLink("sat:gx~gy", "gx", "gy", KMLinkKind.SATELLITE),
             KMLink("sat:gx~gz", "gx", "gz", KMLinkKind.SATELLITE),
             KMLink("sat:gy~gz", "gy", "gz", KMLinkKind.SATELLITE)]
FIBRE = KMLink("km:u~gx", "u", "gx", KMLinkKind.DIRECT, ("u--gx",))


def _sats(satellites: tuple[str, ...] = ("s1",), capacity: float = 1e6) -> SatellitePools:
    return SatellitePools(satellites, STATIONS, SAT_LINKS, capacity)


def test_a_pass_fills_the_pool_it_shares_and_discards_what_does_not_fit() -> None:
    """Pool (satellite, station) grows by the pass's key up to capacity."""
    sats = _sats(capacity=5e5)
    assert sats.fill("s1", "gx", 3e5) == 3e5
    assert sats.fill("s1", "gx", 3e5) == 2e5
    assert sats.pooled[0, 0] == 5e5 and sats.discarded[0, 0] == 1e5
    assert sats.relayable("sat:gx~gy") == 0.0  # gy never saw the satellite


def test_key_flows_between_stations_never_seen_in_the_same_pass() -> None:
    """Passes over gx and gy at different times; a relay gx -> gy spends both pools."""
    sats = _sats()
    sats.fill("s1", "gx", 4e5)
    sats.fill("s1", "gy", 1e5)
    assert sats.relayable("sat:gx~gy") == 1e5
    ranges = sats.send("sat:gx~gy", "gx", 10)
    sats.receive("sat:gx~gy", "gy", ranges)
    assert sats.pooled[0, 0] == 4e5 - 10 * UNIT_BITS
    assert sats.pooled[0, 1] == 1e5 - 10 * UNIT_BITS
    assert sats.relayed[0] == 10 * UNIT_BITS
    assert np.all(sats.imbalance() == 0)


def test_the_relay_goes_through_the_satellite_whose_pools_hold_most() -> None:
    """With two satellites, the one with the larger smaller pool pays."""
    sats = _sats(("s1", "s2"))
    sats.fill("s1", "gx", 9e5)
    sats.fill("s1", "gz", 1e4)
    sats.fill("s2", "gx", 2e5)
    sats.fill("s2", "gz", 2e5)
    assert sats.relayable("sat:gx~gz") == 2e5
    [r] = sats.send("sat:gx~gz", "gz", 4)
    assert r.block == 1 and sats.pooled[1, 0] == 2e5 - 4 * UNIT_BITS
    assert sats.pooled[0, 0] == 9e5


def test_a_short_relay_is_refused_changing_nothing() -> None:
    """NotEnoughKey when no satellite holds the units with both stations."""
    sats = _sats()
    sats.fill("s1", "gx", 1e6)
    sats.fill("s1", "gy", UNIT_BITS)
    with pytest.raises(NotEnoughKey):
        sats.send("sat:gx~gy", "gx", 2)
    assert sats.pooled[0, 1] == UNIT_BITS and sats.used.sum() == 0


def test_the_receiver_takes_only_the_units_named_for_it_once() -> None:
    """Units named for gy cannot be taken at gx, nor twice at gy."""
    sats = _sats()
    sats.fill("s1", "gx", 1e5)
    sats.fill("s1", "gy", 1e5)
    ranges = sats.send("sat:gx~gy", "gx", 1)
    with pytest.raises(PadMismatch):
        sats.receive("sat:gx~gy", "gx", ranges)
    sats.receive("sat:gx~gy", "gy", ranges)
    with pytest.raises(PadMismatch):
        sats.receive("sat:gx~gy", "gy", ranges)
    with pytest.raises(PadMismatch):
        sats.receive("sat:gx~gy", "gy", (UnitRange(0, 99, 1),))


def test_unknown_satellites_stations_and_negative_passes_are_refused() -> None:
    """A pass must name a known satellite and ground station and leave >= 0 bits."""
    sats = _sats()
    with pytest.raises(ParameterError, match="satellite"):
        sats.fill("s9", "gx", 1.0)
    with pytest.raises(ParameterError, match="station"):
        sats.fill("s1", "beijing", 1.0)
    with pytest.raises(ParameterError, match="bits"):
        sats.fill("s1", "gx", -1.0)
    with pytest.raises(ParameterError, match="capacity"):
        SatellitePools(("s1",), STATIONS, SAT_LINKS, 0)


def test_key_managers_relay_over_fibre_then_satellite_charging_every_hop() -> None:
    """A route u -> gx (fibre) -> gz (satellite) through the KMs, each hop paying pad + MAC."""
    sats = _sats()
    sats.fill("s1", "gx", 5e5)
    sats.fill("s1", "gz", 3e5)
    pools = AmountPools([FIBRE], 1e9, sats)
    pools.deposit(np.array([1e6]))
    stores = {n: pools.store(n) for n in ("u", *STATIONS)}
    kms = InMemoryKMs.over(stores, KeyAmounts())
    route = Route(("u", "gx", "gz"), ("km:u~gx", "sat:gx~gz"))
    assert relayable_keys(stores, route, 256, 10**6) == 3e5 // UNIT_BITS - 1
    before = pools.pooled.sum()
    out = kms.submit("u", KeyRequest(("k1",), 256 * 4, "u", "gz", route), 0.0)
    assert any(isinstance(o, KeyDelivered) for o in out)
    cost = hop_cost_bits(256 * 4)
    assert before - pools.pooled.sum() == cost
    assert sats.pooled[0, 0] == 5e5 - cost and sats.pooled[0, 2] == 3e5 - cost
    assert np.all(sats.imbalance() == 0) and np.all(pools.imbalance() == 0)


def test_a_station_holds_no_pool_on_a_satellite_link_it_is_not_an_end_of() -> None:
    """gz asking for sat:gx~gy is refused."""
    sats = _sats()
    pools = AmountPools([FIBRE], 1e9, sats)
    with pytest.raises(NotEnoughKey):
        pools.store("gz").pool_bytes("sat:gx~gy", outbound=True)
    with pytest.raises(NotEnoughKey):
        pools.store("gz").take_outbound("sat:gx~gy", 1)


def test_a_link_neither_fibre_nor_satellite_is_refused() -> None:
    """A KM-link neither fibre nor satellite has no pool."""
    pools = AmountPools([FIBRE], 1e9, _sats())
    with pytest.raises(NotEnoughKey):
        pools.store("u").take_outbound("sat:u~nowhere", 1)
