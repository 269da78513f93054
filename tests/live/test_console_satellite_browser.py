"""The O&M console's satellite in a real headless Chromium against a real `qkdnet serve`
with two ground stations: Jinan-1's ground track, footprint and marker are drawn on the map,
and at a chosen scenario time (the page's /api/satellite asked for the culmination of a
Beijing pass) the side panel says a pass is in progress over Beijing and the station is
ringed. Screenshot in test-output/console/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import launch_chromium, open_console, require_chromium, screenshot
from ground_scenario import GROUND_SCENARIO, best_beijing_pass
from om_login import PASSWORD, add_operator

from qkdnet.live.launch import start_serve

require_chromium()

from playwright.sync_api import Browser, Route, expect  # noqa: E402

LI = ("li", PASSWORD)


@pytest.fixture(scope="module")
def om_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("sat-console")
    scenario = folder / "ground.yaml"
    scenario.write_text(GROUND_SCENARIO)
    served = start_serve(folder / "live", str(scenario), ["--prefill-bits", "65536"])
    add_operator(folder / "live", "li", "viewer")
    try:
        yield str(served.manifest["om_url"])
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def test_the_track_footprint_and_marker_are_drawn(browser: Browser, om_url: str) -> None:
    """The map holds Jinan-1's footprint, at least one dashed track segment and its marker."""
    page = open_console(browser, om_url, 1280, 800, login=LI)
    expect(page.locator('path[data-sat-footprint="jinan-1"]')).to_have_count(1, timeout=8000)
    assert page.locator('path[data-sat-track="jinan-1"]').count() >= 1
    assert page.locator('g[data-sat="jinan-1"]').count() == 1
    d = page.locator('path[data-sat-footprint="jinan-1"]').get_attribute("d") or ""
    assert d.startswith("M") and d.endswith("Z") and d.count("L") > 10
    expect(page.locator("#sat-box")).to_be_visible()
    page.close()


def test_a_pass_in_progress_shows_in_the_side_panel(browser: Browser, om_url: str) -> None:
    """With the page's clock set to a Beijing culmination the panel lists the pass with
    its elevation and time to set, and the ground station is ringed."""
    best = best_beijing_pass()

    def at_culmination(route: Route) -> None:
        route.continue_(url=route.request.url.split("?")[0] + f"?t={best.culmination_s}")

    page = open_console(browser, om_url, 1920, 1080, login=LI)
    page.route("**/api/satellite*", at_culmination)
    line = page.locator('#sat-passes li[data-pass-station="beijing-gs"]')
    expect(line).to_have_count(1, timeout=8000)
    expect(line).to_contain_text("Pass in progress")
    expect(line).to_contain_text(f"elevation {best.max_elevation_deg:.1f}°")
    expect(line).to_contain_text("sets in")
    expect(page.locator('circle[data-node="beijing-gs"].in-pass')).to_have_count(1)
    screenshot(page, "satellite-pass-1920x1080.png")
    page.close()
