"""Tests of the operator console (/console) against the real stack of tests/e2e (gunicorn, rq workers, the RQ cron
poller, Redis, SeaweedFS, the Twilio sandbox): in headless Debian Chromium driven by Selenium, and over plain HTTP.

Tests using the ``browser`` fixture are skipped, saying why, when Chromium, its driver or selenium are missing
(``apt-get install chromium chromium-driver`` as root; .ci/run does); the HTTP-only ones always run. Selenium Manager
is never asked for anything: the driver and the browser are given by path (and SE_OFFLINE is set), so nothing is
downloaded.

Screenshots of every page go to ``<pytest tmp>/screenshots/`` (printed on failure); the final ones the README shows
(overview, coverage calendar, jobs list, feeds) are copied to docs/screenshots/ only with CONSOLE_SCREENSHOTS_DOCS=1
(to refresh the README's pictures), so a test run leaves the working tree alone.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import make_stack, pytest_runtest_makereport, s3  # noqa: F401 - shared fixtures

CHROMIUM = Path(os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CONSOLE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-GB",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "the selenium package is not installed (pip install -r requirements-dev.txt)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's {package} package (apt-get install -y chromium chromium-driver)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_browser()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"console browser tests skipped: {reason}")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):  # the console's HTTP-only tests still run
            item.add_marker(skip)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh headless Chromium (new empty profile) at a desktop size; quit after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # belt and braces: Selenium Manager is skipped anyway (paths given)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}", "--window-size=1366,900"):
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser: Any, tmp_path: Path) -> Callable[..., Path]:
    """``screenshot(name, docs=False, width=None, max_height=8000)``: the whole page (down to ``max_height``) as PNG
    under tmp_path/screenshots (and docs/screenshots/ when ``docs``); ``width``: at another viewport width (390:
    a phone)."""
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)

    def take(name: str, docs: bool = False, width: int | None = None, max_height: int = 8000) -> Path:
        size = browser.get_window_size()
        if width:
            browser.set_window_size(width, size["height"])
        # The whole page, not just the viewport: Chromium's DevTools capture beyond the viewport.
        content = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": content["width"], "height": min(content["height"], max_height), "scale": 1}
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        if width:
            browser.set_window_size(size["width"], size["height"])
        if docs and os.environ.get("CONSOLE_SCREENSHOTS_DOCS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
        print(f"screenshot: {path}")
        return path

    return take
