"""Telemetry batches: shapes and ranges are checked, the columns are read-only copies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.management.telemetry import (
    IdsCache,
    KMLinkTelemetry,
    LinkTelemetry,
    NodeHealth,
    join,
)


def _links(n: int = 3) -> LinkTelemetry:
    return LinkTelemetry(5.0, [f"l{i}" for i in range(n)], np.arange(n, dtype=float),
                         np.full(n, 0.02), np.ones(n, bool), np.zeros(n, bool))


def test_rows_and_normalised_columns() -> None:
    """Lists become typed numpy arrays and a tuple of ids; rows counts the records."""
    b = LinkTelemetry(1, ["a", "b"], [1, 2], [0.01, math.nan], [1, 0], [0, 1])
    assert b.rows == 2 and b.ids == ("a", "b") and b.t == 1.0
    assert b.skr_bps.dtype == np.float64 and b.up.dtype == np.bool_
    assert b.up.tolist() == [True, False]
    assert KMLinkTelemetry(0.0, ("k",), [8.0], [1.0], [True]).rows == 1
    assert NodeHealth(0.0, ("n1", "n2"), [True, False]).rows == 2


def test_columns_are_read_only_copies() -> None:
    """The caller may reuse its buffer; nobody can change a batch after the fact."""
    skr = np.array([1.0, 2.0])
    b = LinkTelemetry(0.0, ("a", "b"), skr, [0.0, 0.0], [True, True], [False, False])
    skr[0] = 99.0
    assert b.skr_bps[0] == 1.0
    with pytest.raises(ValueError):
        b.skr_bps[0] = 5.0


@pytest.mark.parametrize("field", ["skr_bps", "qber", "up", "detector_current_alarm"])
def test_wrong_shape_names_the_field(field: str) -> None:
    """A column that is not one value per id is refused, naming the column."""
    good = _links()
    kwargs = {f: getattr(good, f) for f in ("skr_bps", "qber", "up", "detector_current_alarm")}
    kwargs[field] = kwargs[field][:2]
    with pytest.raises(ParameterError) as err:
        LinkTelemetry(0.0, good.ids, **kwargs)
    assert err.value.name == field


@pytest.mark.parametrize(("field", "value"), [("skr_bps", -1.0), ("skr_bps", math.nan),
                                              ("qber", 1.5), ("qber", -0.1)])
def test_out_of_range_values_name_the_field(field: str, value: float) -> None:
    """SKR must be finite and >= 0; QBER a ratio in [0, 1] (NaN: not measured)."""
    skr, qber = [1.0, 1.0], [0.01, 0.01]
    {"skr_bps": skr, "qber": qber}[field][1] = value
    with pytest.raises(ParameterError) as err:
        LinkTelemetry(0.0, ("a", "b"), skr, qber, [True, True], [False, False])
    assert err.value.name == field


def test_km_and_node_batches_check_their_fields() -> None:
    """Key amount and refill rate are >= 0; node health is one flag per node."""
    with pytest.raises(ParameterError, match="key_bits"):
        KMLinkTelemetry(0.0, ("k",), [-1.0], [0.0], [True])
    with pytest.raises(ParameterError, match="rate_bps"):
        KMLinkTelemetry(0.0, ("k",), [1.0], [math.inf], [True])
    with pytest.raises(ParameterError, match="ok"):
        NodeHealth(0.0, ("n1", "n2"), [True])


def test_duplicate_ids_and_bad_time_are_refused() -> None:
    """Each id once per batch; the time is a finite number of seconds."""
    with pytest.raises(ParameterError, match="ids=a"):
        NodeHealth(0.0, ("a", "b", "a"), [True, True, True])
    with pytest.raises(ParameterError, match="t="):
        NodeHealth(math.nan, ("a",), [True])


def test_take_keeps_the_chosen_rows_in_order() -> None:
    """take() gives a batch of the same kind with just those rows."""
    b = _links(4).take(np.array([3, 1], dtype=np.intp))
    assert isinstance(b, LinkTelemetry)
    assert b.ids == ("l3", "l1") and b.skr_bps.tolist() == [3.0, 1.0] and b.t == 5.0


def test_taken_rows_are_read_only_and_keep_given_ids() -> None:
    """take() with the rows' ids (an EMS keeps them) gives those ids; its columns are
    read-only like any batch's."""
    b = _links(4).take(np.array([2, 0], dtype=np.intp), ("l2", "l0"))
    assert b.ids == ("l2", "l0") and b.qber.tolist() == [0.02, 0.02]
    with pytest.raises(ValueError):
        b.skr_bps[0] = 1.0


def test_duplicate_ids_are_refused_even_after_a_good_batch() -> None:
    """The check of a tuple of ids is remembered only for that tuple, not for its values."""
    ids = ("a", "b")
    NodeHealth(0.0, ids, [True, True])
    NodeHealth(1.0, ids, [True, True])  # the same tuple again
    with pytest.raises(ParameterError, match="ids=a"):
        NodeHealth(2.0, ("a", "a"), [True, True])


def test_an_ids_cache_finds_equal_tuples_and_forgets_beyond_its_limit() -> None:
    """A value kept for a tuple of ids is found for that tuple and for an equal one; past
    ``limit`` tuples the cache starts afresh."""
    cache: IdsCache[int] = IdsCache(limit=2)
    first = ("a", "b")
    assert cache.get(first) is None
    cache.put(first, 1)
    assert cache.get(first) == 1 and cache.get(tuple(["a", "b"])) == 1
    cache.put(("c",), 2)
    cache.put(("d",), 3)
    assert cache.get(("d",)) == 3 and cache.get(("c",)) is None


def test_joined_batches_keep_their_rows_in_order() -> None:
    """join() puts batches of one kind and time one after the other."""
    a = NodeHealth(3.0, ("a",), [True])
    b = NodeHealth(3.0, ("b", "c"), [False, True])
    joined = join([a, b], ("a", "b", "c"))
    assert isinstance(joined, NodeHealth) and joined.t == 3.0
    assert joined.ids == ("a", "b", "c") and joined.ok.tolist() == [True, False, True]


def test_only_batches_of_one_kind_and_time_are_joined() -> None:
    """Another time, another kind or ids that do not match the rows are refused."""
    a = NodeHealth(3.0, ("a",), [True])
    with pytest.raises(ParameterError, match="one kind, one time"):
        join([a, NodeHealth(4.0, ("b",), [True])], ("a", "b"))
    with pytest.raises(ParameterError, match="one kind, one time"):
        join([a, KMLinkTelemetry(3.0, ("k",), [1.0], [1.0], [True])], ("a", "k"))
    with pytest.raises(ParameterError, match="one per row"):
        join([a, NodeHealth(3.0, ("b",), [True])], ("a",))
