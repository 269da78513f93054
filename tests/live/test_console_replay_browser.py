"""`qkdnet console` over a finished twin run, in a real headless Chromium: the page maps every
backbone node of the run's network, says REPLAY (not live) with the simulated date and time,
plays and pauses from its replay bar, and a seek by typed date or by the slider moves the
shown time and the alarms to the target: into the run's scripted cut (the link drawn down,
its link-down alarm listed) and past it (both cleared, the alarm history as alarms.csv has it
by then). A screenshot taken inside the fault goes to
test-output/console/replay-1920x1080.png."""

from __future__ import annotations

import csv
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

from playwright.sync_api import Browser, Page, expect  # noqa: E402

# One simulated hour a second: the page's clock moves between its 250 ms polls.
SPEED = "3600"
REPLAY_DATE = re.compile(r"^2025-01-0[12] \d{2}:\d{2}:\d{2} UTC$")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TwinResult, Path]:
    return build_report(tmp_path_factory.mktemp("replay-browser"))


@pytest.fixture
def console(run: tuple[TwinResult, Path]) -> Iterator[str]:
    with serve_console(run[1], "--speed", SPEED) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def _seek_slider(page: Page, t_s: float) -> None:
    """Drag the replay slider to ``t_s`` (simulated s): its value, then its change event."""
    page.locator("#replay-seek").evaluate(
        "(el, t) => { el.value = String(t); el.dispatchEvent(new Event('input'));"
        " el.dispatchEvent(new Event('change')); }", t_s)


def _history_at(folder: Path, t_s: float) -> tuple[int, int]:
    """Alarms raised by ``t_s`` and of them cleared by then, as alarms.csv has them."""
    with (folder / "alarms.csv").open(newline="") as f:
        rows = [(float(r["raised_h"]) * 3600, r["cleared_h"]) for r in csv.DictReader(f)]
    raised = [c for r, c in rows if r <= t_s]
    return len(raised), sum(1 for c in raised if c and float(c) * 3600 <= t_s)


def test_the_page_says_replay_with_the_simulated_date_and_maps_the_run(
        browser: Browser, console: str, run: tuple[TwinResult, Path]) -> None:
    """REPLAY badge, the run's date and time (UTC, simulated), every backbone node and link;
    the replay bar on screen at phone width too."""
    result = run[0]
    page = open_console(browser, console, 1280, 800, timezone="Asia/Shanghai")
    backbone = {n.id for n in build_cn_qcn().nodes
                if n.kind in (NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY)}
    assert len(backbone) == 145
    expect(page.locator("circle[data-node]").first).to_be_attached()
    assert backbone <= map_nodes(page)
    expect(page.locator("line[data-link]")).to_have_count(len(result.link_ids))
    expect(page.locator("#conn")).to_have_text("REPLAY", timeout=5000)
    expect(page.locator("#clock")).to_have_text(REPLAY_DATE, timeout=5000)
    expect(page.locator("#clock-zone")).to_have_text("simulated time")
    # the page's connection started the replay: the date moves on
    shown = page.locator("#clock").inner_text()
    expect(page.locator("#clock")).not_to_have_text(shown, timeout=5000)
    expect(page.locator("#conn")).to_have_text("REPLAY")  # the state events do not say live
    screenshot(page, "replay-1280x800.png")
    page.close()
    phone = open_console(browser, console, 390, 844)
    for part in ("#replay-play", "#replay-seek", "#replay-go", "#clock"):
        expect(phone.locator(part)).to_be_in_viewport()
    screenshot(phone, "replay-390x844.png")
    phone.close()


def test_pause_holds_the_clock_and_play_moves_it_again(browser: Browser, console: str) -> None:
    """The replay bar's button pauses (the clock holds) and plays (the clock moves)."""
    page = open_console(browser, console, 1280, 800)
    button, clock = page.locator("#replay-play"), page.locator("#clock")
    expect(button).to_have_attribute("data-playing", "1", timeout=5000)
    button.click()
    expect(button).to_have_attribute("data-playing", "0")
    expect(button).to_have_text("Play")
    held = clock.inner_text()
    page.wait_for_timeout(1000)  # four polls at one simulated hour a second
    expect(clock).to_have_text(held)
    button.click()
    expect(button).to_have_attribute("data-playing", "1")
    expect(clock).not_to_have_text(held, timeout=5000)
    page.close()


def test_a_seek_moves_the_time_and_the_alarms_into_the_cut_and_past_it(
        browser: Browser, console: str, run: tuple[TwinResult, Path]) -> None:
    """Typed 07:30 on day 1: the clock says it, the cut link is down with its alarm; the
    slider to 20:00: the alarm and the outage are over, the history as alarms.csv has it."""
    page = open_console(browser, console, 1920, 1080, timezone="UTC")
    line = page.locator(f'line[data-link="{CUT}"]')
    alarm = page.locator(f'#alarms li[data-alarm-subject="{CUT}"][data-rule="qkd-link-down"]')
    expect(page.locator("#replay-play")).to_have_attribute("data-playing", "1", timeout=5000)
    page.locator("#replay-play").click()
    expect(page.locator("#replay-play")).to_have_attribute("data-playing", "0")

    page.fill("#replay-at", "2025-01-01T07:30:00")
    page.locator("#replay-go").click()
    expect(page.locator("#clock")).to_have_text("2025-01-01 07:30:00 UTC")
    expect(alarm).to_have_count(1, timeout=5000)
    expect(line).to_have_attribute("data-up", "0")
    expect(alarm).to_contain_text("QKD-link down")
    line.dispatch_event("click")
    expect(page.locator(f'#chart[data-link="{CUT}"]')).to_be_visible(timeout=5000)
    screenshot(page, "replay-1920x1080.png")

    _seek_slider(page, 20 * 3600)
    expect(page.locator("#clock")).to_have_text("2025-01-01 20:00:00 UTC")
    expect(alarm).to_have_count(0, timeout=5000)
    expect(line).to_have_attribute("data-up", "1")
    raised, cleared = _history_at(run[1], 20 * 3600)
    expect(page.locator("#history-count")).to_have_text(f"{raised} raised · {cleared} cleared",
                                                         timeout=10_000)
    expect(page.locator(f'#alarm-history li[data-alarm-subject="{CUT}"]')).to_have_count(1)

    _seek_slider(page, 4 * 3600)  # back before the cut: rebuilt from the start
    expect(page.locator("#clock")).to_have_text("2025-01-01 04:00:00 UTC")
    expect(page.locator(f'#alarm-history li[data-alarm-subject="{CUT}"]')).to_have_count(
        0, timeout=10_000)
    page.close()
