"""The twin run as a specification: key is conserved on every KM-link, the Beijing-Wuhan
ring rides out a chain fault that a chain cannot, down time is counted to the second,
runs are reproducible from their seed, and the built-in 10-week run meets the figures the
fault and dynamics models were calibrated to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from qkdnet.errors import ScenarioError
from qkdnet.keys.pool import UNIT_BYTES
from qkdnet.keys.relay_cost import key_units
from qkdnet.management.availability import Interval, total
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import KMLinkKind, Network
from qkdnet.topology.paths import path_links, shortest_path
from qkdnet.twin.engine import ServiceResult, TwinResult, run_twin
from qkdnet.twin.scenario import TwinScenario, built_in_scenario, load_twin_scenario
from qkdnet.units import HOUR_S, WEEK_S

Load = Callable[[str], TwinScenario]


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> Load:
    """Write a twin scenario document to a file of its own and load it."""
    folder = tmp_path_factory.mktemp("twin")
    count = iter(range(1_000_000))

    def _load(text: str) -> TwinScenario:
        path = folder / f"twin-{next(count)}.yaml"
        path.write_text(text)
        return load_twin_scenario(path)

    return _load


def _path(net: Network, a: str, b: str) -> list[str]:
    """The QKD-links of the shortest fibre path from ``a`` to ``b``, in order."""
    return [lk.id for lk in path_links(net, shortest_path(net, a, b))]


def _chain_link(net: Network) -> str:
    """The QKD-link leaving Zhengzhou towards Wuhan on the Beijing-Wuhan chain."""
    nodes = shortest_path(net, "beijing", "wuhan")
    at = nodes.index("zhengzhou")
    [link] = path_links(net, nodes[at:at + 2])
    return link.id


def _ring_link(net: Network) -> str:
    """A QKD-link of the ring's Hefei-Wuhan route (via Lu'an and Macheng), off the chain."""
    chain = set(_path(net, "beijing", "wuhan"))
    return next(lk for lk in _path(net, "hefei", "wuhan") if lk not in chain)


def _harbin_link(net: Network) -> str:
    """A QKD-link in the middle of the single Harbin-Beijing chain."""
    chain = _path(net, "harbin", "beijing")
    return chain[len(chain) // 2]


def _segment(result: TwinResult, a: str, b: str) -> ServiceResult:
    [segment] = [s for s in result.segments if (s.source, s.target) == (a, b)]
    assert segment.service.demand.id == f"segment:{a}~{b}"
    return segment.service


def _pad_bits(key_bits: int) -> int:
    """Bits of KM-link key one hop pays to pad one key: its whole units."""
    return key_units(key_bits) * UNIT_BYTES * 8


# --- key conservation -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scarce(load: Load, net: Network) -> TwinResult:
    """A week in which a bulk one-time-pad line asks more than the backbone makes, pools
    are small enough to overflow, and links fail (randomly and as scripted)."""
    return run_twin(load(f"""\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 5
random_faults: true
dynamics: true
pool_bits: 30000000
demands:
  - {{id: bulk, source: beijing-m1, target: shanghai-m1, rate_bps: 60000, key_bits: 4096}}
  - {{id: refresh, source: harbin-m1-u1, target: shenzhen-m1-u1, rate_bps: 256}}
  - {{id: otp, source: guangzhou-m1, target: shenzhen-m1, rate_bps: 8000, key_bits: 4096}}
segments: [harbin, beijing, wuhan]
faults:
  - {{link: {_harbin_link(net)}, at_h: 20, duration_h: 5}}
"""))


def test_key_is_conserved_on_every_link_when_pools_run_dry_and_overflow(
        scarce: TwinResult) -> None:
    """made = used + pooled + discarded on every KM-link, in a run where all four terms
    matter: key is used and discarded, pools run dry, a demand goes short, links fail."""
    made = scarce.made_bits
    assert np.allclose(made, scarce.used_bits + scarce.pooled_bits + scarce.discarded_bits,
                       rtol=1e-9, atol=1e-6)
    assert (made > 0).all()
    assert (scarce.used_bits > 0).any() and (scarce.discarded_bits > 0).any()
    assert ((scarce.pooled_bits >= 0) & (scarce.pooled_bits <= 3e7)).all()
    assert scarce.pool_dry_fraction.max() > 0
    served = {s.demand.id: s.served_fraction for s in scarce.services}
    assert served["bulk"] < 0.5 and served["otp"] > 0.99
    assert scarce.link_outages and len(scarce.faults) > 1


def test_key_used_on_links_is_what_the_services_got_times_their_hops_and_relay_cost(
        load: Load) -> None:
    """With fixed routes, every key a service is served costs each hop of its route its
    pad, and every relay one MAC key: summed over the network, used = sum(hops x (keys x
    pad + relays x MAC key))."""
    result = run_twin(load("""\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 2
random_faults: false
dynamics: true
demands:
  - {id: otp, source: beijing-m1, target: shanghai-m1, rate_bps: 2000, key_bits: 4096}
  - {id: aes, source: harbin-m1-u1, target: shenzhen-m1-u1, rate_bps: 256, key_bits: 256}
  - {id: odd, source: wuhan-m1-u4, target: jinan-m2-u2, rate_bps: 500, key_bits: 1000}
segments: []
"""))
    assert all(s.route_changes == ((0.0, "routed"),) for s in result.services)
    assert all(s.hops > 0 and s.served_bits > 0 for s in result.services)
    expected = sum(s.hops * (s.served_bits / s.demand.key_bits * _pad_bits(s.demand.key_bits)
                             + s.relays * UNIT_BYTES * 8) for s in result.services)
    assert result.used_bits.sum() == pytest.approx(expected, rel=1e-9)
    assert _pad_bits(4096) == 4096 and _pad_bits(1000) == 1024
    assert all(s.relays > 0 for s in result.services)


# --- protection, exact outages ----------------------------------------------------------

RING_DOC = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 3
random_faults: false
dynamics: false
demands: []
segments: [harbin, beijing, wuhan]
faults:
  - {{link: {chain}, at_h: 30.5, duration_h: 4.25}}
  - {{link: {harbin}, at_h: 80.2, duration_h: 1.5}}
"""


@pytest.fixture(scope="module")
def ring(load: Load, net: Network) -> TwinResult:
    """A fault on the Beijing-Wuhan chain (and one on the Harbin-Beijing chain)."""
    return run_twin(load(RING_DOC.format(chain=_chain_link(net), harbin=_harbin_link(net))))


@pytest.fixture(scope="module")
def broken_ring(load: Load, net: Network) -> TwinResult:
    """The same faults, as if the ring's Hefei-Wuhan route had lost a link (fibre only:
    no satellite to protect Beijing-Wuhan)."""
    text = RING_DOC.format(chain=_chain_link(net), harbin=_harbin_link(net))
    return run_twin(load(text + f"remove_links: [{_ring_link(net)}]\nsatellites: []\n"))


def test_with_the_satellite_the_broken_ring_is_protected_through_it(
        load: Load, net: Network) -> None:
    """The broken ring, a Beijing-Wuhan key demand: fibre only, the chain fault cuts it
    for the fault's 4.25 h; with Jinan-1 passing it moves onto the only other way, through
    a satellite KM-link, and loses no time (the watched segment, fibre only, still does)."""
    text = RING_DOC.format(chain=_chain_link(net), harbin=_harbin_link(net)).replace(
        "demands: []", "demands:\n  - {id: bw, source: beijing, target: wuhan, rate_bps: 1}")
    text += f"remove_links: [{_ring_link(net)}]\n"
    fibre, both = run_twin(load(text + "satellites: []\n")), run_twin(load(text))
    assert total(fibre.services[0].outages) == pytest.approx(4.25 * HOUR_S, abs=1.0)
    [service] = both.services
    assert service.outages == () and service.satellite_bits > 0
    assert total(_segment(both, "beijing", "wuhan").outages) == pytest.approx(
        4.25 * HOUR_S, abs=1.0)


def test_the_chosen_links_are_where_the_test_means_them_to_be(net: Network) -> None:
    """The chain link lies between Zhengzhou and Wuhan; the ring link on Hefei-Wuhan
    closes the only other way round, which Harbin-Beijing does not have."""
    chain = _path(net, "beijing", "wuhan")
    assert chain.index(_chain_link(net)) > chain.index("xinxiang--zhengzhou")
    assert _ring_link(net) in _path(net, "hefei", "wuhan")
    g = nx.Graph(net.graph())
    assert nx.edge_connectivity(g, "beijing", "wuhan") == 2
    assert nx.edge_connectivity(g, "harbin", "beijing") == 1
    g.remove_edge(*net.link[_ring_link(net)].ends)
    assert nx.edge_connectivity(g, "beijing", "wuhan") == 1


def test_the_ring_rides_out_a_chain_fault_by_switching_to_its_backup(
        ring: TwinResult) -> None:
    """Beijing-Wuhan loses no time: at the fault it switches to the ring's other side."""
    service = _segment(ring, "beijing", "wuhan")
    assert service.outages == ()
    assert (30.5 * HOUR_S, "switched to backup") in service.route_changes


def test_without_the_ring_the_service_is_down_exactly_as_long_as_the_fault(
        broken_ring: TwinResult) -> None:
    """Remove a ring link: the same fault now cuts Beijing-Wuhan for its 4.25 h, from the
    second it starts to the second it ends."""
    service = _segment(broken_ring, "beijing", "wuhan")
    assert total(service.outages) == pytest.approx(4.25 * HOUR_S, abs=1.0)
    [gap] = service.outages
    assert gap.start == pytest.approx(30.5 * HOUR_S, abs=1.0)
    assert [reason for _, reason in service.route_changes] == ["routed", "no route", "restored"]


def test_a_demand_too_big_for_the_empty_pools_at_the_start_is_routed_once_they_fill(
        load: Load, net: Network) -> None:
    """Pools start empty: a one-time-pad user whose own link makes under 4096 bit/s has no
    route for its 4096-bit keys at first, but one as soon as that link's pool holds key."""
    user, access = "beijing-m2-u2", "beijing-m2"  # a type V link of about 3.6 kbit/s
    [link] = path_links(net, [user, access])
    result = run_twin(load(f"""\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
random_faults: false
dynamics: false
demands:
  - {{id: otp, source: {user}, target: shanghai-m1, rate_bps: 500, key_bits: 4096}}
segments: []
"""))
    assert result.static_bps[result.index[link.id]] < 4096
    [service] = result.services
    assert total(service.outages) < 2 * HOUR_S
    assert service.served_fraction > 0.95


def test_a_chain_segment_is_down_exactly_as_long_as_a_fault_on_it(
        ring: TwinResult, broken_ring: TwinResult) -> None:
    """Harbin-Beijing has no second path: a 1.5 h fault is a 1.5 h outage, whatever the
    ring does."""
    for result in (ring, broken_ring):
        service = _segment(result, "harbin", "beijing")
        assert len(service.outages) == 1
        assert total(service.outages) == pytest.approx(1.5 * HOUR_S, abs=1.0)
        assert service.outages[0].start == pytest.approx(80.2 * HOUR_S, abs=1.0)


# --- reproducibility --------------------------------------------------------------------

SEEDED_DOC = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: {seed}
random_faults: true
dynamics: true
demands:
  - {{id: otp, source: beijing-m1, target: shanghai-m1, rate_bps: 8000, key_bits: 4096}}
  - {{id: aes, source: harbin-m1-u1, target: shenzhen-m1-u1, rate_bps: 256}}
segments: [harbin, beijing, wuhan]
"""


def test_the_same_seed_gives_the_same_run_and_another_seed_another(load: Load) -> None:
    """Rates, faults, outages and key served are a function of the scenario and seed."""
    scenario = load(SEEDED_DOC.format(seed=11))
    first, again = run_twin(scenario), run_twin(scenario)
    other = run_twin(load(SEEDED_DOC.format(seed=12)))
    assert np.array_equal(first.mean_bps, again.mean_bps)
    assert first.faults == again.faults and first.faults
    assert first.link_outages == again.link_outages
    assert first.services == again.services and first.segments == again.segments
    assert [s.served_bits for s in first.services] == [s.served_bits for s in again.services]
    assert np.array_equal(first.used_bits, again.used_bits)
    assert not np.array_equal(first.mean_bps, other.mean_bps)
    assert first.faults != other.faults
    assert [s.served_bits for s in first.services] != [s.served_bits for s in other.services]


def test_a_run_without_alarms_is_the_same_run_with_no_alarms(load: Load) -> None:
    """alarms=False (what a sweep runs) skips the NMS: nothing else in the run reads it,
    so every figure is the same and only the alarm list is empty."""
    scenario = load(SEEDED_DOC.format(seed=11))
    full, bare = run_twin(scenario), run_twin(scenario, alarms=False)
    assert full.alarms and not bare.alarms
    assert full.services == bare.services and full.segments == bare.segments
    assert full.link_outages == bare.link_outages and full.faults == bare.faults
    for name in ("mean_bps", "used_bits", "pooled_bits", "discarded_bits",
                 "pool_total_bits", "pool_route_min_bits", "telemetry_skr_bps"):
        assert np.array_equal(getattr(full, name), getattr(bare, name)), name


# --- rates: dynamics, fault down time, device pairs -------------------------------------


def test_dynamics_lower_every_rate_but_keep_backbone_links_above_half(
        load: Load, net: Network) -> None:
    """Day-night drift and vibration bursts cost every link some key; no backbone link
    loses half its static rate on average over a week."""
    result = run_twin(load("""\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 3
random_faults: false
dynamics: true
demands: []
segments: []
"""))
    assert (result.static_bps > 0).all()
    assert (result.mean_bps < result.static_bps).all()
    backbone = net.domain["backbone"].nodes
    on_backbone = np.array([lk.a in backbone and lk.b in backbone for lk in net.qkd_links])
    assert on_backbone.sum() > 100
    share = result.mean_bps[on_backbone] / result.static_bps[on_backbone]
    assert share.min() > 0.5
    assert 0.8 < share.mean() < 0.98


FAULT_AT_H = 10.03  # 36,108 s: a fifth of the way into a 300 s step


@pytest.fixture(scope="module")
def still(load: Load, net: Network) -> TwinResult:
    """A week with no dynamics and no random faults: one scripted 2 h fault mid-step."""
    return run_twin(load(f"""\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 3
random_faults: false
dynamics: false
demands: []
segments: []
faults:
  - {{link: {_chain_link(net)}, at_h: {FAULT_AT_H}, duration_h: 2}}
"""))


def test_without_dynamics_or_faults_a_link_makes_its_static_rate(
        still: TwinResult, net: Network) -> None:
    """Every link but the faulted one averages exactly its static rate."""
    others = np.arange(len(still.link_ids)) != still.index[_chain_link(net)]
    assert np.allclose(still.mean_bps[others], still.static_bps[others], rtol=1e-12, atol=0)


def test_fault_down_time_is_counted_to_the_second_even_inside_a_step(
        still: TwinResult, net: Network) -> None:
    """A 2 h fault starting mid-step costs exactly 2 h of a week of key."""
    i = still.index[_chain_link(net)]
    start = FAULT_AT_H * HOUR_S
    assert start % still.scenario.step_s != 0
    assert still.link_outages[_chain_link(net)] == (Interval(start, start + 2 * HOUR_S),)
    expected = still.static_bps[i] * (1 - 2 * HOUR_S / WEEK_S)
    assert still.mean_bps[i] == pytest.approx(expected, rel=1e-9)
    assert still.made_bits[i] == pytest.approx(expected * WEEK_S, rel=1e-9)


def test_one_more_device_pair_doubles_a_single_pair_link(
        load: Load, net: Network, still: TwinResult) -> None:
    """``add_device_pairs: {link: 1}`` on a 1-pair link doubles its rate and only its."""
    link = next(lk.id for lk in path_links(net, shortest_path(net, "harbin", "beijing"))
                if lk.device_pairs == 1 and lk.id != _chain_link(net))
    result = run_twin(load(f"""\
qkdnet_twin: 1
network: cn-qcn
weeks: 0.5
random_faults: false
dynamics: false
demands: []
segments: []
add_device_pairs: {{{link}: 1}}
"""))
    i = result.index[link]
    assert result.link_ids == still.link_ids
    assert result.static_bps[i] == pytest.approx(2 * still.static_bps[i], rel=1e-12)
    assert result.mean_bps[i] == pytest.approx(2 * still.static_bps[i], rel=1e-12)
    others = np.arange(len(result.link_ids)) != i
    assert np.array_equal(result.static_bps[others], still.static_bps[others])


# --- bad input ---------------------------------------------------------------------------

BASE_DOC = """\
qkdnet_twin: 1
network: cn-qcn
weeks: 1
seed: 3
random_faults: false
dynamics: false
step_s: 300
pool_bits: 1000000
demands:
  - {id: d1, source: beijing-m1, target: shanghai-m1, rate_bps: 8000, key_bits: 4096}
segments: [beijing, wuhan]
add_device_pairs: {xiongan--baoding: 1}
satellites: []
"""


def test_the_base_document_of_the_bad_input_cases_loads(tmp_path: Path) -> None:
    """So each case below fails for its one change only."""
    path = tmp_path / "twin.yaml"
    path.write_text(BASE_DOC)
    scenario = load_twin_scenario(path)
    assert scenario.segments == ("beijing", "wuhan") and len(scenario.demands) == 1


def test_chongqing_is_reachable_from_the_fibre_network_only_by_satellite(
        net: Network) -> None:
    """What the disconnected-demand case below relies on."""
    g = net.graph()
    assert not nx.has_path(g, "chongqing-m1", "beijing-m1")
    chongqing = nx.node_connected_component(g, "chongqing-m1")
    assert any(k.kind is KMLinkKind.SATELLITE and {k.a, k.b} & chongqing
               for k in net.km_links)


@pytest.mark.parametrize(("change", "line", "where", "problem"), [
    (("target: shanghai-m1", "target: chongqing-m1"), 10, "demands[0]", "disconnected"),
    (("rate_bps: 8000", "rate_bps: -8000"), 10, "demands[0].rate_bps", ">= 0 bit/s"),
    (("key_bits: 4096", "key_bits: 0"), 10, "demands[0].key_bits", "at least 1 bit"),
    (("[beijing, wuhan]", "[beijing, atlantis]"), 11, "segments[1]", "unknown node"),
    (("[beijing, wuhan]", "[beijing, chongqing-m1]"), 11, "segments[1]",
     "no QKD-link path"),
    (("[beijing, wuhan]", "[beijing]"), 11, "segments", "at least 2 nodes"),
    (("step_s: 300", "step_s: 0.5"), 7, "step_s", "1 to 3600 s"),
    (("step_s: 300", "step_s: 7200"), 7, "step_s", "1 to 3600 s"),
    (("pool_bits: 1000000", "pool_bits: 0"), 8, "pool_bits", "more than 0 bits"),
    (("xiongan--baoding: 1", "nowhere--else: 1"), 12, "add_device_pairs.nowhere--else",
     "unknown QKD-link"),
    (("xiongan--baoding: 1", "xiongan--baoding: 0"), 12, "add_device_pairs.xiongan--baoding",
     "at least 1 pair"),
])
def test_bad_input_is_refused_before_the_run_naming_file_line_and_field(
        tmp_path: Path, change: tuple[str, str], line: int, where: str,
        problem: str) -> None:
    """Each mistake is a ScenarioError ``file:line: field: problem`` from loading alone.
    (Unknown fault links, negative durations and faults outside the run:
    tests/twin/test_scenario.py.)"""
    path = tmp_path / "twin.yaml"
    path.write_text(BASE_DOC.replace(*change))
    with pytest.raises(ScenarioError) as error:
        load_twin_scenario(path)
    assert (error.value.source, error.value.line, error.value.path) == (str(path), line, where)
    assert problem in error.value.problem
    assert str(error.value).startswith(f"{path}:{line}: {where}: ")


# --- the calibrated acceptance figures -------------------------------------------------

#: The paper's mean end-to-end SKR of its four segments (bit/s, Table 1).
PAPER_SEGMENT_SKR_BPS = {("harbin", "beijing"): 9_750.0, ("beijing", "wuhan"): 16_410.0,
                         ("wuhan", "guangzhou"): 20_730.0, ("guangzhou", "shenzhen"): 20_850.0}


@pytest.fixture(scope="module")
def ten_weeks() -> TwinResult:
    """The built-in job: cn-qcn for 10 weeks, seed 1, default demands and segments."""
    return run_twin(built_in_scenario(10, seed=1))


def test_every_link_of_the_harbin_shenzhen_path_averages_7_to_400_kbps(
        ten_weeks: TwinResult) -> None:
    """The 64 watched links all average 7-400 kbit/s, the fastest over 100 kbit/s."""
    watched = ten_weeks.watched_links
    assert len(watched) == 64 and len(set(watched)) == 64
    rates = ten_weeks.mean_bps[[ten_weeks.index[lk] for lk in watched]]
    assert ((rates > 7_000) & (rates < 400_000)).all()
    assert rates.max() > 100_000


@pytest.mark.xfail(strict=True, reason="engineered spans keep every link above the 10 "
                   "kbit/s floor and put the cheapest type on short spans: the slowest "
                   "link averages ~13.6 kbit/s, the fastest ~130 (README, Twin fidelity)")
def test_the_watched_links_span_the_papers_range(ten_weeks: TwinResult) -> None:
    """Known gap: the slowest link below 12.2 kbit/s and the fastest above 150 kbit/s, as
    the paper's 9.75-359.89 kbit/s would have them."""
    rates = ten_weeks.mean_bps[[ten_weeks.index[lk] for lk in ten_weeks.watched_links]]
    assert rates.min() < 12_200 and rates.max() > 150_000


def test_three_segments_average_within_a_quarter_of_the_paper(
        ten_weeks: TwinResult) -> None:
    """Beijing-Wuhan, Wuhan-Guangzhou and Guangzhou-Shenzhen average within 25% of 16.41,
    20.73 and 20.85 kbit/s; every segment reports ten weekly figures."""
    found = {(s.source, s.target): s.mean_skr_bps for s in ten_weeks.segments}
    assert list(found) == list(PAPER_SEGMENT_SKR_BPS)
    for pair, paper in list(PAPER_SEGMENT_SKR_BPS.items())[1:]:
        assert found[pair] == pytest.approx(paper, rel=0.25), pair
    assert all(len(s.weekly_skr_bps) == 10 for s in ten_weeks.segments)


@pytest.mark.xfail(strict=True, reason="Harbin-Beijing averages ~13.3 kbit/s (+37%): the "
                   "paper's 9.75 is below the design floor that every span holds at the "
                   "pessimistic corner (README, Twin fidelity)")
def test_harbin_beijing_averages_within_a_quarter_of_the_paper(
        ten_weeks: TwinResult) -> None:
    """Known gap: Harbin-Beijing within 25% of the paper's 9.75 kbit/s."""
    found = {(s.source, s.target): s.mean_skr_bps for s in ten_weeks.segments}
    assert found[("harbin", "beijing")] == pytest.approx(9_750.0, rel=0.25)


def test_the_ring_never_drops_while_the_chains_lose_hours(ten_weeks: TwinResult) -> None:
    """Beijing-Wuhan: 0 h of outage in 10 weeks; Harbin-Beijing and Wuhan-Guangzhou
    lose between 0.5 and 15 h each."""
    assert _segment(ten_weeks, "beijing", "wuhan").outages == ()
    for a, b in (("harbin", "beijing"), ("wuhan", "guangzhou")):
        hours = total(_segment(ten_weeks, a, b).outages) / HOUR_S
        assert 0.5 < hours < 15, (a, b, hours)
