"""GET /api/satellite of a running `qkdnet serve` with ground stations: behind the login,
Jinan-1's position, track and footprint on the serve's sped-up clock, and the pass in
progress over Beijing at a chosen scenario time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ground_scenario import GROUND_SCENARIO, best_beijing_pass
from om_login import session

from qkdnet.live.launch import ServeProcess, start_serve

SPEEDUP = 50.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("satellite")


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[ServeProcess]:
    scenario = folder / "ground.yaml"
    scenario.write_text(GROUND_SCENARIO)
    process = start_serve(folder / "live", str(scenario),
                          ["--prefill-bits", "65536", "--speedup", str(SPEEDUP)])
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def url(served: ServeProcess) -> str:
    return str(served.manifest["om_url"])


@pytest.fixture(scope="module")
def om(folder: Path, url: str) -> Iterator[httpx.Client]:
    with session(folder / "live", url, "li", "viewer") as client:
        yield client


def test_the_satellite_needs_a_login(url: str) -> None:
    """Without a session the route answers 401, as every O&M read does."""
    assert httpx.get(f"{url}/api/satellite", timeout=5).status_code == 401


def test_the_satellite_runs_on_the_serves_sped_up_clock(om: httpx.Client, url: str) -> None:
    """Two reads a wall-clock interval apart are that interval x the speedup apart in
    scenario time (bounded by the wall times around the requests); Jinan-1 is ~500 km up."""
    before = time.time()
    first = om.get(f"{url}/api/satellite").json()
    middle = time.time()
    time.sleep(0.5)
    mid2 = time.time()
    second = om.get(f"{url}/api/satellite").json()
    after = time.time()
    assert first["speedup"] == SPEEDUP
    assert (mid2 - middle) * SPEEDUP <= second["t"] - first["t"] <= (after - before) * SPEEDUP
    assert [s["id"] for s in first["stations"]] == ["beijing-gs", "hainan-gs"]
    (sat,) = first["satellites"]
    assert sat["id"] == "jinan-1" and 450 < sat["height_km"] < 560
    assert -90 <= sat["lat"] <= 90 and -180 <= sat["lon"] <= 180
    assert len(sat["track"]) >= 1 and len(sat["footprint"]) > 10
    assert 1400 < sat["footprint_radius_km"] < 1700


def test_a_chosen_time_shows_the_pass_in_progress(om: httpx.Client, url: str) -> None:
    """At the culmination of the best Beijing pass, beijing-gs is listed at that elevation,
    setting when the pass finder says; an hour later nothing is in progress."""
    best = best_beijing_pass()
    sat = om.get(f"{url}/api/satellite", params={"t": best.culmination_s}).json()[
        "satellites"][0]
    (listed,) = [p for p in sat["passes"] if p["station"] == "beijing-gs"]
    assert listed["elevation_deg"] == pytest.approx(best.max_elevation_deg, abs=0.5)
    assert listed["set_in_s"] == pytest.approx(best.set_s - best.culmination_s, abs=5)
    later = om.get(f"{url}/api/satellite", params={"t": best.set_s + 3600}).json()
    assert later["satellites"][0]["passes"] == []


def test_a_bad_time_is_refused_by_name(om: httpx.Client, url: str) -> None:
    """?t=soon is a 400 naming the query parameter."""
    answer = om.get(f"{url}/api/satellite", params={"t": "soon"})
    assert answer.status_code == 400 and "'t'" in answer.json()["message"]
