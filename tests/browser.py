"""Headless Chromium for the browser tests (the site, JupyterLab): Debian's chromium and chromium-driver driven by
Selenium, nothing downloaded.

Where no Chromium is installed (a laptop) the tests skip with the reason; with ``DHC_REQUIRE_BROWSER=1`` (set by
``.ci/run``, which installs both) they fail instead, so CI always runs them. Screenshots go to
``$DHC_SCREENSHOT_DIR`` (default ``build/screenshots``, ignored by git), where a failing run can be inspected.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {"chromium": ("chromium", "chromium-browser", "google-chrome"), "driver": ("chromedriver",)}


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None where either is missing."""
    found = [next((p for p in map(shutil.which, names) if p), None) for names in CANDIDATES.values()]
    return tuple(found) if all(found) else None  # type: ignore[return-value]


def need_chromium() -> tuple[str, str]:
    found = find_chromium()
    if found is None:
        why = "no headless Chromium: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("DHC_REQUIRE_BROWSER") == "1":
            pytest.fail(why + " (DHC_REQUIRE_BROWSER=1)")
        pytest.skip(why)
    return found


def screenshot_dir() -> Path:
    path = Path(os.environ.get("DHC_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator["webdriver.Chrome"]:  # noqa: F821
    """A headless Chromium session that records the console (read with ``console_errors``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = need_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def console_errors(session) -> list[str]:
    """The console's SEVERE entries since the last call (the log is drained by reading it)."""
    return [e["message"] for e in session.get_log("browser") if e["level"] == "SEVERE"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test's output is the assertions, not an access log
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
