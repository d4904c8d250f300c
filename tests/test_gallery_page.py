"""The gallery on `/` in a real browser: balance and tier, the account's videos newest first,
live status over the account stream, filters, infinite scroll, play in place, the usage chart;
screenshots at desktop and phone widths."""

from __future__ import annotations

import re

import anyio
import httpx
import pytest

from lunos_events.runtime import Runtime
from tests.browser import DESKTOP, LOW_CONTRAST, PHONE, UNLABELLED_CONTROLS, browser, screenshot
from tests.conftest import auth, create_user
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio


async def submit(client: httpx.AsyncClient, key: str, app: str, prompt: str) -> str:
    response = await client.post(
        "/v1/video/generations", headers=auth(key, app), json=generation_body(prompt)
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


CARD_PROGRESS = """(id) => { const card = document.querySelector(`li.card[data-id="${id}"]`);
  const box = card && card.querySelector('.card-progress'), bar = box && box.querySelector('progress');
  if (!box || box.hidden) return null;
  const words = box.querySelector('.progress-label').textContent;
  return [words, bar.hasAttribute('value') ? bar.value : null]; }"""
GENERATING = re.compile(r"Generating (\d+)% · ~\d+ s left")


@pytest.mark.settings(simulator_latency_seconds=1.5, progress_event_seconds=0.2)
async def test_gallery_lists_follows_filters_scrolls_and_plays(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "gallery-user", "200.00", "dev")
    made = [await submit(client, key, "studio" if n % 2 else "mobile", f"Clip number {n}") for n in range(14)]
    for op_id in made:
        await wait_for_status(client, op_id, auth(key))

    async with browser() as chromium:
        page = await chromium.new_page(viewport=DESKTOP)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(service.settings.resolved_public_base_url() + "/")
        await page.fill("#api-key", key)
        await page.click("#connect")

        # Balance and tier at the top; 14 videos at 3.20 spent.
        await page.locator("#account:not([hidden])").wait_for()
        await page.wait_for_function("() => document.getElementById('balance').textContent === '155.20'")
        assert await page.text_content("#tier") == "dev"

        # Newest first, one page (12), then the rest as the end of the list scrolls into view.
        cards = page.locator("#gallery li.card")
        await page.wait_for_function("() => document.querySelectorAll('#gallery li.card').length >= 12")
        ids = await cards.evaluate_all("cards => cards.map(c => c.dataset.id)")
        assert ids[:12] == made[::-1][:12]
        await page.locator("#gallery-end").scroll_into_view_if_needed()
        await page.wait_for_function("() => document.querySelectorAll('#gallery li.card').length === 14")
        first = cards.first
        assert await first.locator(".prompt").text_content() == "Clip number 13"
        assert "3.20 USD" in await first.locator(".cost").text_content()
        assert await first.locator(".app").text_content() == "app studio"
        assert await first.locator(".model").text_content() == "google/veo-3.0-generate-preview"

        # The usage chart: one stacked bar per app for today, drawn as SVG by the page.
        bars = page.locator("#usage-chart svg rect")
        await bars.first.wait_for()
        assert sorted(await bars.evaluate_all("rs => rs.map(r => r.dataset.app)")) == ["mobile", "studio"]
        assert await page.locator("#usage-chart .legend li").all_text_contents() == ["mobile", "studio"]
        await page.select_option("#usage-measure", "operations")
        titles = await page.locator("#usage-chart svg rect title").all_text_contents()
        assert any("studio: 7 videos, 22.40 USD" in t for t in titles), titles

        # A job submitted elsewhere appears at the top and changes state without a reload.
        new_id = await submit(client, key, "studio", "A brand new clip")
        new_card = page.locator(f'#gallery li.card[data-id="{new_id}"]')
        await new_card.wait_for(timeout=15_000)
        assert await new_card.get_attribute("data-status") in ("pending", "processing")
        # While it runs, the card's bar follows the progress reports, with its words.
        await page.wait_for_function(f"() => ({CARD_PROGRESS})({new_id!r})?.[1] > 0", timeout=15_000)
        words, value = await page.evaluate(CARD_PROGRESS, new_id)
        assert (m := GENERATING.fullmatch(words)) and int(m.group(1)) == value <= 99, words
        assert await new_card.get_attribute("data-status") == "processing"
        assert await new_card.locator(".badge").text_content() == "processing"
        await new_card.scroll_into_view_if_needed()
        await screenshot(page, "gallery-processing", full_page=False)
        # Then it rises, report by report, until the completed event takes the bar away.
        seen = [value]
        with anyio.fail_after(30):
            while (shown := await page.evaluate(CARD_PROGRESS, new_id)) is not None:
                if shown[1] != seen[-1]:
                    seen.append(shown[1])
                await anyio.sleep(0.03)
        assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] <= 99, seen
        await page.locator(f'#gallery li.card[data-id="{new_id}"][data-status="completed"]').wait_for(
            timeout=30_000
        )
        assert await page.evaluate(CARD_PROGRESS, new_id) is None  # the bar goes with the run
        assert (await cards.evaluate_all("cards => cards.map(c => c.dataset.id)"))[0] == new_id
        await page.wait_for_function("() => document.getElementById('balance').textContent === '152.00'")

        # Play in place, from the keyboard.
        await new_card.locator("button.play").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_function(
            f"() => {{ const v = document.querySelector('li.card[data-id=\"{new_id}\"] video');"
            " return v && v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=30_000,
        )
        await screenshot(page, "gallery-desktop")

        # Deleted elsewhere: the card says so at once (its video.deleted event), with nothing to play.
        deleted = await client.delete(f"/v1/video/generations/{new_id}", headers=auth(key))
        assert deleted.status_code == 200, deleted.text
        await page.locator(f'#gallery li.card[data-id="{new_id}"][data-status="deleted"]').wait_for(
            timeout=15_000
        )
        assert await new_card.locator(".badge").text_content() == "deleted"
        assert await new_card.locator(".media").text_content() == "Video deleted"
        assert await new_card.locator(".media video, .media img, button.play").count() == 0

        # Filters: by app, then by status.
        await page.fill("#filter-app", "mobile")
        await page.click("#filters button[type=submit]")
        await page.wait_for_function(
            "() => { const c = [...document.querySelectorAll('#gallery li.card')];"
            " return c.length === 7 && c.every(x => x.querySelector('.app').textContent === 'app mobile'); }"
        )
        await page.fill("#filter-app", "")
        statuses = await page.locator("#filter-status option").evaluate_all("os => os.map(o => o.value)")
        assert statuses == ["", "pending", "processing", "completed", "failed", "cancelled", "deleted"]
        await page.select_option("#filter-status", "failed")
        await page.locator("#gallery-empty:not([hidden])").wait_for()
        assert await cards.count() == 0

        assert await page.evaluate(UNLABELLED_CONTROLS) == []
        assert (low := await page.evaluate(LOW_CONTRAST)) == [], low
        assert requests and not any(key in url for url in requests)
        assert any("/v1/video/events?token=" in url for url in requests)

        # The phone in dark mode: the page follows the system's colour scheme, still readable.
        phone = await chromium.new_page(viewport=PHONE, color_scheme="dark")
        await phone.goto(service.settings.resolved_public_base_url() + "/")
        await phone.fill("#api-key", key)
        await phone.click("#connect")
        await phone.wait_for_function("() => document.querySelectorAll('#gallery li.card').length >= 12")
        await phone.locator("#usage-chart svg").wait_for()
        # Nothing is wider than the phone's screen.
        assert await phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        assert (low := await phone.evaluate(LOW_CONTRAST)) == [], low
        await anyio.sleep(0.2)
        await screenshot(phone, "gallery-phone-top", full_page=False)
        await phone.locator("#gallery li.card").first.scroll_into_view_if_needed()
        await screenshot(phone, "gallery-phone-list", full_page=False)
