"""A real browser for the page tests: Debian's chromium (headless) driven by Playwright, and the
screenshots the tests keep as artifacts."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.processes import PROJECT_ROOT

CHROMIUM = os.environ.get("LUNOS_CHROMIUM", "/usr/bin/chromium")
# Screenshots land here (LUNOS_TEST_ARTIFACTS, else tmp/artifacts in the checkout).
ARTIFACTS = Path(os.environ.get("LUNOS_TEST_ARTIFACTS", PROJECT_ROOT / "tmp" / "artifacts"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_or_skip() -> str:
    """Locally a missing browser skips; in CI (LUNOS_CI=1, where .ci/run installs it) it fails."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("LUNOS_CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot (the whole page, or what the screen shows) as a test artifact; print where."""
    await anyio.Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML)"""
