"""The console in a real headless browser: Debian's chromium driven by Playwright (its own
browser download is not available here). Tests using the `browser` fixture skip where chromium
or Playwright is missing, but fail under CI=true (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil

import pytest

from support_http import http_address

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    missing = "" if CHROMIUM else "the chromium package (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "Playwright (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests need {missing}; CI must run them")
        pytest.skip(f"the browser tests need {missing}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


def signed_in(browser, server, token: str):
    page = browser.new_context().new_page()
    page.set_default_timeout(20_000)
    page.goto(f"http://{http_address(server)}/")
    assert page.url.endswith("/login?next=%2F")
    page.fill("input[name=token]", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"http://{http_address(server)}/")
    return page
