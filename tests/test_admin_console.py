"""The operator console at /admin in a real browser: the token kept in sessionStorage and sent as a
header, accounts, top-ups with a note, tiers, keys shown once and revoked, operations, usage,
failed webhook deliveries redelivered, the audit log; screenshots at desktop and phone widths."""

from __future__ import annotations

import anyio
import httpx
import pytest

from lunos_events.runtime import Runtime
from tests.browser import DESKTOP, LOW_CONTRAST, PHONE, UNLABELLED_CONTROLS, browser, screenshot
from tests.conftest import auth, create_user
from tests.helpers import submit_generation, wait_for_status
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio

TOKEN = "console-admin-token-0123456789"


async def failed_delivery(client: httpx.AsyncClient, key: str, url: str) -> None:
    await client.post("/v1/webhooks", headers=auth(key), json={"url": url, "events": ["video.completed"]})
    op_id = await submit_generation(client, key)
    await wait_for_status(client, op_id, auth(key))


@pytest.mark.settings(
    admin_token=TOKEN, auth_cache_seconds=0, webhook_allow_private=True, webhook_retry_schedule="50ms"
)
async def test_console_main_flows(service: Runtime, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "acme")
    base = service.settings.resolved_public_base_url()
    async with running_receiver() as receiver, browser() as chromium:
        receiver.script = [(500, {}), (500, {})]
        await failed_delivery(client, key, receiver.url)

        page = await chromium.new_page(viewport=DESKTOP)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("dialog", lambda dialog: dialog.accept())
        response = await page.goto(base + "/admin")
        assert "default-src 'self'" in response.headers["content-security-policy"]

        # A wrong token is refused with the API's message; the console stays closed.
        await page.fill("#admin-token", "not-the-token")
        await page.click("#sign-in")
        await page.locator("#error:not([hidden])").wait_for()
        assert (await page.text_content("#error")).startswith("Invalid admin token")
        assert await page.locator("#console").is_hidden()

        await page.fill("#admin-token", TOKEN)
        await page.fill("#actor", "alice")
        await page.click("#sign-in")
        await page.locator('#accounts tr[data-account="acme"]').wait_for()

        # Create an account, top it up with a note, change its tier.
        await page.fill("#new-account-id", "newco")
        await page.fill("#new-account-tier", "standard")
        await page.fill("#new-account-balance", "5.00")
        await page.click("#create-account button[type=submit]")
        await page.locator("#account-detail:not([hidden])").wait_for()
        assert await page.text_content("#detail-id") == "newco"
        await page.fill("#top-up-amount", "20.00")
        await page.fill("#top-up-note", "welcome credit")
        await page.click("#top-up button[type=submit]")
        await page.wait_for_function(
            "() => document.getElementById('detail-balance').textContent === '25.00 USD'"
        )
        assert await page.locator("#ledger tr td").all_text_contents() == [
            (await page.locator("#ledger tr td").first.text_content()),
            "20.00",
            "25.00",
            "welcome credit",
            "admin:alice",
        ]
        await page.fill("#change-tier-value", "pro")
        await page.click("#change-tier button[type=submit]")
        await page.wait_for_function("() => document.getElementById('detail-tier').textContent === 'pro'")

        # A key is shown once and works; revoked, it stops working.
        await page.click("#create-key")
        await page.locator("#new-key:not([hidden])").wait_for()
        new_key = await page.text_content("#new-key-value")
        assert (await client.get("/v1/account", headers=auth(new_key))).json()["balance"] == "25.00"
        await screenshot(page, "console-accounts-desktop")
        await page.click(f'#keys button[aria-label="Revoke key {new_key[:12]}"]')
        await page.wait_for_function("() => document.getElementById('done').textContent.includes('revoked')")
        assert (await client.get("/v1/account", headers=auth(new_key))).status_code == 401

        # Operations across accounts, with a filter.
        await page.click("#tab-operations")
        await page.locator("#operations tr").first.wait_for()
        assert await page.locator("#operations tr").count() == 1
        statuses = await page.locator("#ops-status option").evaluate_all("os => os.map(o => o.value)")
        assert statuses == ["", "pending", "processing", "completed", "failed", "cancelled", "deleted"]
        await page.select_option("#ops-status", "failed")
        await page.click("#operations-filter button[type=submit]")
        await page.wait_for_function("() => document.querySelectorAll('#operations tr').length === 0")
        # The server takes every status the console offers (its one video is completed, not running).
        await page.select_option("#ops-status", "processing")
        async with page.expect_response(lambda r: "status=processing" in r.url) as answered:
            await page.click("#operations-filter button[type=submit]")
        assert (await answered.value).status == 200
        await page.wait_for_function("() => document.querySelectorAll('#operations tr').length === 0")
        assert await page.locator("#error").is_hidden()

        # Usage: the chart, reached from the keyboard (arrow keys move between tabs).
        await page.focus("#tab-operations")
        await page.keyboard.press("ArrowRight")
        await page.locator("#usage-chart svg rect").first.wait_for()
        assert await page.text_content("#usage-total") == "1 videos · 3.20 USD spent"

        # The failed delivery, redelivered from the console: the receiver gets it again.
        await page.click("#tab-webhooks")
        await page.locator("#deliveries tr").first.wait_for()
        assert await page.locator("#deliveries tr td").nth(4).text_content() == "failed"
        await screenshot(page, "console-webhooks-desktop")
        await page.locator("#deliveries tr button").first.click()
        await receiver.wait_for(3)
        await page.fill("#endpoints-account", "acme")
        await page.click("#endpoints-form button[type=submit]")
        await page.locator("#endpoints tr").first.wait_for()

        await page.click("#tab-audit")
        await page.locator("#audit tr").first.wait_for()
        actions = await page.locator("#audit tr td:nth-child(3)").all_text_contents()
        assert actions == [
            "webhook.redeliver",
            "key.revoke",
            "key.create",
            "account.tier",
            "balance.adjust",
            "account.create",
        ]
        assert set(await page.locator("#audit tr td:nth-child(2)").all_text_contents()) == {"admin:alice"}
        assert await page.evaluate(UNLABELLED_CONTROLS) == []
        assert (low := await page.evaluate(LOW_CONTRAST)) == [], low

        # The token lives in this tab's sessionStorage, never in a URL or in localStorage.
        assert await page.evaluate("() => sessionStorage.getItem('lunos-admin-token')") == TOKEN
        assert await page.evaluate("() => localStorage.length") == 0
        assert not any(TOKEN in url for url in requests)
        await page.reload()
        await page.locator('#accounts tr[data-account="newco"]').wait_for()
        await page.click("#sign-out")
        assert await page.evaluate("() => sessionStorage.getItem('lunos-admin-token')") is None

        phone = await chromium.new_page(viewport=PHONE, color_scheme="dark")
        await phone.goto(base + "/admin")
        await phone.fill("#admin-token", TOKEN)
        await phone.click("#sign-in")
        await phone.locator('#accounts tr[data-account="acme"]').wait_for()
        await phone.click('#accounts button[aria-label="Open account acme"]')
        await phone.locator("#account-detail:not([hidden])").wait_for()
        assert await phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        assert (low := await phone.evaluate(LOW_CONTRAST)) == [], low
        await anyio.sleep(0.2)
        await screenshot(phone, "console-phone-top", full_page=False)
        await phone.locator("#account-detail").scroll_into_view_if_needed()
        await screenshot(phone, "console-phone-account", full_page=False)


async def test_console_says_when_the_admin_api_is_off(service: Runtime) -> None:
    async with browser() as chromium:
        page = await chromium.new_page(viewport=DESKTOP)
        await page.goto(service.settings.resolved_public_base_url() + "/admin")
        await page.fill("#admin-token", "anything-at-all")
        await page.click("#sign-in")
        await page.locator("#error:not([hidden])").wait_for()
        assert "LUNOS_ADMIN_TOKEN" in await page.text_content("#error")
        assert await page.locator("#console").is_hidden()
