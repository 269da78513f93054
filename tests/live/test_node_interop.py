"""Keys across a border between two operators' domains in a deployment: `qkdnet up` starts
the source node, the gateway and the target in three node processes; the source's KM asks
the gateway's process over KM-to-KM to take the keys across, its two ETSI GS QKD 020
interop KMSs push them and relay them on; the slave gets the master's keys, the gateway's
ledgers say relayed; with the target's process killed the keys fail, delivered nowhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_deployment import free_ports, qkdnet

from qkdnet.apps.sae_client import Key, KmeError, SaeClient
from qkdnet.live.etsi020_ledger import SQLiteLedger

SCENARIO = """\
qkdnet_scenario: 1
name: two-operators
nodes:
  - {id: a, kind: backbone_access, lat: 30, lon: 110}
  - {id: g, kind: backbone_access, lat: 30.3, lon: 110.3}
  - {id: b, kind: backbone_access, lat: 30.6, lon: 110.6}
qkd_links:
  - {a: a, b: g, length_km: 40, loss_db: 10, device_type: I}
  - {a: g, b: b, length_km: 40, loss_db: 10, device_type: I}
domains:
  - {id: west, kind: backbone, nodes: [a, g], managed_by: op-west}
  - {id: east, kind: backbone, nodes: [g, b], managed_by: op-east}
saes:
  - {id: sae-a, node: a}
  - {id: sae-b, node: b}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "two.yaml").write_text(SCENARIO)
    kme_w, km_w, kme_g, km_g, kme_e, km_e, control, nms = free_ports(8)
    (tmp_path / "deploy.yaml").write_text(f"""\
qkdnet_deployment: 1
scenario: two.yaml
hosts:
  - {{id: local, address: 127.0.0.1}}
processes:
  - {{id: west, host: local, nodes: [a], kme_port: {kme_w}, km_port: {km_w}}}
  - {{id: gw, host: local, nodes: [g], kme_port: {kme_g}, km_port: {km_g}}}
  - {{id: east, host: local, nodes: [b], kme_port: {kme_e}, km_port: {km_e}}}
controller: {{host: local, port: {control}}}
nms: {{host: local, port: {nms}}}
""")
    yield tmp_path
    qkdnet("down", "deploy.yaml", "--dir", "base", "--kill", cwd=tmp_path)


def _client(folder: Path, process: str, sae: str, timeout_s: float = 10) -> SaeClient:
    manifest = json.loads((folder / "base" / process / "manifest.json").read_text())
    return SaeClient.from_manifest(manifest, sae, timeout_s=timeout_s)


def _first_keys(master: SaeClient, tries: int = 100) -> list[Key]:
    """Get key at the master until the KM-links hold enough key for one relay."""
    for _ in range(tries):
        try:
            return master.enc_keys("sae-b", 2, 256)
        except KmeError:  # the KM-links still filling
            time.sleep(0.1)
    pytest.fail("no key crossed the border")


def _pushed(folder: Path) -> set[str]:
    """The key_ids the gateway's west KMS has pushed to its east KMS for sae-a, sae-b."""
    ledger = SQLiteLedger(folder / "base" / "gw" / "stores" / "g.op-west.etsi020.sqlite")
    try:
        return {e.key_id for e in ledger.between("g.op-east", "sae-a", ["sae-b"])}
    finally:
        ledger.close()


def _states(folder: Path, kms: str, key_ids: list[str]) -> dict[str, str]:
    ledger = SQLiteLedger(folder / "base" / "gw" / "stores" / f"{kms}.etsi020.sqlite")
    try:
        return {k: e.state for k, e in ledger.get(key_ids).items()}
    finally:
        ledger.close()


def test_keys_cross_a_gateway_in_another_process_and_fail_with_the_target(folder: Path
                                                                         ) -> None:
    """Relayed: the slave gets the master's keys, both interop KMSs' ledgers at the gateway
    say relayed; target process killed: 503, the keys failed there, none held at the target."""
    up = qkdnet("up", "deploy.yaml", "--dir", "base", "--prefill-bits", "100000",
                "--speedup", "5", cwd=folder)
    assert up.returncode == 0, up.stdout + up.stderr
    master = _client(folder, "west", "sae-a", timeout_s=60)
    keys = _first_keys(master)
    ids = [k.key_id for k in keys]
    got = _client(folder, "east", "sae-b").dec_keys("sae-a", ids)
    assert [(k.key_id, k.material) for k in got] == [(k.key_id, k.material) for k in keys]
    assert _states(folder, "g.op-west", ids) == dict.fromkeys(ids, "relayed")  # pushed
    assert _states(folder, "g.op-east", ids) == dict.fromkeys(ids, "relayed")  # taken
    before = _pushed(folder)  # with any that failed while the KM-links were filling

    stop = qkdnet("fault", "stop", "b", "--deployment", "deploy.yaml", "--dir", "base",
                  cwd=folder)
    assert "b: stopped" in stop.stdout, stop.stdout + stop.stderr
    with pytest.raises(KmeError) as refused:  # the far leg's relay fails on its timer
        master.enc_keys("sae-b", 1, 256)
    assert refused.value.status == 503
    failed = sorted(_pushed(folder) - before)
    assert len(failed) == 1 and _states(folder, "g.op-west", failed) == {failed[0]: "failed"}
    assert _states(folder, "g.op-east", failed) == {failed[0]: "failed"}

    start = qkdnet("fault", "start", "b", "--deployment", "deploy.yaml", "--dir", "base",
                   cwd=folder)
    assert "b: running" in start.stdout, start.stdout + start.stderr
    with pytest.raises(KmeError) as unknown:  # never held at the target's node
        _client(folder, "east", "sae-b").dec_keys("sae-a", failed)
    assert unknown.value.status == 400
