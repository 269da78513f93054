"""KM-link key pools as amounts of key: capped deposits, common-share draws along a route,
and accounting in which no bit is lost (made = used + pooled + discarded)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from qkdnet.errors import ParameterError
from qkdnet.twin.pools import KeyPools


def _route(*links: int) -> npt.NDArray[np.intp]:
    return np.array(links, dtype=np.intp)


def test_pools_start_empty_with_nothing_made_used_or_discarded() -> None:
    """A fresh set of pools holds no key and has no history."""
    pools = KeyPools(3, 100.0)
    for counter in (pools.pooled, pools.made, pools.used, pools.discarded):
        assert counter.tolist() == [0.0, 0.0, 0.0]


def test_a_deposit_fills_up_to_capacity_and_discards_the_excess() -> None:
    """What finds no room in a pool at the end of a step is counted as discarded, link by
    link; within the step the demand may use all of the step's key."""
    pools = KeyPools(3, 100.0)
    pools.deposit(np.array([50.0, 150.0, 0.0]))
    assert pools.pooled.tolist() == [50.0, 150.0, 0.0]
    pools.spill()
    assert pools.pooled.tolist() == [50.0, 100.0, 0.0]
    assert pools.discarded.tolist() == [0.0, 50.0, 0.0]
    pools.deposit(np.array([60.0, 10.0, 100.0]))
    pools.spill()
    assert pools.pooled.tolist() == [100.0, 100.0, 100.0]
    assert pools.discarded.tolist() == [10.0, 60.0, 0.0]
    assert pools.made.tolist() == [110.0, 160.0, 100.0]
    assert pools.imbalance().tolist() == [0.0, 0.0, 0.0]


def test_a_draw_the_route_can_afford_is_served_in_full_from_every_hop() -> None:
    """Each link of the route pays the same bits; links off the route keep theirs."""
    pools = KeyPools(4, 1000.0)
    pools.deposit(np.array([500.0, 300.0, 400.0, 200.0]))
    assert pools.draw(_route(0, 2), 150.0) == 1.0
    assert pools.pooled.tolist() == [350.0, 300.0, 250.0, 200.0]
    assert pools.used.tolist() == [150.0, 0.0, 150.0, 0.0]


def test_a_draw_beyond_the_emptiest_pool_takes_the_common_share() -> None:
    """Asking 80 bits of pools holding 100, 40 and 100 serves half: 40 bits per hop."""
    pools = KeyPools(3, 1000.0)
    pools.deposit(np.array([100.0, 40.0, 100.0]))
    assert pools.draw(_route(0, 1, 2), 80.0) == pytest.approx(0.5)
    assert pools.pooled.tolist() == [60.0, 0.0, 60.0]
    assert pools.used.tolist() == [40.0, 40.0, 40.0]


def test_a_route_through_a_dry_pool_gets_nothing_and_takes_nothing() -> None:
    """A dry hop blocks the whole route; the other hops keep their key."""
    pools = KeyPools(3, 1000.0)
    pools.deposit(np.array([100.0, 0.0, 100.0]))
    assert pools.draw(_route(0, 1, 2), 10.0) == 0.0
    assert pools.pooled.tolist() == [100.0, 0.0, 100.0]
    assert pools.used.tolist() == [0.0, 0.0, 0.0]


def test_draws_never_drive_a_pool_negative() -> None:
    """Repeated draws larger than what is left end at an empty pool, not below it."""
    pools = KeyPools(2, 1000.0)
    pools.deposit(np.array([300.0, 700.0]))
    shares = [pools.draw(_route(0, 1), 250.0) for _ in range(4)]
    assert shares == pytest.approx([1.0, 0.2, 0.0, 0.0])
    assert pools.pooled.tolist() == [0.0, 400.0]
    assert (pools.pooled >= 0).all()


def test_an_empty_route_or_an_empty_request_is_served_in_full_for_free() -> None:
    """Source and target on one node need no relay; asking 0 bits costs nothing."""
    pools = KeyPools(2, 100.0)
    assert pools.draw(_route(), 1e9) == 1.0
    assert pools.draw(_route(0, 1), 0.0) == 1.0
    assert pools.used.tolist() == [0.0, 0.0]
    assert pools.pooled.tolist() == [0.0, 0.0]


def test_random_deposits_and_draws_keep_every_bit_accounted_for() -> None:
    """After many steps every pool lies in [0, capacity] and made = used + pooled +
    discarded, with some key discarded and some draws cut short."""
    rng = np.random.default_rng(4)
    pools = KeyPools(6, 5000.0)
    shares = []
    for _ in range(500):
        pools.deposit(rng.uniform(0.0, 3000.0, 6))
        for _ in range(3):
            route = rng.choice(6, size=int(rng.integers(1, 5)), replace=False).astype(np.intp)
            shares.append(pools.draw(route, float(rng.uniform(0.0, 4000.0))))
        pools.spill()
    assert ((pools.pooled >= 0) & (pools.pooled <= 5000.0)).all()
    assert np.allclose(pools.imbalance(), 0.0, atol=1e-9 * pools.made.max())
    assert pools.discarded.sum() > 0 and min(shares) < 1.0 and pools.used.sum() > 0


def test_a_pool_must_hold_something() -> None:
    """A capacity of 0 bits or less is refused naming ``capacity_bits``."""
    with pytest.raises(ParameterError, match="capacity_bits"):
        KeyPools(3, 0.0)


def test_a_share_limited_draw_leaves_the_emptiest_pool_at_zero_not_below() -> None:
    """Rounding must not overdraw: after a draw cut short by a pool of 3.3 bits that pool
    holds 0, and a further draw is served nothing, not a negative share."""
    pools = KeyPools(2, 1000.0)
    pools.deposit(np.array([3.3, 10.0]))
    assert pools.draw(_route(0, 1), 49.0) == pytest.approx(3.3 / 49.0)
    assert pools.pooled.min() >= 0.0
    assert pools.draw(_route(0, 1), 1.0) == 0.0
