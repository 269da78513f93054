"""The satellite segment in a running `qkdnet serve` of cn-qcn: a key between SAEs behind
Haikou (reached only through the satellite) and Beijing, fetched at both ends with the
third-party `etsi-qkd-014-client`; the NMS's satellite metrics; and the alarm a clouded
night pass over the Hainan ground station raises."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from etsi_qkd_014_client import QKD014Client
from om_login import session
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from qkdnet.live.launch import ServeFailed, start_serve

# 14:10 UTC: the first night pass over the Hainan ground station (24 deg, ~130 kbit on the
# built-in orbit) rises 230 s later on the satellite clock, 2.3 s after start at x100
START = "2025-01-01T14:10:00Z"
SPEEDUP = "100"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """cn-qcn with its fibre pools and its satellite pools prefilled, Hainan clouded."""
    folder = tmp_path_factory.mktemp("sat") / "live"
    try:
        server = start_serve(folder, "cn-qcn", [
            "--prefill-bits", "300000", "--no-dynamics", "--speedup", SPEEDUP,
            "--satellite-prefill-bits", "1000000", "--satellite-start", START,
            "--satellite-cloud", "hainan-gs"], timeout_s=120)
    except ServeFailed as exc:
        pytest.fail(str(exc))
    try:
        yield folder, server.manifest
    finally:
        server.stop(15)


def etsi_client(manifest: dict[str, Any], sae: str) -> QKD014Client:
    """etsi-qkd-014-client for ``sae``, at its KME ("host:port")."""
    entry = manifest["saes"][sae]
    return QKD014Client(entry["kme_url"].removeprefix("https://"), entry["cert"],
                        entry["key"], manifest["ca"])


def samples(manifest: dict[str, Any], name: str) -> dict[tuple[str, ...], float]:
    """The samples of metric ``name`` on /metrics, by their label values."""
    text = httpx.get(manifest["om_url"] + "/metrics", timeout=10).text
    return {tuple(s.labels.values()): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


def test_a_key_between_haikou_and_beijing_is_the_same_at_both_ends(
        served: tuple[Path, dict[str, Any]]) -> None:
    """sae-haikou gets two keys for sae-beijing (over the Hainan-Beijing satellite KM-link,
    Haikou's only way out), and sae-beijing fetches the same bytes by their key_IDs."""
    _, manifest = served
    haikou, beijing = etsi_client(manifest, "sae-haikou"), etsi_client(manifest, "sae-beijing")
    code, container = haikou.get_key("sae-beijing", number=2, size=256)
    assert code == 200 and len(container.keys) == 2
    ids = [k.key_id for k in container.keys]
    code, fetched = beijing.get_key_with_key_IDs("sae-haikou", ids)
    assert code == 200
    assert [k.key_id for k in fetched.keys] == ids
    assert [base64.b64decode(k.key) for k in fetched.keys] == \
        [base64.b64decode(k.key) for k in container.keys]
    assert all(len(base64.b64decode(k.key)) == 32 for k in fetched.keys)


def test_the_nms_reports_the_satellite_pools_and_links(
        served: tuple[Path, dict[str, Any]]) -> None:
    """/metrics carries each satellite pool and each satellite KM-link's key."""
    _, manifest = served
    assert wait_for(lambda: bool(samples(manifest, "qkdnet_satellite_pool_key_bits")))
    pools = samples(manifest, "qkdnet_satellite_pool_key_bits")
    assert len(pools) == 6  # Jinan-1 with each of the six ground stations
    assert pools[("jinan-1", "shanghai-gs")] > 0
    km = samples(manifest, "qkdnet_kmlink_key_bits")
    # label values in name order: kind, km_link, region
    assert km[("satellite", "sat:beijing-gs~hainan-gs", "north")] > 0


def test_a_clouded_night_pass_raises_the_no_key_alarm(
        served: tuple[Path, dict[str, Any]]) -> None:
    """The night pass over the clouded Hainan station ends without key: it is counted,
    satellite-pass-no-key is active on hainan-gs, and the console's /api/satellite shows the
    satellite at the time of the passes (s after TWIN_EPOCH), past that pass."""
    folder, manifest = served

    def counted() -> bool:
        no_key = samples(manifest, "qkdnet_satellite_passes_no_key_total")
        return no_key.get(("jinan-1", "hainan-gs"), 0.0) >= 1

    assert wait_for(counted, seconds=60)
    with session(folder, manifest["om_url"]) as om:
        alarms = om.get(manifest["om_url"] + "/api/alarms").json()["active"]
        shown = om.get(manifest["om_url"] + "/api/satellite").json()
    # the console shows the satellite on the clock of the passes: past the Hainan pass
    assert shown["t"] > 51_230 + 363
    assert ("satellite-pass-no-key", "hainan-gs") in {(a["rule"], a["subject"])
                                                     for a in alarms}
