"""A real kalad and a real Chromium (Debian's, driven by Playwright) for the web UI tests.

Outside CI a missing Chromium or Playwright skips these tests with a message; in CI
(``$CI`` set) it fails them. Every page collects console errors and uncaught
exceptions, and a test fails on any it did not expect. Screenshots go to
``test-artifacts/webui/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.daemon import Daemon

CHROMIUM = os.environ.get("KALAD_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webui"


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"web UI tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(f"web UI tests skipped: {why}")


def require_playwright():
    """Playwright's ``expect``, for a test module's top level (skips or fails the module)."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        why = "Playwright for Python is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"web UI tests skipped: {why}", allow_module_level=True)
    return expect


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("webui")).start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class Console:
    """Console errors and uncaught exceptions of one page; ``allow`` adds expected ones."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def open_page(browser, console: Console, **context_options):
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda msg: console.errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type in ("error", "assert") else None)
    page.on("pageerror", lambda exc: console.errors.append(f"uncaught: {exc}"))
    return context, page


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console):
    context, page = open_page(browser, console, viewport={"width": 1280, "height": 900})
    yield page
    context.close()
    assert not console.unexpected(), "\n".join(console.unexpected())


LEAKS = re.compile(r"\bundefined\b|\bnull\b|\bNaN\b|\[object |Invalid Date")


def shot(page, artifacts: Path, name: str) -> None:
    """Save a screenshot, and check the page shows no value the code forgot to format."""
    page.screenshot(path=artifacts / f"{name}.png", full_page=True)
    text = page.locator("body").inner_text()
    leak = LEAKS.search(text)
    assert leak is None, f"{name}: the page shows {leak.group(0)!r}:\n{text[:2000]}"
