"""Maximum tolerable loss and its inverse, loss at a target rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qkdnet.quantum.devices import CATALOGUE, device_type
from qkdnet.quantum.field import draw_field_params, pessimistic_params
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


def _readme_reach_table() -> dict[str, list[str]]:
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text[text.index("### Reach"):]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


README_ROWS = [
    ("max loss (dB)", None, False, None),
    ("loss at 10 kbit/s (dB)", None, False, 1e4),
    ("max loss, 1e10 symbols (dB)", 1e10, False, None),
    ("loss at 10 kbit/s, 1e10 symbols (dB)", 1e10, False, 1e4),
    ("max loss, field corner (dB)", None, True, None),
    ("max loss, field corner, 1e10 symbols (dB)", 1e10, True, None),
]


@pytest.mark.parametrize(("row", "block", "field", "target"), README_ROWS)
def test_readme_reach_table_is_what_the_code_computes(
    row: str, block: float | None, field: bool, target: float | None
) -> None:
    """Every figure of the README's reach table equals the code's, rounded to 0.1 dB."""
    table = _readme_reach_table()
    names = table["type"]
    for name, cell in zip(names, table[row], strict=True):
        if not cell:
            continue
        device = device_type(name)
        params = pessimistic_params(device) if field else None
        value = loss_at_rate(device, target or 0.0, params, block)
        assert cell == f"{float(value):.1f}", (row, name)
