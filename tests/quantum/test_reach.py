"""Maximum tolerable loss and its inverse, loss at a target rate."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.devices import CATALOGUE, device_type
from qkdnet.quantum.field import draw_field_params
from qkdnet.quantum.rates import skr
from qkdnet.quantum.reach import loss_at_rate, max_tolerable_loss


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_max_tolerable_loss_is_where_the_rate_reaches_zero(name: str) -> None:
    """Half a dB short of the limit there is key; half a dB beyond there is none."""
    device = CATALOGUE[name]
    limit = float(max_tolerable_loss(device))
    assert float(skr(device, limit - 0.5)) > 0
    assert float(skr(device, limit + 0.5)) == 0


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_loss_at_rate_inverts_the_rate(name: str) -> None:
    """The rate at the loss found for 10 kbit/s is 10 kbit/s."""
    device = CATALOGUE[name]
    loss = loss_at_rate(device, 1e4)
    assert float(skr(device, loss)) == pytest.approx(1e4, rel=1e-6)


def test_reach_is_vectorised_over_links() -> None:
    """Per-link field parameters give per-link limits, equal to one-by-one searches."""
    device = device_type("III")
    field = draw_field_params(device, seed=11, size=4)
    together = max_tolerable_loss(device, field)
    for i in range(4):
        single = field.replace(**{n: np.asarray(getattr(field, n))[i]
                                  for n in ("e_d", "dark_count_hz", "f_ec")})
        assert float(max_tolerable_loss(device, single)) == pytest.approx(together[i], abs=1e-9)


def test_unreachable_target_gives_nan() -> None:
    """No loss gives a rate above the lossless rate."""
    assert np.isnan(loss_at_rate(device_type("V"), 1e12))


@pytest.mark.parametrize("name", ["VI", "VII"])
def test_cv_reach_is_that_of_deployed_gg02_systems(name: str) -> None:
    """Types VI and VII reach 15-25 dB asymptotically, less at 1e10-symbol blocks."""
    device = device_type(name)
    asymptotic = float(max_tolerable_loss(device))
    finite = float(max_tolerable_loss(device, block_size=1e10))
    assert 15.0 <= asymptotic <= 25.0
    assert finite < asymptotic


def test_finite_blocks_shorten_the_reach() -> None:
    """A finite block tolerates less loss than the asymptotic limit."""
    device = device_type("I")
    assert max_tolerable_loss(device, block_size=1e8) < max_tolerable_loss(device)
