"""A deployment as separate OS processes: `qkdnet up` starts the node processes of the chain
a-b | c-d on loopback, keys cross between them (KM-to-KM over mutual TLS, the border
KM-link filled by its emulated device pair over ETSI 014), a SIGKILLed process stops the
traffic and `qkdnet up` brings it back; `qkdnet status` and `qkdnet down` tell and stop."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etsi_qkd_014_client import QKD014Client
from node_deployment import chain_deployment, qkdnet
from qkdsec.client import ETSI014Client

from qkdnet.apps.sae_client import KmeError, SaeClient


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    yield chain_deployment(tmp_path)
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _client(folder: Path, process: str, sae: str) -> SaeClient:
    manifest = json.loads((folder / "base" / process / "manifest.json").read_text())
    return SaeClient.from_manifest(manifest, sae, timeout_s=10)


def _key_crosses(folder: Path, tries: int = 100) -> bool:
    """Get key at sae-a (left process), then the same key at sae-d (right process)."""
    master, slave = _client(folder, "left", "sae-a"), _client(folder, "right", "sae-d")
    for _ in range(tries):
        try:
            keys = master.enc_keys("sae-d", 1, 256)
        except KmeError:  # the border KM-link still filling, or the relay failed
            time.sleep(0.1)
            continue
        got = slave.dec_keys("sae-a", [keys[0].key_id])
        assert [(k.key_id, k.material) for k in got] == \
            [(k.key_id, k.material) for k in keys]
        return True
    return False


def _third_party_clients_agree(folder: Path) -> None:
    """etsi-qkd-014-client as sae-a at the left process's KME, qkdsec as sae-d at the right
    process's: the same key bytes under the same key_IDs."""
    left = json.loads((folder / "base" / "left" / "manifest.json").read_text())
    right = json.loads((folder / "base" / "right" / "manifest.json").read_text())
    a, d = left["saes"]["sae-a"], right["saes"]["sae-d"]
    master = QKD014Client(a["kme_url"].removeprefix("https://"), a["cert"], a["key"],
                          left["ca"])
    code, container = master.get_key("sae-d", number=2, size=256)
    assert code == 200
    sent = {k.key_id: base64.b64decode(k.key) for k in container.keys}
    slave = ETSI014Client(d["kme_url"], client_cert=(d["cert"], d["key"]), verify=right["ca"])
    got = slave.get_dec_keys("sae-a", key_ids=list(sent))
    assert {k.key_id: k.key for k in got} == sent and len(sent) == 2


def test_keys_cross_process_boundaries_and_survive_a_killed_process(deployment: Path
                                                                    ) -> None:
    folder = deployment.parent
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000",
                 "--speedup", "5", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started 4 processes on local: controller, nms, left, right" in up.stdout
    assert (os.stat(folder / "base" / "left").st_mode & 0o077) == 0  # key material inside
    assert qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder).returncode == 0
    assert _key_crosses(folder)
    _third_party_clients_agree(folder)

    right_pid = int((folder / "base" / "right" / "node.pid").read_text())
    stop = qkdnet("fault", "stop", "d", "--deployment", "deploy.yaml", "--dir", "base",
                  cwd=folder)
    assert "d: stopped (node process right killed, with its 2 nodes)" in stop.stdout, \
        stop.stdout + stop.stderr
    assert not Path(f"/proc/{right_pid}").exists() or \
        Path(f"/proc/{right_pid}/stat").read_text().split(") ")[1][0] == "Z"
    master = _client(folder, "left", "sae-a")
    with pytest.raises(KmeError) as refused:  # no KM at c: the relay fails on its timer
        master.enc_keys("sae-d", 1, 256)
    assert refused.value.status == 503
    status = qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder)
    assert status.returncode == 1 and "right" in status.stdout

    again = qkdnet("fault", "start", "d", "--deployment", "deploy.yaml", "--dir", "base",
                   cwd=folder)
    assert "d: running (node process right started)" in again.stdout, \
        again.stdout + again.stderr
    pid = int((folder / "base" / "right" / "node.pid").read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert float(command[command.index(b"--speedup") + 1]) == 5.0  # as `up` started it
    assert _key_crosses(folder)

    down = qkdnet("down", "deploy.yaml", "--dir", "base", cwd=folder)
    assert "stopped 4 processes" in down.stdout
    assert qkdnet("status", "deploy.yaml", "--dir", "base", cwd=folder).returncode == 1


def test_a_process_not_in_the_deployment_is_refused_by_name(deployment: Path) -> None:
    done = qkdnet("node", "--deployment", "deploy.yaml", "--process", "middle", "--pki",
                   ".", cwd=deployment.parent)
    assert done.returncode == 2
    assert "middle" in done.stderr and "left, right" in done.stderr
