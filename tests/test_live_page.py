"""The live page in a real browser (Debian's chromium, headless): submit, watch events and the
progress bar move, play the video; a queued one shows its place."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from lunos_events.runtime import Runtime
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import Operation
from tests.browser import LOW_CONTRAST, PHONE, browser, chromium_or_skip, screenshot
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle, FakeGoogleServer
from tests.helpers import generation_body
from tests.test_provider_capacity import pool_settings

pytestmark = pytest.mark.anyio

GENERATING = re.compile(r"Generating (\d+)% · ~(\d+) s left")
LABEL_MATCHES = "(pattern) => new RegExp(pattern).test(document.getElementById('progress-label').textContent)"
SHOWN = """() => { const b = document.getElementById('progress');
  return [document.getElementById('progress-label').textContent, b.value, b.hasAttribute('value')]; }"""
BAR = "() => { const b = document.getElementById('progress'); return [b.value, b.hasAttribute('value')]; }"


# A run of 4 s reported every 0.3 s: time to see the bar move.
@pytest.mark.settings(simulator_latency_seconds=4, progress_event_seconds=0.3)
async def test_the_page_submits_and_plays_the_finished_video(service: Runtime) -> None:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    key = await create_user(service, "browser-user")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))

            await page.goto(service.settings.resolved_public_base_url() + "/")
            await page.fill("#api-key", key)
            await page.fill("#app-id", "web")
            await page.fill("#prompt", "A paper boat drifting down a rainy street")
            await page.click("#submit")

            # Processing: the bar shows the estimate and its words, and moves with the reports.
            label = page.locator("#progress-label")
            await page.locator("#progress-box:not([hidden])").wait_for(timeout=30_000)
            await page.wait_for_function(
                "() => document.getElementById('status').textContent === 'processing'", timeout=30_000
            )
            # Words and bar read at once: a report may come in between two reads.
            words, value, determinate = await page.evaluate(SHOWN)
            first = GENERATING.fullmatch(words)
            assert first and determinate and value == int(first.group(1)) and 1 <= value <= 99, words
            await page.wait_for_function(
                f"() => document.getElementById('progress').value >= {value + 20}", timeout=30_000
            )
            words, later_value, _ = await page.evaluate(SHOWN)
            later = GENERATING.fullmatch(words)
            assert later and value + 20 <= int(later.group(1)) == later_value <= 99, words
            # The bar is what assistive technology reads: a progressbar named by its words, valued.
            bar = page.get_by_role("progressbar", name=re.compile(f"^{GENERATING.pattern}$"))
            assert int(await bar.get_attribute("value") or 0) >= value + 20
            assert (low := await page.evaluate(LOW_CONTRAST)) == [], low
            await screenshot(page, "live-processing")

            # The status changes arrive through EventSource, in order, ending with the completed
            # one; the stream opened on the current state (the provider took it during the submit).
            # Progress reports are not logged: they are not status changes.
            completed = page.locator('#events li[data-type="video.completed"]')
            await completed.wait_for(timeout=60_000)
            types = await page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.type)")
            assert types == ["video.processing", "video.completed"], console
            assert await page.text_content("#status") == "completed"
            assert await label.text_content() == "Done" and (await page.evaluate(BAR)) == [100, True]

            # The <video> element really loads the MP4 (its metadata: a duration and a frame size).
            await page.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return !v.hidden && v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=30_000,
            )
            duration = await page.eval_on_selector("#video", "v => v.duration")
            assert duration > 0

            # The API key only ever travelled in headers: no URL the page requested contains it.
            assert requests and not any(key in url for url in requests)
            assert any("/events?token=" in url for url in requests)

            # The operation was recorded under the page's app id.
            op_id = await page.text_content("#operation-id")
            async with service.store.reading() as conn:
                row = (
                    await conn.execute(
                        select(Operation.app_id, Operation.status).where(Operation.id == op_id)
                    )
                ).one()
            assert tuple(row) == ("web", "completed")
        finally:
            await browser.close()


async def test_a_queued_video_shows_its_place_then_its_progress(settings: Settings) -> None:
    # One provider slot, held by another account's video: the page's video waits first in line.
    with FakeGoogleServer(FakeGoogle(latency_seconds=4.0)) as server:
        settings = pool_settings(settings, server, 1, "key-a").model_copy(
            update={"progress_event_seconds": 0.3}
        )
        base = settings.resolved_public_base_url()
        async with running_service(settings) as rt, browser() as chromium:
            other = await create_user(rt, "page-other")
            key = await create_user(rt, "page-queued")
            async with httpx.AsyncClient(base_url=base) as client:
                held = await client.post(
                    "/v1/video/generations", headers=auth(other), json=generation_body(prompt="first")
                )
            assert held.json().get("operation_name"), held.text  # it took the one slot

            # On a phone, in dark mode: still readable, nothing wider than the screen.
            page = await chromium.new_page(viewport=PHONE, color_scheme="dark")
            await page.goto(base + "/")
            await page.fill("#api-key", key)
            await page.fill("#prompt", "A lantern waiting its turn")
            await page.click("#submit")

            label = page.locator("#progress-label")
            await page.wait_for_function(LABEL_MATCHES, arg=r"^Queued · #1 · ~\d+ s$", timeout=30_000)
            assert await page.text_content("#status") == "pending"
            assert (await page.evaluate(BAR))[1] is False  # indeterminate: nothing to measure yet
            # The stream's pending event carries no place: the place the poll told stays shown.
            await page.locator('#events li[data-type="video.pending"]').wait_for()
            assert re.fullmatch(r"Queued · #1 · ~\d+ s", await label.text_content() or ""), (
                await label.text_content()
            )
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
            assert (low := await page.evaluate(LOW_CONTRAST)) == [], low
            await page.locator("#job").scroll_into_view_if_needed()
            await screenshot(page, "live-queued-phone-dark", full_page=False)

            await page.wait_for_function(LABEL_MATCHES, arg=GENERATING.pattern, timeout=30_000)
            assert await page.text_content("#status") == "processing"
            assert (await page.evaluate(BAR))[1] is True
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
            assert (low := await page.evaluate(LOW_CONTRAST)) == [], low
            await screenshot(page, "live-processing-phone-dark", full_page=False)

            await page.locator('#events li[data-type="video.completed"]').wait_for(timeout=30_000)
            types = await page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.type)")
            # Queued at the submit: the stream opened on its pending state, then it started.
            assert types == ["video.pending", "video.processing", "video.completed"]
            assert await label.text_content() == "Done"
