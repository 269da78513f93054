"""A link's key rate: the device type's SKR at the link's loss with the link's own field
parameters, times its device pairs and its share of an optical switch; one function gives
it to the rate table, the emulator and the reports."""

from __future__ import annotations

import numpy as np
import pytest

from qkdnet.quantum.devices import device_type
from qkdnet.quantum.link_rate import link_skr_bps, links_skr_bps
from qkdnet.quantum.rate_table import RateTable
from qkdnet.quantum.rates import skr
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import Multiplexing, Network, QKDLink


@pytest.fixture(scope="module")
def net() -> Network:
    return build_cn_qcn()


def _by_hand(link: QKDLink) -> float:
    device = device_type(link.device_type)
    return float(skr(device, link.loss_db, device.params.replace(**dict(link.field))))


def test_the_rate_tables_static_column_is_each_links_rate(net: Network) -> None:
    """For every cn-qcn link the twin's table, the bulk function and the per-link function
    give the same number."""
    links = net.qkd_links
    per_link = [link_skr_bps(lk) for lk in links]
    assert np.array_equal(RateTable(links).static, per_link)
    assert np.array_equal(links_skr_bps(links)[:, 0], per_link)


def test_a_backbone_links_rate_is_its_devices_skr_with_its_field(net: Network) -> None:
    """The rate is the device type's SKR at the link's loss with the link's field applied."""
    link = net.link[net.km_links[0].path[0]]
    assert link.device_pairs == 1 and link.time_share == 1.0
    assert link_skr_bps(link) == pytest.approx(_by_hand(link), rel=1e-12)
    device = device_type(link.device_type)
    assert link_skr_bps(link) != pytest.approx(float(skr(device, link.loss_db)))


def test_device_pairs_multiply_the_rate(net: Network) -> None:
    """A span with several WDM device pairs makes key on each of them."""
    link = next(lk for lk in net.qkd_links if lk.device_pairs > 1)
    assert link_skr_bps(link) == pytest.approx(link.device_pairs * _by_hand(link), rel=1e-12)


def test_a_user_link_behind_an_optical_switch_gets_its_share(net: Network) -> None:
    """A user link makes key only in its time slots: the SKR times 1/(users on the switch)."""
    link = next(lk for lk in net.qkd_links if lk.multiplexing is Multiplexing.OPTICAL_SWITCH)
    users = [lk for lk in net.qkd_links
             if lk.a == link.a and lk.multiplexing is Multiplexing.OPTICAL_SWITCH]
    assert link.time_share == pytest.approx(1 / len(users))
    assert link_skr_bps(link) == pytest.approx(_by_hand(link) / len(users), rel=1e-12)


def test_extra_qber_lowers_every_links_rate(net: Network) -> None:
    """Each column of a grid of extra QBER gives lower rates than the one before."""
    rates = links_skr_bps(net.qkd_links[:100], (0.0, 0.005, 0.01))
    assert rates.shape == (100, 3)
    assert np.all(np.diff(rates, axis=1) < 0)
