"""The O&M web console of a running `qkdnet serve`: its page and static files, and the JSON
and Server-Sent Events endpoints it is fed by (topology, history, availability, events)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_scenario import CHAIN_SCENARIO
from om_login import session
from polling import wait_for

from qkdnet.files.networks import open_network
from qkdnet.live.launch import ServeProcess, start_serve


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console")


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[ServeProcess]:
    scenario = folder / "chain.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    process = start_serve(folder / "live", str(scenario), ["--prefill-bits", "65536"])
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def url(served: ServeProcess) -> str:
    return str(served.manifest["om_url"])


@pytest.fixture(scope="module")
def om(folder: Path, url: str) -> Iterator[httpx.Client]:
    """Logged in as an operator: the console's API needs a session."""
    with session(folder / "live", url) as client:
        yield client


def _events(om: httpx.Client, url: str, seconds: float,
            stop: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """The ``state`` events of /api/events read for ``seconds`` at most, or until ``stop``
    holds for one of them."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    event = ""
    with om.stream("GET", f"{url}/api/events", timeout=httpx.Timeout(5.0)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "state":
                found.append(json.loads(line.removeprefix("data: ")))
                if stop is not None and stop(found[-1]):
                    break
            if time.monotonic() > deadline:
                break
    return found


def test_the_console_page_and_its_static_files_are_served(om: httpx.Client, url: str) -> None:
    page = om.get(f"{url}/", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/console.js"' in page.text and 'href="/console.css"' in page.text
    assert 'id="map"' in page.text and 'id="alarms"' in page.text
    assert 'id="chart"' in page.text and 'id="availability"' in page.text
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    script = om.get(f"{url}/console.js", timeout=5)
    assert script.status_code == 200 and len(script.text) > 1000
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text and "/api/events" in script.text
    style = om.get(f"{url}/console.css", timeout=5)
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    for text in (script.text, style.text):  # the wall screen has no internet
        assert "https://" not in text and "@import" not in text
    assert om.get(f"{url}/console.py", timeout=5).status_code == 404


def test_the_basemap_is_served_from_the_package(om: httpx.Client, url: str) -> None:
    """GET /basemap.geojson: the shipped Natural Earth GeoJSON, China's land among it."""
    answer = om.get(f"{url}/basemap.geojson", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    names = {f["properties"].get("name") for f in answer.json()["features"]}
    assert {"China", "Beijing", "Guangdong"} <= names


def test_topology_lists_every_node_with_coordinates_and_every_link(om: httpx.Client, url: str,
                                                                     tmp_path: Path) -> None:
    scenario = tmp_path / "chain.yaml"
    scenario.write_text(CHAIN_SCENARIO)
    network = open_network(str(scenario))
    data = om.get(f"{url}/api/topology", timeout=5).json()
    assert data["fault_injection"] is True  # a live network: the console offers cut/stop
    nodes = {n["id"]: n for n in data["nodes"]}
    assert set(nodes) == {n.id for n in network.nodes}
    for n in network.nodes:
        assert (nodes[n.id]["lat"], nodes[n.id]["lon"]) == (n.lat, n.lon)
        assert nodes[n.id]["kind"] == n.kind.value and nodes[n.id]["name"]
    links = {lk["id"]: lk for lk in data["links"]}
    assert set(links) == {"a--b", "b--c"}
    assert links["a--b"] == {"id": "a--b", "a": "a", "b": "b", "kind": "backbone",
                             "device_type": "I", "length_km": 50.0}


def test_history_grows_and_unknown_links_get_404(om: httpx.Client, url: str) -> None:
    def length() -> int:
        return len(om.get(f"{url}/api/history/a--b", timeout=5).json()["t"])

    assert wait_for(lambda: length() >= 1)
    first = length()
    assert wait_for(lambda: length() >= first + 2, seconds=10)
    h = om.get(f"{url}/api/history/a--b", timeout=5).json()
    assert len(h["t"]) == len(h["skr_bps"]) == len(h["qber"])
    assert h["t"] == sorted(h["t"]) and all(s > 0 for s in h["skr_bps"])
    missing = om.get(f"{url}/api/history/x--y", timeout=5)
    assert missing.status_code == 404 and "x--y" in missing.json()["message"]


def test_events_stream_state_every_second(om: httpx.Client, url: str) -> None:
    assert wait_for(lambda: om.get(f"{url}/api/state", timeout=5).json()["t"] is not None)
    events = _events(om, url, 3.5, stop=lambda _: False)
    assert len(events) >= 2
    last = events[-1]
    assert set(last) == {"t", "links", "nodes_down", "alarms"} and last["t"] is not None
    assert last["nodes_down"] == []
    assert set(last["links"]) == {"a--b", "b--c"}
    assert last["links"]["a--b"]["up"] is True and last["links"]["a--b"]["skr_bps"] > 0


def test_a_cut_shows_in_the_events_and_the_availability_table(om: httpx.Client, url: str) -> None:
    cut = om.post(f"{url}/api/links/a--b/cut", timeout=5)
    assert cut.status_code == 200
    try:
        def shows_cut(s: dict[str, Any]) -> bool:
            return s["links"].get("a--b", {}).get("up") is False and any(
                a["rule"] == "qkd-link-down" and a["subject"] == "a--b" for a in s["alarms"])

        events = _events(om, url, 6.0, stop=shows_cut)
        assert events and shows_cut(events[-1])
        assert events[-1]["links"]["a--b"]["skr_bps"] == 0
        assert events[-1]["links"]["b--c"]["up"] is True

        def listed() -> bool:
            # listed from the instant of the cut, with hours once the next report is in
            return any(r["link"] == "a--b" and r["down_now"] and r["outage_hours"] > 0
                       for r in om.get(f"{url}/api/availability", timeout=5).json()["links"])

        assert wait_for(listed, seconds=5)
        report = om.get(f"{url}/api/availability", timeout=5).json()
        assert [r["link"] for r in report["links"]] == ["a--b"]
        row, summary = report["links"][0], report["summary"]
        assert row["outages"] == 1 and 0 <= row["availability"] < 1
        assert summary["links"] == 2 and summary["links_with_outage"] == 1
        assert summary["outage_hours"] == row["outage_hours"] > 0
        assert 0 < summary["availability"] < 1
        history = om.get(f"{url}/api/history/a--b", timeout=5).json()
        assert history["skr_bps"][-1] == 0 and history["qber"][-1] is None
        assert any(a["rule"] == "qkd-link-down" for a in history["alarms"])
    finally:
        om.post(f"{url}/api/links/a--b/repair", timeout=5)
