"""The device service's device pairs: one per border KM-link not given to a vendor, each
at its QKD-link's rate as the live dynamics move it."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_deployment import chain_deployment

from qkdnet.files.deployment import load_deployment
from qkdnet.live.device_process import DeviceDynamics, emulated_devices, emulated_links
from qkdnet.live.dynamics import LiveDynamics
from qkdnet.quantum.link_rate import link_skr_bps

# 2026-07-01 15:00 China Standard Time (drift near its peak) and 03:00 (near its trough)
AFTERNOON = 1782889200.0
NIGHT = AFTERNOON - 12 * 3600.0


def test_each_border_link_gets_a_pair_whose_rate_follows_the_dynamics(tmp_path: Path
                                                                       ) -> None:
    """The chain's only border KM-link b-c has a pair; its rate starts at the link's
    modelled rate and, applied at two times, is the live dynamics' rate at each."""
    deployment = load_deployment(chain_deployment(tmp_path, devices=True))
    assert emulated_links(deployment) == ("km:b~c",)
    clock = [0.0]
    devices = emulated_devices(deployment, 3.0, lambda: clock[0])
    device = devices["km:b~c"]
    link = deployment.network.link[deployment.network.km_link["km:b~c"].path[0]]
    assert device.ends == ("b", "c") and device._emulator.speedup == 3.0
    assert device._emulator.rate_bps == pytest.approx(link_skr_bps(link))
    dynamics = DeviceDynamics(deployment, devices)
    expected = LiveDynamics([link], 1)
    for t in (AFTERNOON, NIGHT):
        clock[0] += 1.0
        dynamics.apply(t)
        want = float(expected.skr(expected.extra_qber(t))[0])
        assert device._emulator.rate_bps == pytest.approx(want)
    assert want != pytest.approx(float(expected.skr(expected.extra_qber(AFTERNOON))[0]))
