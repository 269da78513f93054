"""The console's Services panel in a real headless Chromium (Debian's, driven by Playwright)
against a real `qkdnet serve` of the a--b--c chain: when the relay b on the service's only
route stops, the panel shows the service unserved with the stopped node as its root cause,
and served again once b starts. A screenshot goes to test-output/console/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import launch_chromium, open_console, require_chromium, screenshot
from chain_scenario import CHAIN_SCENARIO
from om_login import PASSWORD, add_operator, session
from polling import wait_for

from qkdnet.apps.sae_client import KmeError, SaeClient
from qkdnet.live.launch import ServeProcess, start_serve

require_chromium()

from playwright.sync_api import Browser, expect  # noqa: E402

SERVICE = "sae-a->sae-c"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServeProcess]]:
    folder = tmp_path_factory.mktemp("services")
    (folder / "chain.yaml").write_text(CHAIN_SCENARIO)
    process = start_serve(folder / "live", str(folder / "chain.yaml"),
                          ["--prefill-bits", "65536"])
    add_operator(folder / "live", "zhang", "operator")
    try:
        yield folder / "live", process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def _delivered(kme: SaeClient) -> bool:
    try:
        kme.enc_keys("sae-c", method="GET")
    except KmeError:
        return False
    return True


def test_the_services_panel_shows_a_service_unserved_with_its_root_cause_then_served(
        browser: Browser, served: tuple[Path, ServeProcess]) -> None:
    """b stopped: the service's row turns unserved and names node b; b started: served."""
    folder, process = served
    url = str(process.manifest["om_url"])
    with SaeClient.from_manifest(process.manifest, "sae-a", timeout_s=10) as kme, \
            session(folder, url) as om:
        assert wait_for(lambda: _delivered(kme))
        page = open_console(browser, url, 1280, 800, login=("zhang", PASSWORD))
        row = page.locator(f'#services li[data-service="{SERVICE}"]')
        expect(row).to_have_attribute("data-state", "served", timeout=5000)
        expect(row.locator(".svc-route")).to_have_text("a → b → c")
        _post(om, f"{url}/api/nodes/b/stop")
        assert not _delivered(kme)  # 503: no route
        expect(row).to_have_attribute("data-state", "unserved", timeout=5000)
        cause = row.locator('.svc-cause [data-rule="node-down"][data-subject="b"]')
        expect(cause).to_have_count(1)
        expect(row.locator(".svc-route")).to_contain_text("no route")
        expect(page.locator("#svc-count")).to_have_text("1 unserved")
        screenshot(page, "service-unserved-1280x800.png")
        _post(om, f"{url}/api/nodes/b/start")
        assert wait_for(lambda: _delivered(kme))
        expect(row).to_have_attribute("data-state", "served", timeout=5000)
        expect(row.locator(".svc-cause")).to_have_count(0)
        expect(row.locator(".svc-qos")).to_contain_text("restored in")
        page.close()


def _post(om: httpx.Client, url: str) -> None:
    answer = om.post(url, timeout=5)
    assert answer.status_code == 200, answer.text
