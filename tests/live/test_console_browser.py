"""The O&M console in a real headless Chromium (Debian's, driven by Playwright) against a
real `qkdnet serve` of the built-in CN-QCN: the map shows every backbone node, a click on a
link charts it, a cut raises an alarm in the page without a reload, a repair clears it; an
operator stops and starts a node and acknowledges an alarm from the page; the backbone's
SKR colours tell its links apart. Screenshots at wall-screen and laptop sizes go to
test-output/console/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import launch_chromium, map_nodes, open_console, require_chromium, screenshot
from om_login import PASSWORD, add_operator, session

from qkdnet.live.launch import start_serve
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import NodeKind

require_chromium()

from playwright.sync_api import Browser, expect  # noqa: E402

LINK = "beijing--beijing-xiongan-r1"


#: The operator the page logs in as.
ZHANG = ("zhang", PASSWORD)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("live")
    served = start_serve(folder, "cn-qcn", ["--prefill-bits", "65536"], timeout_s=120)
    add_operator(folder, "zhang", "operator")
    try:
        yield folder, str(served.manifest["om_url"])
    finally:
        served.stop()


@pytest.fixture(scope="module")
def om_url(served: tuple[Path, str]) -> str:
    return served[1]


@pytest.fixture(scope="module")
def om(served: tuple[Path, str]) -> Iterator[httpx.Client]:
    """A script's session beside the page's (as operator "ops")."""
    with session(*served) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def test_the_map_shows_every_backbone_node(browser: Browser, om_url: str) -> None:
    page = open_console(browser, om_url, 1920, 1080, login=ZHANG)
    backbone = [n.id for n in build_cn_qcn().nodes
                if n.kind in (NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY)]
    assert len(backbone) == 145
    expect(page.locator("circle[data-node]").first).to_be_attached()
    assert set(backbone) <= map_nodes(page)
    screenshot(page, "wall-1920x1080.png")
    page.close()


def test_a_click_on_a_link_shows_its_chart(browser: Browser, om_url: str) -> None:
    page = open_console(browser, om_url, 1280, 800, login=ZHANG)
    # The link is a few pixels long at this size: send the click to its line directly.
    page.locator(f'line[data-link="{LINK}"]').dispatch_event("click")
    expect(page.locator(f'#chart[data-link="{LINK}"]')).to_be_visible(timeout=5000)
    screenshot(page, "laptop-1280x800.png")
    page.close()


def test_a_cut_raises_an_alarm_in_the_page_and_a_repair_clears_it(
        browser: Browser, om_url: str, om: httpx.Client) -> None:
    page = open_console(browser, om_url, 1280, 800, login=ZHANG)
    alarm = page.locator(f'#alarms li[data-alarm-subject="{LINK}"][data-rule="qkd-link-down"]')
    expect(alarm).to_have_count(0)
    assert om.post(f"{om_url}/api/links/{LINK}/cut", timeout=5).status_code == 200
    expect(alarm).to_have_count(1, timeout=5000)
    expect(page.locator(f'line[data-link="{LINK}"][data-up="0"]').first).to_be_attached()
    # the availability table lists the outage as it starts, not at its next 5 s poll
    row = page.locator(f'#availability tr[data-link="{LINK}"] td.down')
    expect(row).to_have_text("DOWN", timeout=3000)
    screenshot(page, "alarm-1280x800.png")
    assert om.post(f"{om_url}/api/links/{LINK}/repair", timeout=5).status_code == 200
    expect(alarm).to_have_count(0, timeout=5000)
    page.close()


def test_an_operator_stops_and_starts_a_node_from_the_page(browser: Browser,
                                                           om_url: str) -> None:
    page = open_console(browser, om_url, 1920, 1080, login=ZHANG)
    node = page.locator('circle[data-node="wuhan"]')
    node.dispatch_event("click")
    button = page.locator("#fault-action")
    expect(button).to_have_attribute("data-action", "stop")
    button.click()
    alarm = page.locator('#alarms li[data-alarm-subject="wuhan"][data-rule="node-down"]')
    expect(alarm).to_have_count(1, timeout=5000)
    expect(node).to_have_class(re.compile(r"(^|\s)down(\s|$)"))
    assert page.locator('line[data-link="wuhan--wuhan-m1"][data-up="0"]').count() == 1
    expect(button).to_have_attribute("data-action", "start")
    # one root alarm to act on: the node's 6 QKD-links and 6 KM-links are filed under it
    expect(alarm).to_have_attribute("data-related", "12")
    related = page.locator('#alarms li[data-alarm-subject="wuhan--wuhan-m1"]')
    expect(related).to_be_hidden()
    alarm.locator("button.related-toggle").click()
    expect(related).to_be_visible()
    screenshot(page, "node-stopped-1920x1080.png")
    button.click()
    expect(alarm).to_have_count(0, timeout=5000)
    expect(page.locator('line[data-link="wuhan--wuhan-m1"][data-up="1"]')).to_have_count(1)
    assert "down" not in (node.get_attribute("class") or "").split()
    page.close()


def test_an_operator_acknowledges_an_alarm_under_their_name(browser: Browser,
                                                            om_url: str, om: httpx.Client) -> None:
    link = "harbin--harbin-m1"
    page = open_console(browser, om_url, 1280, 800, login=ZHANG)
    assert om.post(f"{om_url}/api/links/{link}/cut", timeout=5).status_code == 200
    try:
        alarm = page.locator(f'#alarms li[data-alarm-subject="{link}"]'
                             '[data-rule="qkd-link-down"]')
        alarm.locator("button.ack").click(timeout=5000)
        expect(alarm).to_have_attribute("data-acked", "1", timeout=5000)
        expect(alarm).to_contain_text("acknowledged by zhang")
        acked = [a for a in om.get(f"{om_url}/api/alarms", timeout=5).json()["active"]
                 if a["subject"] == link and a["rule"] == "qkd-link-down"]
        assert [a["acknowledged_by"] for a in acked] == ["zhang"]
    finally:
        om.post(f"{om_url}/api/links/{link}/repair", timeout=5)
    page.close()


def test_backbone_links_are_told_apart_by_colour(browser: Browser, om_url: str) -> None:
    """The colour scale fits the backbone's kbit/s by default, so its links spread over the
    ramp instead of sharing one end of a scale stretched to the metro's Mbit/s."""
    page = open_console(browser, om_url, 1920, 1080, login=ZHANG)
    backbone = 'line[data-kind="backbone"][data-up="1"]:not(.nodata)'
    expect(page.locator(backbone).first).to_be_attached(timeout=5000)
    colours = page.eval_on_selector_all(backbone, "els => els.map(e => e.style.stroke)")
    assert len(set(colours)) >= 20
    expect(page.locator("#scale-layer")).to_have_value("backbone")
    page.select_option("#scale-layer", "all")
    spread = page.eval_on_selector_all(backbone, "els => els.map(e => e.style.stroke)")
    assert len(set(spread)) < len(set(colours))
    page.close()
