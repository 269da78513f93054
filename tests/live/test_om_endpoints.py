"""The O&M endpoints of a running `qkdnet serve`: a Prometheus scrape of /metrics parses
with prometheus-client's own parser and carries one SKR series per QKD-link, and the KM-link
pools the KMs report."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from chain_scenario import CHAIN_SCENARIO
from om_login import PASSWORD, add_operator, logged_in
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from qkdnet.apps.sae_client import KmeError, KmeUnavailable, SaeClient
from qkdnet.cli import app
from qkdnet.files.networks import open_network
from qkdnet.live.dynamics import LiveDynamics
from qkdnet.live.launch import ServeProcess, start_serve
from qkdnet.quantum.link_rate import link_skr_bps


@contextmanager
def _serving(folder: Path, scenario: str, prefill_bits: int = 65536, *options: str
             ) -> Iterator[ServeProcess]:
    """`qkdnet serve` of ``scenario`` (its text, written to folder/scenario.yaml), with an
    operator "ops" (role operator, password PASSWORD)."""
    (folder / "scenario.yaml").write_text(scenario)
    served = start_serve(folder / "live", str(folder / "scenario.yaml"),
                         ["--prefill-bits", str(prefill_bits), *options])
    add_operator(folder / "live", "ops", "operator")
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`qkdnet fault` logs in as the operator :func:`_serving` adds."""
    monkeypatch.setenv("QKDNET_OPERATOR", "ops")
    monkeypatch.setenv("QKDNET_PASSWORD", PASSWORD)


def _active(om: httpx.Client, url: str) -> set[tuple[str, str]]:
    """(rule, subject) of each active alarm."""
    data = om.get(f"{url}/api/alarms", timeout=5).json()
    return {(a["rule"], a["subject"]) for a in data["active"]}


def _samples(text: str, name: str) -> dict[str, float]:
    return {s.labels.get("link") or s.labels["km_link"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


def test_metrics_carry_one_skr_series_per_qkd_link_and_the_pools(tmp_path: Path) -> None:
    """Without link dynamics each link reports its static modelled rate."""
    with _serving(tmp_path, CHAIN_SCENARIO, 65536, "--no-dynamics") as served:
        network = open_network(str(tmp_path / "scenario.yaml"))
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)
        text = ""

        def reported() -> bool:  # the KMs' first report is in
            nonlocal text
            text = om.get(f"{url}/metrics", timeout=5).text
            return bool(_samples(text, "qkdnet_kmlink_key_bits"))

        assert wait_for(reported, 20)
        skr = _samples(text, "qkdnet_link_skr_bits_per_second")
        assert set(skr) == {lk.id for lk in network.qkd_links}
        for lk in network.qkd_links:
            assert math.isclose(skr[lk.id], link_skr_bps(lk), rel_tol=1e-9)
        assert set(_samples(text, "qkdnet_link_up").values()) == {1.0}
        pools = _samples(text, "qkdnet_kmlink_key_bits")
        assert set(pools) == {km.id for km in network.km_links if km.kind.value == "direct"}
        assert all(v >= 65536 / 2 for v in pools.values())  # each direction holds half
        state = om.get(f"{url}/api/state", timeout=5).json()
        assert "a--b" in str(state)


def test_link_rates_follow_the_day_night_drift_and_bursts(tmp_path: Path) -> None:
    """With dynamics (the default) each report's SKR and QBER are the quantum layer's model
    at the report's wall-clock time, for the serve seed; the emulators make key at that
    rate (the KM-link's refill); another seed draws other link dynamics."""
    with _serving(tmp_path, CHAIN_SCENARIO, 65536, "--seed", "7") as served:
        network = open_network(str(tmp_path / "scenario.yaml"))
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)
        assert wait_for(lambda: om.get(f"{url}/api/state", timeout=5).json()["km_links"])
        state = om.get(f"{url}/api/state", timeout=5).json()
    model, other = LiveDynamics(network.qkd_links, 7), LiveDynamics(network.qkd_links, 8)
    t = state["links"]["a--b"]["t"]
    extra = model.extra_qber(t)
    skr = model.skr(extra)
    static = [link_skr_bps(lk) for lk in network.qkd_links]
    for i, lk in enumerate(network.qkd_links):
        reported = state["links"][lk.id]
        assert math.isclose(reported["skr_bps"], skr[i], rel_tol=1e-9)
        assert 0.3 * static[i] < reported["skr_bps"] <= static[i] * (1 + 1e-9)
        assert math.isclose(reported["qber"], 0.005 + extra[i], rel_tol=1e-9)  # type I: e_d
    refill = state["km_links"]["km:a~b"]
    assert math.isclose(refill["rate_bps"], skr[0], rel_tol=1e-9)
    assert not np.allclose(other.extra_qber(t), extra)


def test_a_cut_link_raises_alarms_that_clear_on_repair(tmp_path: Path) -> None:
    """Cut a--b through the O&M API: its QKD-link and KM-link alarms appear and the metrics
    show it down; repaired, the alarms clear and it is up again. Unknown links get 404."""
    with _serving(tmp_path, CHAIN_SCENARIO) as served:
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)

        assert om.post(f"{url}/api/links/x--y/cut", timeout=5).status_code == 404
        refused = CliRunner().invoke(app, ["fault", "cut", "x--y", "--dir",
                                           str(tmp_path / "live")])
        assert refused.exit_code == 2 and "unknown QKD-link 'x--y'" in refused.output
        assert wait_for(lambda: "qkdnet_link_up" in om.get(f"{url}/metrics").text)
        assert not any(rule.endswith("-down") for rule, _ in _active(om, url))
        cut = om.post(f"{url}/api/links/a--b/cut", timeout=5)
        assert cut.status_code == 200 and cut.json() == {"link": "a--b", "up": False,
                                                    "blinded": False}
        # reported at once, not at the next one-second report
        assert {("qkd-link-down", "a--b"), ("km-link-down", "km:a~b")} <= _active(om, url)
        up = _samples(om.get(f"{url}/metrics", timeout=5).text, "qkdnet_link_up")
        assert up == {"a--b": 0.0, "b--c": 1.0}
        repaired = CliRunner().invoke(app, ["fault", "repair", "a--b", "--dir",
                                            str(tmp_path / "live")])
        assert repaired.exit_code == 0 and "a--b: up" in repaired.output
        assert not any(rule.endswith("-down") for rule, _ in _active(om, url))
        history = om.get(f"{url}/api/alarms", timeout=5).json()["history"]
        down = [a for a in history if a["rule"] == "qkd-link-down" and a["subject"] == "a--b"]
        assert len(down) == 1 and down[0]["cleared_at"] > down[0]["raised_at"]
        # a blinding attack trips b--c's detector-current monitor; the link stops distilling
        blinded = CliRunner().invoke(app, ["fault", "blind", "b--c", "--dir",
                                           str(tmp_path / "live")])
        assert blinded.exit_code == 0 and "b--c: blinded" in blinded.output
        assert {("detector-current", "b--c"), ("qkd-link-down", "b--c")} <= _active(om, url)
        state = om.get(f"{url}/api/state", timeout=5).json()["links"]["b--c"]
        assert state["detector_current_alarm"] is True and state["up"] is False
        assert om.post(f"{url}/api/links/b--c/repair", timeout=5).json()["blinded"] is False
        assert not {rule for rule, _ in _active(om, url)} & {"detector-current", "qkd-link-down"}


def test_a_stopped_node_takes_its_links_down_and_refuses_key_until_started(
        tmp_path: Path) -> None:
    """Stop the relay b of the chain: its node alarm and both its links' alarms are raised at
    once, keys between the ends get 503 (no route) rather than waiting on a timeout; started
    again (from the CLI), the alarms clear and keys are delivered."""
    with _serving(tmp_path, CHAIN_SCENARIO) as served, \
            SaeClient.from_manifest(served.manifest, "sae-a", timeout_s=10) as kme:
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)

        def key_status() -> int:
            try:
                kme.enc_keys("sae-c", method="GET")
            except KmeError as exc:
                return exc.status
            return 200

        assert wait_for(lambda: key_status() == 200)
        assert om.post(f"{url}/api/nodes/nowhere/stop", timeout=5).status_code == 404
        assert om.post(f"{url}/api/nodes/b/halt", timeout=5).status_code == 404
        stopped = om.post(f"{url}/api/nodes/b/stop", timeout=5)
        assert stopped.status_code == 200 and stopped.json() == {"node": "b", "running": False}
        assert {("node-down", "b"), ("qkd-link-down", "a--b"), ("qkd-link-down", "b--c"),
                ("km-link-down", "km:a~b"), ("km-link-down", "km:b~c")} <= _active(om, url)
        up = _samples(om.get(f"{url}/metrics", timeout=5).text, "qkdnet_link_up")
        assert up == {"a--b": 0.0, "b--c": 0.0}
        # the node is the root cause the operator sees; its links' alarms are filed under it
        listed = om.get(f"{url}/api/alarms", timeout=5).json()["active"]
        root = next(a["id"] for a in listed if a["rule"] == "node-down")
        # and so is the service of the SAEs, which has no route now
        assert {a["rule"]: a["cause"] for a in listed if a["subject"] != "b"} == {
            "qkd-link-down": root, "km-link-down": root, "service-unserved": root}
        assert next(a for a in listed if a["id"] == root)["cause"] is None
        with pytest.raises(KmeUnavailable, match="route"):
            kme.enc_keys("sae-c", method="GET")
        state = om.get(f"{url}/api/state", timeout=5).json()
        assert state["nodes"]["b"]["ok"] is False and state["nodes"]["a"]["ok"] is True
        started = CliRunner().invoke(app, ["fault", "start", "b", "--dir",
                                           str(tmp_path / "live")])
        assert started.exit_code == 0 and "b: running" in started.output
        assert not any(rule.endswith("-down") for rule, _ in _active(om, url))
        assert wait_for(lambda: key_status() == 200)
        wrong = CliRunner().invoke(app, ["fault", "halt", "b", "--dir", str(tmp_path / "live")])
        assert wrong.exit_code == 2 and "cut, blind, repair, stop, start" in wrong.output


def test_an_operator_acknowledges_an_alarm_once(tmp_path: Path) -> None:
    """An active alarm is acknowledged through the API under the logged-in operator's name
    (a name in the body is not taken); a second acknowledgement keeps the first; unknown
    alarms are 404 and a body that is not JSON is 400."""
    with _serving(tmp_path, CHAIN_SCENARIO) as served:
        url = served.manifest["om_url"]
        li = logged_in(tmp_path / "live", url, "li")
        wang = logged_in(tmp_path / "live", url, "wang")
        assert li.post(f"{url}/api/links/b--c/cut").status_code == 200
        alarm = next(a for a in li.get(f"{url}/api/alarms").json()["active"]
                     if a["rule"] == "qkd-link-down")
        assert alarm["acknowledged_at"] is None
        ack = f"{url}/api/alarms/{alarm['id']}/ack"
        assert li.post(ack, content=b"{not json").status_code == 400
        missing = li.post(f"{url}/api/alarms/nope:x:1/ack", json={})
        assert missing.status_code == 404 and "nope:x:1" in missing.json()["message"]
        first = li.post(ack, json={"by": "someone-else"})
        assert first.status_code == 200 and first.json()["acknowledged_by"] == "li"
        assert first.json()["acknowledged_at"] >= alarm["raised_at"]
        again = wang.post(ack, json={}).json()
        assert again["acknowledged_by"] == "li"
        listed = {a["id"]: a for a in wang.get(f"{url}/api/alarms").json()["active"]}
        assert listed[alarm["id"]]["acknowledged_by"] == "li"  # still active until repaired


RING_SCENARIO = """\
qkdnet_scenario: 1
name: om-ring
nodes:
  - {id: a, kind: backbone_access, lat: 40.0, lon: 116.0}
  - {id: b, kind: backbone_relay, lat: 40.3, lon: 116.3}
  - {id: c, kind: backbone_access, lat: 40.6, lon: 116.6}
  - {id: d, kind: backbone_relay, lat: 39.9, lon: 116.5}
  - {id: e, kind: backbone_relay, lat: 40.2, lon: 116.8}
qkd_links:
  - {a: a, b: b, length_km: 40, device_type: I}
  - {a: b, b: c, length_km: 40, device_type: I}
  - {a: a, b: d, length_km: 40, device_type: I}
  - {a: d, b: e, length_km: 40, device_type: I}
  - {a: e, b: c, length_km: 40, device_type: I}
saes:
  - {id: sae-a, node: a}
  - {id: sae-c, node: c}
"""


def test_keys_are_routed_around_a_cut_link_and_a_stopped_node(tmp_path: Path) -> None:
    """On the ring a-b-c / a-d-e-c keys go the two-hop way; with a--b cut, or with b
    stopped, the control layer sends them the three-hop way round at once; repaired and
    started, they go back (revertive). The hop counts are read from the KMs' log (a line
    each time keys between two nodes take another route)."""
    with _serving(tmp_path, RING_SCENARIO, prefill_bits=200_000) as served, \
            SaeClient.from_manifest(served.manifest, "sae-a", timeout_s=10) as kme:
        url = served.manifest["om_url"]
        om = logged_in(tmp_path / "live", url)

        def hops_of_next_key() -> int:
            before = served.log().count("to node c now go")
            kme.enc_keys("sae-c", method="GET")  # raises unless 200
            assert wait_for(lambda: served.log().count("to node c now go") > before, 5)
            last = served.log().rsplit("to node c now go", 1)[1]
            return int(last.split(" over ", 1)[1].split(" hops", 1)[0])

        assert wait_for(lambda: om.get(f"{url}/api/state", timeout=5).json()["t"]
                         is not None)
        assert hops_of_next_key() == 2
        assert om.post(f"{url}/api/links/a--b/cut", timeout=5).status_code == 200
        assert hops_of_next_key() == 3
        assert om.post(f"{url}/api/links/a--b/repair", timeout=5).status_code == 200
        assert hops_of_next_key() == 2
        assert om.post(f"{url}/api/nodes/b/stop", timeout=5).status_code == 200
        assert hops_of_next_key() == 3
        assert om.post(f"{url}/api/nodes/b/start", timeout=5).status_code == 200
        assert hops_of_next_key() == 2
