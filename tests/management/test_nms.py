"""EMS split by region, NMS latest state, ring-buffer history, outage timelines."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

from qkdnet.errors import ParameterError
from qkdnet.management.availability import Interval
from qkdnet.management.nms import Ems, Nms, ems_for
from qkdnet.management.telemetry import KMLinkTelemetry, LinkTelemetry, NodeHealth
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Network


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _all_links(net: Network, t: float, skr: float = 1000.0, up: bool = True) -> LinkTelemetry:
    n = len(net.qkd_links)
    return LinkTelemetry(t, tuple(net.link), np.arange(n) + skr, np.full(n, 0.02),
                         np.full(n, up), np.zeros(n, bool))


def _one(link: str, t: float, up: bool, skr: float = 1.0, qber: float = 0.01) -> LinkTelemetry:
    return LinkTelemetry(t, (link,), [skr], [qber], [up], [False])


def _km(km: str, t: float, up: bool, key: float = 1e6) -> KMLinkTelemetry:
    return KMLinkTelemetry(t, (km,), [key], [100.0], [up])


# -- EMS -----------------------------------------------------------------------------------

def test_every_row_goes_to_exactly_one_ems(net: Network) -> None:
    """The regional EMSs partition each batch; together they forward all of it."""
    emss = ems_for(net)
    assert set(emss) == {r.id for r in net.regions}
    n_km = len(net.km_links)
    batches: Sequence[LinkTelemetry | KMLinkTelemetry | NodeHealth] = (
        _all_links(net, 1.0),
        KMLinkTelemetry(1.0, tuple(net.km_link), np.arange(n_km, dtype=float),
                        np.ones(n_km), np.ones(n_km, bool)),
        NodeHealth(1.0, tuple(net.node), np.ones(len(net.nodes), bool)),
    )
    for batch in batches:
        parts = [ems.collect(batch) for ems in emss.values()]
        ids = [i for p in parts for i in p.ids]
        assert len(ids) == len(set(ids)) == batch.rows
        assert set(ids) == set(batch.ids)
        assert all(type(p) is type(batch) and p.t == batch.t for p in parts)


def test_ems_keeps_links_by_their_a_end_region(net: Network) -> None:
    """A QKD-link belongs to the region of its end a; its values travel with it."""
    batch = _all_links(net, 2.0)
    for region, ems in ems_for(net).items():
        part = ems.collect(batch)
        assert all(net.node[net.link[i].a].region == region for i in part.ids)
        where = {i: k for k, i in enumerate(batch.ids)}
        assert part.skr_bps.tolist() == [batch.skr_bps[where[i]] for i in part.ids]


def test_ems_refuses_unknown_ids_and_regions(net: Network) -> None:
    """An id the network lacks, or a region it lacks, is named in the error."""
    with pytest.raises(ParameterError, match="no-such-link"):
        Ems("east", net).collect(_one("no-such-link", 0.0, True))
    with pytest.raises(ParameterError, match="region=atlantis"):
        Ems("atlantis", net)


def test_the_reports_of_every_ems_stored_together_equal_the_whole_batch(net: Network) -> None:
    """The NMS takes the regions' reports of one instant as one; the state, histories and
    outages are those of storing the batch they came from."""
    whole, parts = Nms(net), Nms(net)
    emss = ems_for(net).values()
    for t, down in ((1.0, False), (2.0, True), (3.0, False)):
        batch = _all_links(net, t, up=not down)
        whole.ingest(batch)
        assert parts.ingest_all([ems.collect(batch) for ems in emss]) == batch.rows
    assert parts.snapshot() == whole.snapshot() and parts.records == whole.records
    link = net.qkd_links[9].id
    np.testing.assert_array_equal(parts.history(link).skr_bps, whole.history(link).skr_bps)
    assert parts.outages(link) == whole.outages(link)


def test_batches_that_share_an_element_are_stored_one_after_the_other(net: Network) -> None:
    """Two samples of one link at one instant are two samples in its history."""
    nms = Nms(net)
    link = net.qkd_links[0].id
    assert nms.ingest_all([_one(link, 5.0, True, skr=1.0), _one(link, 5.0, True, skr=2.0)]) == 2
    assert nms.history(link).skr_bps.tolist() == [1.0, 2.0]


# -- latest state and history --------------------------------------------------------------

def test_latest_state_per_link_km_link_and_node(net: Network) -> None:
    """The latest sample of each element is kept; elements never reported give None."""
    nms = Nms(net, history_points=8)
    link, km, node = net.qkd_links[5].id, net.km_links[3].id, net.nodes[2].id
    assert nms.link_status(link) is None and nms.now is None
    nms.ingest(_all_links(net, 1.0))
    nms.ingest(_one(link, 2.0, False, skr=0.0, qber=math.nan))
    nms.ingest(_km(km, 3.0, True, key=4096.0))
    nms.ingest(NodeHealth(4.0, (node,), [False]))
    state = nms.link_status(link)
    assert state is not None and state.t == 2.0 and state.skr_bps == 0.0
    assert not state.up and math.isnan(state.qber)
    other = nms.link_status(net.qkd_links[6].id)
    assert other is not None and other.skr_bps == 1006.0 and other.up
    km_state = nms.km_link_status(km)
    assert km_state is not None and km_state.key_bits == 4096.0 and km_state.rate_bps == 100.0
    node_state = nms.node_status(node)
    assert node_state is not None and node_state.t == 4.0 and not node_state.ok
    assert nms.node_status(net.nodes[0].id) is None
    assert nms.now == 4.0 and nms.records == len(net.qkd_links) + 3


def test_history_ring_buffer_keeps_the_newest(net: Network) -> None:
    """Below capacity every sample is kept; after wrap-around the newest, oldest first."""
    nms = Nms(net, history_points=4)
    link = net.qkd_links[0].id
    for k in range(3):
        nms.ingest(_one(link, float(k), True, skr=10.0 * k, qber=k / 100))
    h = nms.history(link)
    assert h.t.tolist() == [0.0, 1.0, 2.0] and h.skr_bps.tolist() == [0.0, 10.0, 20.0]
    for k in range(3, 10):
        nms.ingest(_one(link, float(k), True, skr=10.0 * k, qber=k / 100))
    h = nms.history(link)
    assert h.t.tolist() == [6.0, 7.0, 8.0, 9.0]
    assert h.skr_bps.tolist() == [60.0, 70.0, 80.0, 90.0]
    assert h.qber.tolist() == pytest.approx([0.06, 0.07, 0.08, 0.09])
    assert nms.history(net.qkd_links[1].id).t.size == 0


def test_snapshot_is_json_ready(net: Network) -> None:
    """The snapshot holds plain values (NaN QBER as None) and survives json.dumps."""
    nms = Nms(net, history_points=2)
    link, km = net.qkd_links[0].id, net.km_links[0].id
    nms.ingest(_one(link, 1.0, False, skr=0.0, qber=math.nan))
    nms.ingest(_km(km, 1.5, True, key=512.0))
    snap = json.loads(json.dumps(nms.snapshot(), allow_nan=False))
    assert snap["t"] == 1.5
    assert snap["links"] == {link: {"region": net.node[net.link[link].a].region, "t": 1.0,
                                    "skr_bps": 0.0, "qber": None, "up": False,
                                    "detector_current_alarm": False}}
    assert snap["km_links"][km]["key_bits"] == 512.0 and snap["km_links"][km]["up"] is True
    assert snap["nodes"] == {}


# -- refusals ------------------------------------------------------------------------------

def test_unknown_id_is_refused_with_nothing_stored(net: Network) -> None:
    """One bad id refuses the whole batch; the good rows before it are not stored."""
    nms = Nms(net, history_points=4)
    good = net.qkd_links[0].id
    batch = LinkTelemetry(1.0, (good, "ghost-link"), [5.0, 5.0], [0.01, 0.01],
                          [False, False], [False, False])
    with pytest.raises(ParameterError, match="ghost-link"):
        nms.ingest(batch)
    assert nms.link_status(good) is None and nms.history(good).t.size == 0
    assert nms.outages(good, until=100.0) == () and nms.records == 0 and nms.now is None
    with pytest.raises(ParameterError, match="ghost-km"):
        nms.ingest(_km("ghost-km", 1.0, True))
    with pytest.raises(ParameterError, match="ghost-node"):
        nms.ingest(NodeHealth(1.0, ("ghost-node",), [True]))
    with pytest.raises(ParameterError, match="ghost"):
        nms.link_status("ghost")


def test_sample_older_than_the_last_is_refused(net: Network) -> None:
    """Timelines need time order per element; a late batch is refused whole."""
    nms = Nms(net, history_points=4)
    a, b = net.qkd_links[0].id, net.qkd_links[1].id
    nms.ingest(_one(a, 10.0, True))
    late = LinkTelemetry(5.0, (b, a), [1.0, 1.0], [0.0, 0.0], [False, False], [False, False])
    with pytest.raises(ParameterError, match="t=5"):
        nms.ingest(late)
    assert nms.link_status(b) is None


def test_history_points_must_be_positive(net: Network) -> None:
    with pytest.raises(ParameterError, match="history_points"):
        Nms(net, history_points=0)


# -- outages and availability --------------------------------------------------------------

def test_down_at_10_up_at_40_gives_availability_0_7(net: Network) -> None:
    """An outage runs from the first down sample to the first up sample after it."""
    nms = Nms(net, history_points=4)
    link = net.qkd_links[0].id
    for t, up in [(0, True), (5, True), (10, False), (20, False), (30, False), (40, True),
                  (100, True)]:
        nms.ingest(_one(link, float(t), up))
    assert nms.outages(link) == (Interval(10.0, 40.0),)
    assert nms.availability(link, 0.0, 100.0) == pytest.approx(0.7)
    assert nms.availability(link, 20.0, 60.0) == pytest.approx(0.5)


def test_km_link_timeline_with_several_outages_and_an_open_one(net: Network) -> None:
    """Several outages are kept in order; one still open lasts to `until` / the window end."""
    nms = Nms(net, history_points=4)
    km = net.km_links[0].id
    for t, up in [(0, False), (10, True), (50, False), (60, False), (70, True), (90, False)]:
        nms.ingest(_km(km, float(t), up))
    assert nms.outages(km) == (Interval(0.0, 10.0), Interval(50.0, 70.0))  # until now=90
    assert nms.outages(km, until=95.0)[-1] == Interval(90.0, 95.0)
    assert nms.availability(km, 0.0, 100.0) == pytest.approx(1 - (10 + 20 + 10) / 100)


def test_never_reported_link_counts_as_up(net: Network) -> None:
    """Nothing is known against an element that never reported."""
    nms = Nms(net, history_points=4)
    link = net.qkd_links[0].id
    assert nms.outages(link) == ()
    assert nms.availability(link, 0.0, 10.0) == 1.0
    with pytest.raises(ParameterError, match="nowhere"):
        nms.availability("nowhere", 0.0, 10.0)


def test_outages_built_from_full_batches_are_vectorised_per_link(net: Network) -> None:
    """Whole-network batches: only the links that went down get an outage."""
    nms = Nms(net, history_points=4)
    nms.ingest(_all_links(net, 0.0))
    down = _all_links(net, 10.0)
    up = down.up.copy()
    up[[3, 7]] = False
    nms.ingest(LinkTelemetry(10.0, down.ids, down.skr_bps, down.qber, up,
                             down.detector_current_alarm))
    nms.ingest(_all_links(net, 25.0))
    ids = tuple(net.link)
    assert nms.outages(ids[3]) == nms.outages(ids[7]) == (Interval(10.0, 25.0),)
    assert all(nms.outages(i) == () for k, i in enumerate(ids) if k not in (3, 7))
