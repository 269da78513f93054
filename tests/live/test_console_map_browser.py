"""The console's map in a real headless Chromium, over `qkdnet console` replaying a short
CN-QCN twin run: the Natural Earth geography under the network, satellite KM-links and
ground stations drawn apart, zoom and pan by wheel, keys and buttons with labels that never
overlap, the search that selects and centres a node or a link, the alarm history, the
clock's time zone line, and the layout at wall, laptop and phone sizes (screenshots in
test-output/console/map-*.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import launch_chromium, open_console, require_chromium, screenshot
from twin_report import CUT, build_report, serve_console

from qkdnet.topology.model import KMLinkKind, NodeKind
from qkdnet.twin.engine import TwinResult

require_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

# The visible labels' boxes, as the browser lays them out.
LABEL_BOXES = """() => [...document.querySelectorAll('#labels text[data-label]')]
  .filter(t => t.getAttribute('display') !== 'none')
  .map(t => { const b = t.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; })"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TwinResult, Path]:
    return build_report(tmp_path_factory.mktemp("map-browser"))


@pytest.fixture(scope="module")
def console(run: tuple[TwinResult, Path]) -> Iterator[str]:
    with serve_console(run[1], "--speed", "3600", "--loop") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def _map_page(browser: Browser, url: str, width: int, height: int) -> Page:
    page = open_console(browser, url, width, height)
    expect(page.locator("#map[data-geo='1']")).to_be_attached(timeout=10_000)
    return page


def _zoom(page: Page) -> float:
    return float(page.get_attribute("#map", "data-zoom") or "nan")


def _wait_zoom(page: Page, target: float) -> None:
    """Until the map is drawn at zoom ``target`` (to 0.1 %): the page redraws on its next
    animation frame."""
    page.wait_for_function(
        f"Math.abs(+document.getElementById('map').dataset.zoom / {target} - 1) < 1e-3",
        timeout=5000)


def _overlaps(boxes: list[list[float]]) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[:i])
            if a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5]


def test_the_geography_satellite_links_and_ground_stations_are_drawn(
        browser: Browser, console: str, run: tuple[TwinResult, Path]) -> None:
    """China's land, its provinces, coasts and borders; one dashed arc per satellite
    KM-link; a mark on every ground station."""
    net = run[0].scenario.network
    page = _map_page(browser, console, 1280, 800)
    for layer in ("land", "home", "province", "coast", "border"):
        d = page.get_attribute(f'#geo path[data-geo="{layer}"]', "d") or ""
        assert d.count("M") > 3, layer
    satellite = [k.id for k in net.km_links if k.kind is KMLinkKind.SATELLITE]
    assert satellite
    expect(page.locator("path[data-sat-link]")).to_have_count(len(satellite))
    stations = net.nodes_of(NodeKind.GROUND_STATION)
    expect(page.locator("#nodes path.gs-mark")).to_have_count(len(stations))
    page.locator(f'path[data-sat-link="{satellite[0]}"]').dispatch_event("click")
    expect(page.locator("#detail-title")).to_have_text(f"Satellite KM-link {satellite[0]}")
    page.close()


def test_wheel_keys_and_buttons_zoom_and_pan_with_labels_apart(
        browser: Browser, console: str) -> None:
    """The wheel zooms in about the cursor and more names show, none overlapping; + and -
    zoom, an arrow pans 80 px, 0 and the home button give the whole network back."""
    page = _map_page(browser, console, 1280, 800)
    assert _zoom(page) == 1.0
    before = page.evaluate(LABEL_BOXES)
    assert len(before) >= 10 and not _overlaps(before)
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    for _ in range(5):
        page.mouse.wheel(0, -200)
    # five notches of the wheel: 1.35 each
    page.wait_for_function("+document.getElementById('map').dataset.zoom > 4", timeout=5000)
    after = page.evaluate(LABEL_BOXES)
    assert not _overlaps(after)
    shown = set(page.eval_on_selector_all(
        "#labels text[data-label]:not([display])", "ts => ts.map(t => t.dataset.label)"))
    assert any("relay" in n or "-r" in n for n in shown) or len(after) > len(before)
    zoom = _zoom(page)
    page.locator("body").click(position={"x": 5, "y": 5})  # the page, not the search box
    page.keyboard.press("-")
    _wait_zoom(page, zoom / 1.5)
    x0 = float(page.get_attribute('circle[data-node="wuhan"]', "cx") or "nan")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"+document.querySelector('circle[data-node=\"wuhan\"]')"
                           f".getAttribute('cx') > {x0 + 40}", timeout=5000)
    x1 = float(page.get_attribute('circle[data-node="wuhan"]', "cx") or "nan")
    assert x1 - x0 == pytest.approx(80, abs=0.2)
    page.keyboard.press("+")
    _wait_zoom(page, zoom)
    page.click("#zoom-reset")
    expect(page.locator("#map")).to_have_attribute("data-zoom", "1.000")
    page.click("#zoom-in")
    expect(page.locator("#map")).to_have_attribute("data-zoom", "1.500")
    page.close()


def test_a_drag_pans_without_selecting(browser: Browser, console: str) -> None:
    """Dragging the map moves every node by the drag and selects nothing."""
    page = _map_page(browser, console, 1280, 800)
    x0 = float(page.get_attribute('circle[data-node="beijing"]', "cx") or "nan")
    box = page.locator("#map").bounding_box()
    assert box is not None
    # the top right corner: sea, away from the legend and the search box
    page.mouse.move(box["x"] + box["width"] - 160, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 60, box["y"] + 60, steps=5)
    page.mouse.up()
    page.wait_for_function(f"+document.querySelector('circle[data-node=\"beijing\"]')"
                           f".getAttribute('cx') > {x0 + 50}", timeout=5000)
    x1 = float(page.get_attribute('circle[data-node="beijing"]', "cx") or "nan")
    assert x1 - x0 == pytest.approx(100, abs=1)
    expect(page.locator("#detail-title")).to_have_text("Select a link or a node on the map")
    page.close()


def test_the_search_selects_and_centres_a_node_and_a_link(browser: Browser, console: str) -> None:
    """Typing a city lists it first; Enter selects it and brings it to the middle of the
    map, zoomed in; a link found by its id is selected and drawn over the nodes."""
    page = _map_page(browser, console, 1280, 800)
    page.fill("#search", "wuh")
    first = page.locator("#search-results li").first
    expect(first).to_have_attribute("data-result-id", "wuhan")
    page.press("#search", "Enter")
    expect(page.locator("#detail-title")).to_have_text("backbone access Wuhan")
    expect(page.locator('circle[data-node="wuhan"].selected')).to_have_count(1)
    page.wait_for_function("+document.getElementById('map').dataset.zoom >= 4", timeout=5000)
    box = page.locator("#map").bounding_box()
    assert box is not None
    cx = float(page.get_attribute('circle[data-node="wuhan"]', "cx") or "nan")
    cy = float(page.get_attribute('circle[data-node="wuhan"]', "cy") or "nan")
    assert cx == pytest.approx(box["width"] / 2, abs=2)
    assert cy == pytest.approx(box["height"] / 2, abs=2)
    expect(page.locator('#labels text[data-label="wuhan"]:not([display])')).to_have_count(1)
    page.fill("#search", CUT[:14])
    page.locator(f'#search-results li[data-result-id="{CUT}"]').click()
    expect(page.locator("#detail-title")).to_have_text(f"QKD-link {CUT}")
    expect(page.locator(f'line[data-link="{CUT}"].selected')).to_have_count(1)
    expect(page.locator(f'#links-top line[data-over="{CUT}"].selected')).to_have_count(1)
    page.fill("#search", "no such place")
    expect(page.locator("#search-results li.none")).to_have_text("nothing found")
    page.close()


def test_the_alarm_history_keeps_the_cut_and_the_clock_says_simulated(
        browser: Browser, console: str) -> None:
    """The replayed cut is drawn over the nodes while it lasts; its link-down alarm shows in
    the history (raised, then cleared); the clock of a twin run says simulated time."""
    page = _map_page(browser, console, 1280, 800)
    expect(page.locator("#clock-zone")).to_have_text("simulated time", timeout=5000)
    entry = page.locator(f'#alarm-history li[data-alarm-subject="{CUT}"]'
                         '[data-rule="qkd-link-down"]')
    # while the cut lasts the link is drawn a second time, over the nodes
    expect(page.locator(f'#links-top line[data-over="{CUT}"][data-up="0"]')).to_be_attached(
        timeout=45_000)
    expect(entry.first).to_be_attached(timeout=45_000)
    expect(entry.first).to_contain_text("cleared", timeout=45_000)
    entry.first.click()
    expect(page.locator("#detail-title")).to_have_text(f"QKD-link {CUT}")
    page.close()


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 800), (390, 844)])
def test_the_layout_fits_each_screen(browser: Browser, console: str, width: int,
                                     height: int) -> None:
    """At wall, laptop and phone sizes nothing runs off the page sideways, the map has
    room, and the search, zoom buttons, alarms and history are on the page."""
    page = _map_page(browser, console, width, height)
    page.wait_for_timeout(1500)  # a few replayed samples: colours and alarms in
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#map").bounding_box()
    assert box is not None and box["width"] >= min(width * 0.6, 900) and box["height"] >= 300
    for part in ("#search", "#zoom-in", "#alarm-box", "#history-box", "#clock"):
        expect(page.locator(part)).to_be_visible()
    screenshot(page, f"map-{width}x{height}.png")
    if width < 700:  # the phone: the panels are under the map, the page scrolls to them
        page.locator("#history-box").scroll_into_view_if_needed()
        screenshot(page, f"map-{width}x{height}-panels.png")
    page.close()
