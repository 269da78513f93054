"""The O&M console in a real headless Chromium (Debian's, driven by Playwright) against a
real `qkdnet serve` of the built-in CN-QCN: the map shows every backbone node, a click on a
link charts it, a cut raises an alarm in the page without a reload, a repair clears it.
Screenshots at wall-screen and laptop sizes go to test-output/console/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkdnet.live.launch import start_serve
from qkdnet.topology.cn_qcn import build_cn_qcn
from qkdnet.topology.model import NodeKind

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
LINK = "beijing--beijing-xiongan-r1"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("QKDNET_REQUIRE_BROWSER"):
        raise RuntimeError(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def om_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    served = start_serve(tmp_path_factory.mktemp("live"), "cn-qcn", ["--prefill-bits", "65536"],
                         timeout_s=120)
    try:
        yield str(served.manifest["om_url"])
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def _page(browser: Any, url: str, width: int, height: int) -> Page:
    page: Page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    expect(page.locator("#map")).to_be_visible()
    return page


def test_the_map_shows_every_backbone_node(browser: Any, om_url: str) -> None:
    page = _page(browser, om_url, 1920, 1080)
    backbone = [n.id for n in build_cn_qcn().nodes
                if n.kind in (NodeKind.BACKBONE_ACCESS, NodeKind.BACKBONE_RELAY)]
    assert len(backbone) == 145
    expect(page.locator("circle[data-node]").first).to_be_attached()
    shown = set(page.eval_on_selector_all("circle[data-node]",
                                          "els => els.map(e => e.dataset.node)"))
    assert set(backbone) <= shown
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "wall-1920x1080.png"))
    page.close()


def test_a_click_on_a_link_shows_its_chart(browser: Any, om_url: str) -> None:
    page = _page(browser, om_url, 1280, 800)
    # The link is a few pixels long at this size: send the click to its line directly.
    page.locator(f'line[data-link="{LINK}"]').dispatch_event("click")
    expect(page.locator(f'#chart[data-link="{LINK}"]')).to_be_visible(timeout=5000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "laptop-1280x800.png"))
    page.close()


def test_a_cut_raises_an_alarm_in_the_page_and_a_repair_clears_it(
        browser: Any, om_url: str) -> None:
    page = _page(browser, om_url, 1280, 800)
    alarm = page.locator(f'#alarms li[data-alarm-subject="{LINK}"][data-rule="qkd-link-down"]')
    expect(alarm).to_have_count(0)
    assert httpx.post(f"{om_url}/api/links/{LINK}/cut", timeout=5).status_code == 200
    expect(alarm).to_have_count(1, timeout=5000)
    expect(page.locator(f'line[data-link="{LINK}"][data-up="0"]').first).to_be_attached()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "alarm-1280x800.png"))
    assert httpx.post(f"{om_url}/api/links/{LINK}/repair", timeout=5).status_code == 200
    expect(alarm).to_have_count(0, timeout=5000)
    page.close()
