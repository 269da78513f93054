"""Outage timelines: normalising, set arithmetic, chains, ring protection and weekly figures."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qkdnet.management.availability import (
    Interval,
    Outages,
    availability,
    chain_outage,
    clip,
    hours_per_week,
    intersection,
    outages,
    per_window,
    protected_outage,
    total,
    union,
)
from qkdnet.units import WEEK_S

H = 3600.0


def test_overlapping_intervals_are_merged_and_sorted() -> None:
    """Overlapping intervals merge into one; the result is sorted by start."""
    assert outages([(5, 8), (0, 2), (1, 3)]) == (Interval(0, 3), Interval(5, 8))


def test_touching_intervals_are_merged() -> None:
    """Intervals that meet end to start become one interval."""
    assert outages([(0, 1), Interval(1, 2), (2, 4)]) == (Interval(0, 4),)


def test_nested_interval_is_absorbed() -> None:
    """An interval inside another adds nothing."""
    assert outages([(0, 10), (2, 3)]) == (Interval(0, 10),)


@pytest.mark.parametrize(("start", "end"), [(2.0, 1.0), (1.0, 1.0)])
def test_interval_must_end_after_it_starts(start: float, end: float) -> None:
    """An interval whose end is not after its start is refused, naming start and end."""
    with pytest.raises(ValueError, match=r"end=.*start="):
        Interval(start, end)


def test_outages_refuses_a_bad_pair() -> None:
    """A reversed (start, end) pair in the input is refused as well."""
    with pytest.raises(ValueError, match="end"):
        outages([(0, 1), (3, 2)])


def test_empty_timelines() -> None:
    """The empty timeline is allowed: nothing down, availability 1, no hours per week."""
    empty: Outages = outages([])
    assert empty == ()
    assert total(empty) == 0.0
    assert union() == ()
    assert union(empty, empty) == ()
    assert intersection(empty, outages([(0, 5)])) == ()
    assert clip(empty, 0, 10) == ()
    assert availability(empty, 0, WEEK_S) == 1.0
    assert hours_per_week(empty, 3) == [0.0, 0.0, 0.0]


def test_union_by_hand() -> None:
    """[0,2) ∪ [1,4) ∪ [6,7) = [0,4) ∪ [6,7), 5 s in all."""
    u = union(outages([(0, 2), (6, 7)]), outages([(1, 4)]))
    assert u == (Interval(0, 4), Interval(6, 7))
    assert total(u) == 5.0


def test_intersection_by_hand() -> None:
    """([0,4) ∪ [6,10)) ∩ ([3,7) ∪ [9,12)) = [3,4) ∪ [6,7) ∪ [9,10)."""
    a = outages([(0, 4), (6, 10)])
    b = outages([(3, 7), (9, 12)])
    assert intersection(a, b) == (Interval(3, 4), Interval(6, 7), Interval(9, 10))


def test_intersection_of_three_and_of_one() -> None:
    """Three timelines meet only where all three are down; one timeline is itself."""
    a, b, c = outages([(0, 10)]), outages([(2, 8)]), outages([(5, 20)])
    assert intersection(a, b, c) == (Interval(5, 8),)
    assert intersection(a) == a


def test_intersection_needs_a_timeline() -> None:
    """The intersection of no timelines is refused."""
    with pytest.raises(ValueError, match="timelines"):
        intersection()


def test_intervals_that_only_touch_do_not_intersect() -> None:
    """[0,1) and [1,2) share no moment."""
    assert intersection(outages([(0, 1)]), outages([(1, 2)])) == ()


def test_clip_cuts_at_both_ends() -> None:
    """Clipping keeps only the part inside the window, cutting intervals that cross it."""
    t = outages([(0, 3), (5, 6), (8, 12)])
    assert clip(t, 2, 10) == (Interval(2, 3), Interval(5, 6), Interval(8, 10))
    assert clip(t, 3, 5) == ()
    assert clip(t, 10, 2) == ()


def test_chain_of_three_links_is_down_for_sum_minus_overlaps() -> None:
    """A chain is down when any link is: 2 h + 1 h + 2 h minus 1 h of overlap = 4 h."""
    links = {
        "a": outages([(0 * H, 2 * H)]),
        "b": outages([(1 * H, 2 * H)]),      # inside a's outage: overlap 1 h
        "c": outages([(5 * H, 7 * H)]),
    }
    down = chain_outage(links, ["a", "b", "c"])
    assert down == (Interval(0, 2 * H), Interval(5 * H, 7 * H))
    assert total(down) == 4 * H


def test_link_without_record_counts_as_up() -> None:
    """A KM-link absent from the outage records never takes the chain down."""
    assert chain_outage({"a": outages([(0, 1)])}, ["a", "z"]) == (Interval(0, 1),)


def test_ring_protected_service_is_down_only_when_both_paths_are() -> None:
    """Path A down 1–3 h and path B down 2–5 h: the service is down 2–3 h only."""
    links = {"a1": outages([(1 * H, 3 * H)]), "b1": outages([(2 * H, 4 * H)]),
             "b2": outages([(3 * H, 5 * H)])}
    down = protected_outage(links, [("a1",), ("b1", "b2")])
    assert down == (Interval(2 * H, 3 * H),)
    assert total(down) == 1 * H


def test_protected_service_with_disjoint_failures_never_fails() -> None:
    """Paths that fail at different times leave the service up, like Beijing–Wuhan."""
    links = {"a": outages([(0, H)]), "b": outages([(2 * H, 3 * H)])}
    assert protected_outage(links, [["a"], ["b"]]) == ()


def test_protected_service_needs_a_path() -> None:
    """A service with no path at all is refused."""
    with pytest.raises(ValueError, match="paths"):
        protected_outage({}, [])


def test_outage_spanning_a_week_boundary_is_split() -> None:
    """An outage from 1 h before to 0.5 h after the end of week 1 counts 1 h and 0.5 h."""
    t = outages([(WEEK_S - H, WEEK_S + 0.5 * H)])
    assert hours_per_week(t, 3) == pytest.approx([1.0, 0.5, 0.0])


def test_per_window_with_offset_start() -> None:
    """Windows start at ``start``; outages before it are not counted."""
    t = outages([(0, 10), (15, 25)])
    assert per_window(t, 5, 10, 2) == [5.0, 10.0]


@pytest.mark.parametrize(("window_s", "count"), [(0.0, 1), (-1.0, 1), (1.0, -1)])
def test_per_window_refuses_bad_windows(window_s: float, count: int) -> None:
    """Window length must be positive and the count not negative."""
    with pytest.raises(ValueError):
        per_window((), 0, window_s, count)


def test_availability_of_one_and_a_half_hours_down_in_a_week() -> None:
    """1.5 h down in a 168 h week gives 1 − 1.5/168."""
    t = outages([(10 * H, 11.5 * H)])
    assert availability(t, 0, WEEK_S) == pytest.approx(1 - 1.5 / 168)


def test_availability_counts_only_the_window() -> None:
    """Outages outside the window do not lower availability; a window fully down gives 0."""
    t = outages([(0, 10), (20, 30)])
    assert availability(t, 10, 20) == 1.0
    assert availability(t, 0, 10) == 0.0


def test_availability_refuses_an_empty_window() -> None:
    """The window must end after it starts."""
    with pytest.raises(ValueError, match="end"):
        availability((), 5, 5)


_intervals = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(1, 200)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=12,
)


@given(_intervals, _intervals)
def test_inclusion_exclusion(a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]]) -> None:
    """total(a ∪ b) = total(a) + total(b) − total(a ∩ b) for any two timelines."""
    a, b = outages(a_raw), outages(b_raw)
    expected = total(a) + total(b) - total(intersection(a, b))
    assert total(union(a, b)) == pytest.approx(expected)


@given(_intervals, st.integers(-100, 1200), st.integers(1, 300), st.integers(0, 8))
def test_per_window_sums_to_the_clipped_total(
    raw: list[tuple[int, int]], start: int, window_s: int, count: int
) -> None:
    """The windows' outage seconds add up to the total of the timeline clipped to them."""
    t = outages(raw)
    clipped = clip(t, start, start + count * window_s)
    assert sum(per_window(t, start, window_s, count)) == pytest.approx(total(clipped))


@given(_intervals)
def test_normalised_timelines_are_sorted_and_apart(raw: list[tuple[int, int]]) -> None:
    """A normalised timeline is sorted with a gap between consecutive intervals."""
    t = outages(raw)
    assert all(x.end < y.start for x, y in pairwise(t))
    assert outages(t) == t
