"""The device catalogue holds the paper's seven types; field draws are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.devices import (
    BACKBONE_DEVICE_TYPES,
    CATALOGUE,
    CV_DEVICE_TYPES,
    DEVICE_TYPES,
    METRO_DEVICE_TYPES,
    device_type,
    device_types,
)
from qkdnet.quantum.field import (
    CV_FIELD,
    DV_FIELD,
    draw_field_params,
    draw_link_fields,
    pessimistic_params,
)
from qkdnet.quantum.params import CVParams, DecoyBB84Params
from qkdnet.quantum.rates import skr

# (repetition rate Hz, detector efficiency, detection) as reported by Chen et al. 2025
PAPER = {
    "I": (625e6, 0.15, "SPD"), "II": (625e6, 0.20, "SPD"), "III": (625e6, 0.10, "SPD"),
    "IV": (312.5e6, 0.15, "SPD"), "V": (40e6, 0.10, "SPD"),
    "VI": (125e6, 0.43, "heterodyne"), "VII": (10e6, 0.6, "homodyne"),
}


@pytest.mark.parametrize("name", list(PAPER))
def test_catalogue_matches_the_paper(name: str) -> None:
    """Rate, detector efficiency and detection scheme of each type are the paper's."""
    rate, efficiency, detection = PAPER[name]
    device = CATALOGUE[name]
    assert device.rep_rate_hz == rate
    if isinstance(device.params, CVParams):
        assert device.params.eta == efficiency and device.params.detection == detection
        assert device.params.v_a == 4.0
    else:
        assert device.params.eta_d == efficiency
    assert device.domain == ("backbone" if name in ("I", "II", "III", "IV") else "metro")


def test_cv_electronic_noise_is_the_papers() -> None:
    """Type VI has v_el 0.2 SNU (local LO), type VII 0.13 SNU (transmitted LO)."""
    assert CATALOGUE["VI"].params.v_el == 0.2  # type: ignore[union-attr]
    assert CATALOGUE["VII"].params.v_el == 0.13  # type: ignore[union-attr]


def test_types_are_named_by_roman_or_arabic_numerals() -> None:
    """``iv``, ``IV`` and ``4`` are the same type; ``all`` gives the seven in order."""
    assert device_type("iv") is device_type("4") is CATALOGUE["IV"]
    assert [d.name for d in device_types(["all"])] == list(CATALOGUE)
    with pytest.raises(ParameterError, match="type=VIII"):
        device_type("VIII")


def test_overrides_change_only_what_they_name() -> None:
    """with_params overrides one parameter and keeps the rest of the calibration."""
    device = CATALOGUE["I"].with_params(mu=0.6)
    assert device.params.mu == 0.6  # type: ignore[union-attr]
    assert device.params.eta_d == CATALOGUE["I"].params.eta_d  # type: ignore[union-attr]


def test_field_draws_repeat_for_a_seed_and_differ_between_seeds() -> None:
    """The same seed gives the same links; another seed gives other links."""
    device = CATALOGUE["II"]
    first = draw_field_params(device, seed=42, size=100)
    again = draw_field_params(device, seed=42, size=100)
    other = draw_field_params(device, seed=43, size=100)
    assert isinstance(first, DecoyBB84Params)
    assert np.array_equal(first.e_d, again.e_d)  # type: ignore[union-attr]
    assert not np.array_equal(first.e_d, other.e_d)  # type: ignore[union-attr]


def test_field_draws_stay_within_the_reported_spread() -> None:
    """Intrinsic QBER 0.5-2%, dark counts 600-1000 Hz, f_EC 1.2-2."""
    draws = draw_field_params(CATALOGUE["I"], seed=1, size=10_000)
    for spread in DV_FIELD:
        values = np.asarray(getattr(draws, spread.name))
        assert values.min() >= min(spread.best, spread.worst)
        assert values.max() <= max(spread.best, spread.worst)
        assert np.ptp(values) > 0.9 * abs(spread.worst - spread.best)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_field_links_sit_between_pessimistic_and_ideal(name: str) -> None:
    """Every field draw gives a rate between the pessimistic corner and the ideal curve."""
    device = CATALOGUE[name]
    loss = np.full(500, 12.0)
    field = skr(device, loss, draw_field_params(device, seed=3, size=500))
    assert np.all(field <= skr(device, 12.0) + 1e-9)
    assert np.all(field >= skr(device, 12.0, pessimistic_params(device)) - 1e-9)


def test_type_names_by_domain_and_family_are_the_papers() -> None:
    """I-IV serve the backbone and V-VII metro networks; VI and VII are CV-QKD."""
    assert DEVICE_TYPES == ("I", "II", "III", "IV", "V", "VI", "VII")
    assert BACKBONE_DEVICE_TYPES == ("I", "II", "III", "IV")
    assert METRO_DEVICE_TYPES == ("V", "VI", "VII")
    assert CV_DEVICE_TYPES == ("VI", "VII")


def test_link_fields_are_drawn_from_their_familys_spread() -> None:
    """Each link gets its own read-only draw with its family's parameters, inside the
    spread, and the same generator state gives the same draws."""
    types = ["I", "VI", "V", "VII", "II"] * 20
    fields = draw_link_fields(types, np.random.default_rng(3))
    assert fields == draw_link_fields(types, np.random.default_rng(3))
    for name, field in zip(types, fields, strict=True):
        spread = CV_FIELD if name in CV_DEVICE_TYPES else DV_FIELD
        assert set(field) == {r.name for r in spread}
        assert all(r.low <= field[r.name] <= r.high for r in spread)
        with pytest.raises(TypeError):
            field["e_d"] = 0.0  # type: ignore[index]
    assert len({f.get("e_d") for f in fields}) > 50  # every link its own draw
