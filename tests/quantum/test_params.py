"""Parameter sets refuse values outside their ranges, naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.quantum.channel import transmittance
from qkdnet.quantum.params import CVParams, DecoyBB84Params


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"e_d": 0.5}, "e_d"),
        ({"e_d": -0.01}, "e_d"),
        ({"nu": 0.5}, "nu"),
        ({"nu": 0.7, "mu": 0.6}, "nu"),
        ({"p_mu": 0.9}, "p_mu+p_nu+p_vac"),
        ({"eta_d": 1.5}, "eta_d"),
        ({"f_ec": 0.9}, "f_ec"),
        ({"n_detectors": 2.5}, "n_detectors"),
        ({"dark_count_hz": 2e9}, "dark_count_hz"),
        ({"rep_rate_hz": 0.0}, "rep_rate_hz"),
    ],
)
def test_bad_dv_parameter_is_named_with_its_range(changes: dict[str, float], name: str) -> None:
    """Each impossible DV value raises ParameterError that names the parameter."""
    with pytest.raises(ParameterError) as error:
        DecoyBB84Params(**changes)  # type: ignore[arg-type]
    assert error.value.name == name
    assert str(error.value).startswith(f"{name}=")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("changes", "name"),
    [({"beta": 1.2}, "beta"), ({"xi": -0.1}, "xi"), ({"xi_bob": -1e-3}, "xi_bob"),
     ({"eta": 0.0}, "eta"),
     ({"v_a": -1.0}, "v_a"), ({"detection": "photon counting"}, "detection")],
)
def test_bad_cv_parameter_is_named(changes: dict[str, object], name: str) -> None:
    """Each impossible CV value raises ParameterError that names the parameter."""
    with pytest.raises(ParameterError) as error:
        CVParams(**changes)  # type: ignore[arg-type]
    assert error.value.name == name


def test_an_array_with_one_bad_element_is_refused_naming_that_element() -> None:
    """Per-link arrays are checked element by element."""
    with pytest.raises(ParameterError, match=r"e_d=0\.6"):
        DecoyBB84Params(e_d=np.array([0.01, 0.6, 0.02]))


def test_replace_refuses_unknown_names_and_lists_known_ones() -> None:
    """A typo in an override is an error, not a silent no-op."""
    with pytest.raises(ParameterError, match=r"known: .*mu"):
        DecoyBB84Params().replace(muu=0.4)


def test_negative_loss_is_refused() -> None:
    """Loss is attenuation: it cannot be negative."""
    with pytest.raises(ParameterError, match="loss_db=-3"):
        transmittance([1.0, -3.0])


def test_background_yield_from_dark_counts() -> None:
    """Y0 = 1 - (1 - p_d)^n: four detectors at 600 Hz and 1 ns give about 2.4e-6."""
    assert float(DecoyBB84Params().y0) == pytest.approx(4 * 600e-9, rel=1e-5)


def test_shape_is_the_broadcast_of_array_fields() -> None:
    """A parameter set knows how many links it describes."""
    params = DecoyBB84Params(e_d=np.full(5, 0.01), f_ec=np.full((1,), 1.3))
    assert params.shape == (5,)
