"""`qkdnet console` over a finished twin run, in a real headless Chromium: the page maps every
backbone node of the run's network, its clock follows the replayed hours, a click on a link
charts the replayed history, and the run's scripted cut draws the link down and lists its
link-down alarm while the replay is inside the fault, both clearing after it. A screenshot
taken during the fault goes to test-output/console/replay-1920x1080.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import launch_chromium, map_nodes, open_console, require_chromium, screenshot
from twin_report import CUT, build_report, serve_console

from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import NodeKind
from qkdnet.twin.engine import TwinResult

require_chromium()

from playwright.sync_api import Browser, expect  # noqa: E402

# One hourly sample a second: the cut (samples at 6 h … 9 h) is in the page from about 5 s
# after the console starts until about 9 s, several of the page's one-second updates long.
SPEED = "1"
# A fresh console per test, so that each test sees the replay from its start; with --loop a
# fault window missed on a slow machine comes round again one pass (33 s) later.
FAULT_DUE_MS = 45_000
FAULT_ENDS_MS = 10_000


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TwinResult, Path]:
    return build_report(tmp_path_factory.mktemp("replay-browser"))


@pytest.fixture
def console(run: tuple[TwinResult, Path]) -> Iterator[str]:
    with serve_console(run[1], "--speed", SPEED, "--loop") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def test_the_page_maps_every_backbone_node_and_link_of_the_run(
        browser: Browser, console: str, run: tuple[TwinResult, Path]) -> None:
    result = run[0]
    page = open_console(browser, console, 1280, 800)
    # The run is of the built-in CN-QCN (network: cn-qcn in the scenario).
    backbone = {n.id for n in build_cn_qcn().nodes
                if n.kind in (NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY)}
    assert len(backbone) == 145
    expect(page.locator("circle[data-node]").first).to_be_attached()
    assert backbone <= map_nodes(page)
    expect(page.locator("line[data-link]")).to_have_count(len(result.link_ids))
    expect(page.locator("#conn")).to_have_text("live", timeout=5000)
    page.close()


def test_the_clock_follows_the_replayed_hours(browser: Browser, console: str) -> None:
    # Simulated time: the day of the run and the sample's whole hour, in any time zone.
    page = open_console(browser, console, 1280, 800, timezone="Asia/Shanghai")
    clock = page.locator("#clock")
    on_the_hour = re.compile(r"^day \d+ \d{2}:00:00$")
    seen: list[str] = []
    for _ in range(3):
        expect(clock).to_have_text(on_the_hour, timeout=5000)
        seen.append(clock.inner_text())
        expect(clock).not_to_have_text(seen[-1], timeout=5000)  # the next sample is in
    assert len(set(seen)) == 3
    page.close()


def test_a_click_on_a_link_charts_its_replayed_history(browser: Browser, console: str) -> None:
    page = open_console(browser, console, 1280, 800)
    # Two samples make a line: wait for the clock to move past the first one.
    clock = page.locator("#clock")
    expect(clock).to_have_text(re.compile(r"\d"), timeout=5000)
    expect(clock).not_to_have_text(clock.inner_text(), timeout=5000)
    # The link is a few pixels long at this size: send the click to its line directly.
    page.locator(f'line[data-link="{CUT}"]').dispatch_event("click")
    expect(page.locator("#detail-title")).to_have_text(f"QKD-link {CUT}")
    chart = page.locator(f'#chart[data-link="{CUT}"]')
    expect(chart).to_be_visible(timeout=5000)
    expect(chart.locator("path.skr")).to_have_attribute("d", re.compile("L"))
    expect(chart.locator("path.qber")).to_be_attached()
    expect(chart.locator("text.title-skr")).to_contain_text("SKR · now")
    page.close()


def test_the_scripted_cut_draws_its_link_down_and_alarms_until_it_ends(
        browser: Browser, console: str) -> None:
    page = open_console(browser, console, 1920, 1080, timezone="UTC")
    line = page.locator(f'line[data-link="{CUT}"]')
    alarm = page.locator(f'#alarms li[data-alarm-subject="{CUT}"][data-rule="qkd-link-down"]')
    # Selected first, so that the screenshot also shows the link's chart and alarms.
    line.dispatch_event("click")
    expect(page.locator(f'#chart[data-link="{CUT}"]')).to_be_visible(timeout=5000)

    expect(alarm).to_have_count(1, timeout=FAULT_DUE_MS)
    expect(line).to_have_attribute("data-up", "0")
    expect(alarm).to_contain_text("QKD-link down")
    expect(page.locator(f'#detail-alarms li[data-alarm-subject="{CUT}"]')).to_have_count(1)
    # A second click refetches the history at once (the chart's own refresh is every 5 s).
    line.dispatch_event("click")
    expect(page.locator("#chart text.title-skr")).to_have_text("SKR · now 0.00 bit/s")
    screenshot(page, "replay-1920x1080.png")

    expect(alarm).to_have_count(0, timeout=FAULT_ENDS_MS)
    expect(line).to_have_attribute("data-up", "1")
    page.close()
