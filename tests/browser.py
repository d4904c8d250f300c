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


# WCAG 2 contrast of every visible text against the background it is drawn on (the first opaque
# background up its ancestors): at least 4.5:1, or 3:1 for large text. Returns the offenders.
LOW_CONTRAST = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const color = rgb(getComputedStyle(node).backgroundColor);
      if (color.length === 3 || (color.length === 4 && color[3] > 0.5)) return color.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const offenders = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.offsetParent === null || el.closest('svg, video')) continue;
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const field = el.matches('input, select, textarea') && (el.value || el.placeholder);
    if (!ownText && !field) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const text = (el.textContent || el.placeholder || '').trim().slice(0, 30);
    if (ratio < needed) offenders.push(`${el.tagName}.${el.className} "${text}" ${ratio.toFixed(2)}`);
  }
  return offenders;
}"""
