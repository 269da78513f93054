"""What the node-process tests share: a chain a-b-c-d (SAEs at a and d), a ring of 7 nodes
(SAEs at a2 and c1, whose short route crosses b1 and b2) and a square of two regions (SAEs
at a and d); free ports for a deployment file, the chain's two-process deployment, and the
qkdnet command line run in a folder."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from qkdnet.apps.sae_client import KmeError, SaeClient

CHAIN = """\
qkdnet_scenario: 1
name: border
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3}
  - {id: c, kind: backbone_relay, lat: 30.6, lon: 110.6}
  - {id: d, kind: backbone_access, lat: 30.9, lon: 110.9}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: c, b: d, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""

SQUARE = """\
qkdnet_scenario: 1
name: square
regions:
  - {id: west}
  - {id: east}
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110, region: west}
  - {id: b, kind: backbone_relay, lat: 30.3, lon: 110.3, region: west}
  - {id: c, kind: backbone_relay, lat: 30.6, lon: 110.0, region: east}
  - {id: d, kind: backbone_access, lat: 30.3, lon: 109.7, region: east}
qkd_links:
  - {a: a, b: b, length_km: 40, loss_db: 10, device_type: I}
  - {a: b, b: c, length_km: 40, loss_db: 10, device_type: I}
  - {a: c, b: d, length_km: 40, loss_db: 10, device_type: I}
  - {a: d, b: a, length_km: 40, loss_db: 10, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-d, node: d}
"""

RING = """\
qkdnet_scenario: 1
name: ring7
nodes:
  - {id: a1, kind: backbone_access, lat: 30.0, lon: 110.0}
  - {id: a2, kind: backbone_access, lat: 30.2, lon: 110.4}
  - {id: b1, kind: backbone_relay, lat: 30.5, lon: 110.8}
  - {id: b2, kind: backbone_relay, lat: 30.9, lon: 110.9}
  - {id: c1, kind: backbone_access, lat: 31.2, lon: 110.6}
  - {id: c2, kind: backbone_relay, lat: 31.1, lon: 110.1}
  - {id: c3, kind: backbone_relay, lat: 30.6, lon: 109.8}
qkd_links:
  - {a: a1, b: a2, length_km: 30, loss_db: 8, device_type: I}
  - {a: a2, b: b1, length_km: 30, loss_db: 8, device_type: I}
  - {a: b1, b: b2, length_km: 30, loss_db: 8, device_type: I}
  - {a: b2, b: c1, length_km: 30, loss_db: 8, device_type: I}
  - {a: c1, b: c2, length_km: 30, loss_db: 8, device_type: I}
  - {a: c2, b: c3, length_km: 30, loss_db: 8, device_type: I}
  - {a: c3, b: a1, length_km: 30, loss_db: 8, device_type: I}
saes:
  - {id: sae-a, node: a2}
  - {id: sae-c, node: c1}
"""


#: How long the tests let a deployment's border KM-links fill before the first Get key (s).
SETTLE_S = 5.0


def free_ports(n: int, width: int = 2) -> list[int]:
    """``n`` ports free now, each with the ``width - 1`` next ones free too (a process's
    KMEs take consecutive ports)."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            for k in range(1, width):
                with socket.socket() as next_one:
                    next_one.bind(("127.0.0.1", port + k))
        except OSError:
            continue
        if not any(abs(port - p) < width for p in found):
            found.append(port)
    return found


def qkdnet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m qkdnet ARGS` in ``cwd``, its output captured (at most 180 s)."""
    return subprocess.run([sys.executable, "-m", "qkdnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180)


def chain_deployment(folder: Path, devices: bool = False) -> Path:
    """The chain as two node processes (a, b | c, d) and the controller on loopback, free
    ports; with ``devices`` the emulated QKD devices in a service of their own; the
    deployment file (the scenario beside it)."""
    (folder / "chain.yaml").write_text(CHAIN)
    kme_l, km_l, kme_r, km_r, control, nms, device = free_ports(7)
    (folder / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: chain.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: left, host: local, nodes: [a, b], kme_port: {kme_l}, km_port: {km_l}}}
  - {{id: right, host: local, nodes: [c, d], kme_port: {kme_r}, km_port: {km_r}}}
controller: {{host: local, port: {control}}}
nms: {{host: local, port: {nms}}}
""" + (f"devices: {{host: local, port: {device}}}\n" if devices else ""))
    return folder / "deploy.yaml"


def chain_key_crosses(folder: Path, number: int = 1, size: int = 256, tries: int = 100
                      ) -> bool:
    """In a running chain deployment (``folder``/base): Get ``number`` keys of ``size`` bits
    at sae-a (left process), then the same keys at sae-d (right process), asserting they
    are identical; False if Get key kept failing (KM-links still filling)."""
    clients = []
    for process, sae in (("left", "sae-a"), ("right", "sae-d")):
        manifest = json.loads((folder / "base" / process / "manifest.json").read_text())
        clients.append(SaeClient.from_manifest(manifest, sae, timeout_s=10))
    master, slave = clients
    for _ in range(tries):
        try:
            keys = master.enc_keys("sae-d", number, size)
        except KmeError:  # a KM-link still filling
            time.sleep(0.1)
            continue
        got = slave.dec_keys("sae-a", [k.key_id for k in keys])
        assert [(k.key_id, k.material) for k in got] == \
            [(k.key_id, k.material) for k in keys]
        return True
    return False
