"""What runs in each container: names and commands, and a generator that needs no part of
the live network (manifests are written on machines that run none of it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qkdnet.deploy.containers import containers, label
from qkdnet.files.deployment import load_deployment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cn-qcn-deployment.yaml"


def test_writing_manifests_imports_nothing_of_the_live_network() -> None:
    """Importing the writers and the deployment format loads no qkdnet.live module."""
    code = ("import sys, qkdnet.deploy.compose, qkdnet.deploy.kubernetes, qkdnet.cli.deploy\n"
            "print(sorted(m for m in sys.modules if m.startswith('qkdnet.live')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_container_of_the_example_listens_where_the_deployment_says() -> None:
    """Node containers keep state and listen on their KME range and KM port."""
    d = load_deployment(EXAMPLE)
    cs = containers(d)
    assert len(cs) == 7 + 1 + 1 + 7 + 1
    devices = next(c for c in cs if c.name == "devices")
    assert devices.ports == (7200,) and devices.stateful  # it flies the satellite
    assert devices.pki_files == ("ca.crt", "kme/qkdnet-devices.crt", "kme/qkdnet-devices.key")
    east = next(c for c in cs if c.name == "node-east")
    assert east.stateful and east.ports == (*range(8600, 8682), 9402)
    assert [c.stateful for c in cs].count(True) == 7 + 1  # the nodes and the devices
    assert next(c for c in cs if c.name == "ems-north").args[-2:] == ("--region", "north")


def test_labels_are_dns_labels() -> None:
    """Region ids of any spelling become lower-case DNS labels."""
    assert label("North China") == "north-china"
    assert label("__") == "x"
