"""Random fibre and equipment faults: reproducible, well-formed, calibrated to CN-QCN."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest

from qkdnet.errors import ParameterError
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network, Node, NodeKind, QKDLink
from qkdnet.topology.paths import path_links, shortest_path
from qkdnet.twin.faults import (
    Fault,
    FaultModel,
    draw_faults,
    link_outages,
    scripted_fault,
)
from qkdnet.units import DAY_S, HOUR_S

TEN_WEEKS_S = 70 * DAY_S


@pytest.fixture(scope="module")
def cn_qcn() -> Network:
    return build_cn_qcn()


def _two_links() -> Network:
    nodes = tuple(Node(n, n, NodeKind.BACKBONE_RELAY, 0.0, float(i))
                  for i, n in enumerate("abc"))
    return Network("pair", nodes, (QKDLink("short", "a", "b", 20.0, 5.0, "I"),
                                   QKDLink("long", "b", "c", 120.0, 25.0, "I")))


def test_same_seed_gives_same_faults_and_another_seed_others(cn_qcn: Network) -> None:
    """A seed fixes the faults; changing it changes them."""
    first = draw_faults(cn_qcn, TEN_WEEKS_S, seed=7)
    assert first == draw_faults(cn_qcn, TEN_WEEKS_S, seed=7)
    assert first != draw_faults(cn_qcn, TEN_WEEKS_S, seed=8)
    assert first


def test_faults_lie_inside_the_run_sorted_by_start(cn_qcn: Network) -> None:
    """Every fault starts and ends within [0, duration] and the list is in start order."""
    model = FaultModel(maintenance_period_s=30 * DAY_S)
    faults = draw_faults(cn_qcn, TEN_WEEKS_S, seed=3, model=model)
    assert all(0 <= f.start_s <= f.end_s <= TEN_WEEKS_S for f in faults)
    assert [f.start_s for f in faults] == sorted(f.start_s for f in faults)
    assert {f.kind for f in faults} == {"fibre", "equipment", "maintenance"}


def test_a_link_is_never_failed_twice_at_once(cn_qcn: Network) -> None:
    """Per link, fault intervals do not overlap (a fault during a repair is skipped)."""
    model = FaultModel(equipment_failures_per_link_year=200.0, maintenance_period_s=7 * DAY_S)
    faults = draw_faults(cn_qcn, TEN_WEEKS_S, seed=5, model=model)
    by_link: dict[str, list[Fault]] = {}
    for f in faults:
        by_link.setdefault(f.link, []).append(f)
    for own in by_link.values():
        assert all(a.end_s <= b.start_s for a, b in pairwise(own))
    assert sum(len(v) for v in link_outages(faults).values()) <= len(faults)


def test_only_the_chosen_links_fail(cn_qcn: Network) -> None:
    """``links`` restricts the draw; an unknown id is a ParameterError naming ``links``."""
    chosen = {lk.id for lk in cn_qcn.qkd_links[:10]}
    model = FaultModel(equipment_failures_per_link_year=100.0)
    faults = draw_faults(cn_qcn, TEN_WEEKS_S, seed=1, model=model, links=chosen)
    assert faults and {f.link for f in faults} <= chosen
    with pytest.raises(ParameterError, match="links"):
        draw_faults(cn_qcn, TEN_WEEKS_S, seed=1, links=["no-such-link"])


def test_longer_links_get_more_fibre_cuts() -> None:
    """Cuts scale with length: a 120 km link is cut about six times as often as a 20 km one."""
    model = FaultModel(equipment_failures_per_link_year=0.0)
    faults = draw_faults(_two_links(), 200 * 365.25 * DAY_S, seed=11, model=model)
    short = sum(f.link == "short" for f in faults)
    long = sum(f.link == "long" for f in faults)
    assert 2 * short < long
    assert all(f.kind == "fibre" for f in faults)


def test_harbin_beijing_downtime_matches_the_paper_scale(cn_qcn: Network) -> None:
    """The 23-link Harbin-Beijing chain loses 2-10 h per 10 weeks; outages mostly 0.1-2 h."""
    path = shortest_path(cn_qcn, "harbin", "beijing", weight="hops")
    chain = [lk.id for lk in path_links(cn_qcn, path)]
    totals, singles = [], []
    for seed in range(200):
        faults = draw_faults(cn_qcn, TEN_WEEKS_S, seed=seed, links=chain)
        totals.append(sum(f.duration_s for f in faults) / HOUR_S)
        singles.extend(f.duration_s / HOUR_S for f in faults)
    assert 2.0 < statistics.mean(totals) < 10.0
    assert 0.1 < statistics.median(singles) < 2.0


def test_link_outages_merge_per_link() -> None:
    """Overlapping or touching intervals of one link merge; links stay apart."""
    faults = [scripted_fault("x", 10.0, 5.0), scripted_fault("x", 12.0, 10.0),
              scripted_fault("x", 22.0, 1.0), scripted_fault("x", 40.0, 1.0),
              scripted_fault("y", 0.0, 1.0)]
    assert link_outages(faults) == {"x": [(10.0, 23.0), (40.0, 41.0)], "y": [(0.0, 1.0)]}


def test_scripted_fault_is_built_and_validated() -> None:
    """A scripted fault spans start to start + duration; negative values name their field."""
    assert scripted_fault("l1", 60.0, 30.0) == Fault("l1", "scripted", 60.0, 90.0)
    with pytest.raises(ParameterError, match="start_s"):
        scripted_fault("l1", -1.0, 30.0)
    with pytest.raises(ParameterError, match="duration_s"):
        scripted_fault("l1", 0.0, -5.0)


def test_bad_models_and_durations_are_refused(cn_qcn: Network) -> None:
    """Negative rates, non-positive medians and negative run lengths are ParameterErrors."""
    with pytest.raises(ParameterError, match="fibre_cuts_per_km_year"):
        FaultModel(fibre_cuts_per_km_year=-1.0)
    with pytest.raises(ParameterError, match="equipment_repair_median_s"):
        FaultModel(equipment_repair_median_s=0.0)
    with pytest.raises(ParameterError, match="duration_s"):
        draw_faults(cn_qcn, -1.0, seed=0)
