"""The live page in a real browser (Debian's chromium, headless): submit, watch events, play the video."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lunos_events.runtime import Runtime
from lunos_events.store.models import Operation
from tests.browser import chromium_or_skip
from tests.conftest import create_user

pytestmark = pytest.mark.anyio


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

            # The events arrive through EventSource, in order, ending with the completed one.
            completed = page.locator('#events li[data-type="video.completed"]')
            await completed.wait_for(timeout=60_000)
            types = await page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.type)")
            assert types == ["video.pending", "video.completed"], console
            assert await page.text_content("#status") == "completed"

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
