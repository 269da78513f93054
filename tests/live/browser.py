"""What the console's browser tests share: Debian's Chromium driven by Playwright (sync API).

A browser test module calls :func:`require_chromium` before it imports Playwright: without
Chromium the module is skipped, or, with QKDNET_REQUIRE_BROWSER set (as in CI), it fails.
Screenshots go to ``SHOTS`` (test-output/console/ under the repository root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
# Headless and quiet: no sandbox (containers), no GPU, nothing fetched from the internet.
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]


def require_chromium() -> None:
    """Skip the calling test module when Chromium is missing; raise instead when the
    environment variable QKDNET_REQUIRE_BROWSER says the browser tests must run."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("QKDNET_REQUIRE_BROWSER"):
        raise RuntimeError(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)",
                allow_module_level=True)


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """A headless Chromium for the length of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_console(browser: Browser, url: str, width: int, height: int,
                 timezone: str | None = None, login: tuple[str, str] | None = None) -> Page:
    """A new page of ``width`` x ``height`` CSS pixels on the console at ``url``, once its
    map is on screen; ``timezone`` (an IANA name) sets the clock the page formats times in;
    ``login`` (name, password) is typed into the page's login form (a replay has none)."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": width, "height": height},
                            timezone_id=timezone)
    page.goto(url)
    if login is not None:
        expect(page.locator("#login")).to_be_visible()
        page.fill("#login-name", login[0])
        page.fill("#login-password", login[1])
        page.click("#login-submit")
        expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#map")).to_be_visible()
    expect(page.locator("circle[data-node]").first).to_be_attached()
    return page


def map_nodes(page: Page) -> set[str]:
    """The ids of the nodes the page's map draws."""
    return set(page.eval_on_selector_all("circle[data-node]",
                                         "els => els.map(e => e.dataset.node)"))


def screenshot(page: Page, name: str) -> Path:
    """Save what ``page`` shows to SHOTS/``name``; the file's path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))
    return path
