"""The admin API over real HTTP: the token, accounts, keys, balances with a ledger, usage and
operations across accounts, webhook deliveries with redelivery, and the audit log."""

from __future__ import annotations

import anyio
import httpx
import pytest

from lunos_events.services import accounts
from tests.conftest import auth, create_user
from tests.helpers import submit_generation, wait_for_status
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio

TOKEN = "admin-token-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}", "X-Admin-Actor": "ops-alice"}
WITH_ADMIN = pytest.mark.settings(admin_token=TOKEN, auth_cache_seconds=0)


async def test_without_a_token_the_admin_surface_is_off(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "someone")
    for headers in ({}, auth(key), ADMIN):
        response = await client.get("/v1/admin/accounts", headers=headers)
        assert response.status_code == 404
        assert "LUNOS_ADMIN_TOKEN" in response.json()["error"]


@WITH_ADMIN
async def test_only_the_admin_token_opens_it(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "someone")
    for headers in ({}, auth(key), {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}):
        response = await client.get("/v1/admin/accounts", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"].startswith("Invalid admin token")
    # ... and the admin token is no API key.
    assert (await client.get("/v1/account", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 401
    assert (await client.get("/v1/admin/accounts", headers=ADMIN)).status_code == 200


@WITH_ADMIN
async def test_accounts_keys_and_balance_with_a_ledger(service, client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/admin/accounts", headers=ADMIN, json={"id": "acme", "tier": "standard"})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "id": "acme",
        "balance": "0.00",
        "currency": "USD",
        "tier": "standard",
        "created_at_ms": created.json()["created_at_ms"],
        "live_keys": 0,
    }
    assert (await client.post("/v1/admin/accounts", headers=ADMIN, json={"id": "acme"})).status_code == 409
    bad_tier = await client.post("/v1/admin/accounts", headers=ADMIN, json={"id": "x", "tier": "gold"})
    assert bad_tier.status_code == 400 and "tier" in bad_tier.json()["error"]

    # A key is shown once; it works as an API key; the account lists only its prefix.
    made = (await client.post("/v1/admin/accounts/acme/keys", headers=ADMIN)).json()
    key = made["key"]
    assert key.startswith("lun_") and made["prefix"] == key[:12]
    assert (await client.get("/v1/account", headers=auth(key))).json()["tier"] == "standard"
    listed = (await client.get("/v1/admin/accounts/acme/keys", headers=ADMIN)).json()["data"]
    assert [k["prefix"] for k in listed] == [made["prefix"]] and key not in str(listed)

    # Top-up with a note: once per Idempotency-Key, recorded in the ledger.
    top_up = {"amount": "25.50", "note": "invoice 1042 paid"}
    first = await client.post(
        "/v1/admin/accounts/acme/balance", headers={**ADMIN, "Idempotency-Key": "inv-1042"}, json=top_up
    )
    again = await client.post(
        "/v1/admin/accounts/acme/balance", headers={**ADMIN, "Idempotency-Key": "inv-1042"}, json=top_up
    )
    assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
    assert first.json()["balance_after"] == "25.50" and again.json()["replayed"] is True
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "25.50"
    no_note = await client.post("/v1/admin/accounts/acme/balance", headers=ADMIN, json={"amount": "1"})
    assert no_note.status_code == 400 and "note" in no_note.json()["error"]
    overdraw = await client.post(
        "/v1/admin/accounts/acme/balance", headers=ADMIN, json={"amount": "-30", "note": "chargeback"}
    )
    assert overdraw.status_code == 400 and "negative" in overdraw.json()["error"]
    debit = await client.post(
        "/v1/admin/accounts/acme/balance", headers=ADMIN, json={"amount": "-0.50", "note": "correction"}
    )
    assert debit.json()["balance_after"] == "25.00"
    ledger = (await client.get("/v1/admin/accounts/acme/ledger", headers=ADMIN)).json()["data"]
    assert [(e["amount"], e["note"], e["actor"]) for e in ledger] == [
        ("-0.50", "correction", "admin:ops-alice"),
        ("25.50", "invoice 1042 paid", "admin:ops-alice"),
    ]

    # Tier change, then revocation: the key stops working.
    changed = await client.patch("/v1/admin/accounts/acme", headers=ADMIN, json={"tier": "pro"})
    assert changed.json()["tier"] == "pro"
    revoked = await client.delete(f"/v1/admin/accounts/acme/keys/{made['prefix']}", headers=ADMIN)
    assert revoked.json() == {"account_id": "acme", "prefix": made["prefix"], "revoked": True}
    assert (await client.get("/v1/account", headers=auth(key))).status_code == 401
    other = await create_user(service, "other")
    wrong_owner = await client.delete(f"/v1/admin/accounts/acme/keys/{other[:12]}", headers=ADMIN)
    assert wrong_owner.status_code == 404
    assert await accounts.key_exists(service.store, other, "other")

    # Every change is in the audit log, newest first, with who did it.
    log = (await client.get("/v1/admin/audit?target=acme", headers=ADMIN)).json()["data"]
    assert [e["action"] for e in log] == [
        "key.revoke",
        "account.tier",
        "balance.adjust",
        "balance.adjust",
        "key.create",
        "account.create",
    ]
    assert {e["actor"] for e in log} == {"admin:ops-alice"}
    assert key not in str(log)

    page = (await client.get("/v1/admin/accounts?limit=1", headers=ADMIN)).json()
    assert [a["id"] for a in page["data"]] == ["acme"] and page["next_after"] == "acme"
    rest = (await client.get("/v1/admin/accounts?after=acme", headers=ADMIN)).json()
    assert [a["id"] for a in rest["data"]] == ["other"] and rest["next_after"] is None


@WITH_ADMIN
async def test_usage_and_operations_across_accounts(service, client: httpx.AsyncClient) -> None:
    one, two = await create_user(service, "one"), await create_user(service, "two")
    op_one = await submit_generation(client, one)
    op_two = await submit_generation(client, two)
    await wait_for_status(client, op_one, auth(one))
    await wait_for_status(client, op_two, auth(two))

    ops = (await client.get("/v1/admin/operations", headers=ADMIN)).json()["data"]
    assert [(o["id"], o["account_id"]) for o in ops] == [(op_two, "two"), (op_one, "one")]
    only = (await client.get("/v1/admin/operations?account_id=one&status=completed", headers=ADMIN)).json()
    assert [o["id"] for o in only["data"]] == [op_one] and only["data"][0]["cost"] == "3.20"
    assert (await client.get("/v1/admin/operations?status=nope", headers=ADMIN)).status_code == 400

    usage = (await client.get("/v1/admin/usage?group_by=day", headers=ADMIN)).json()
    assert usage["total"]["operations"] == 2 and usage["total"]["spend"] == "6.40"
    assert [(d["operations"], d["spend"]) for d in usage["days"]] == [(2, "6.40")]
    mine = (await client.get("/v1/admin/usage?account_id=two", headers=ADMIN)).json()
    assert mine["total"]["spend"] == "3.20"


@pytest.mark.settings(admin_token=TOKEN, webhook_allow_private=True, webhook_retry_schedule="50ms")
async def test_failed_deliveries_are_found_and_redelivered(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "hooked")
    async with running_receiver() as receiver:
        receiver.script = [(500, {}), (500, {})]  # the first delivery fails for good, then 200s
        endpoint = (
            await client.post(
                "/v1/webhooks", headers=auth(key), json={"url": receiver.url, "events": ["video.completed"]}
            )
        ).json()
        op_id = await submit_generation(client, key)
        await wait_for_status(client, op_id, auth(key))
        with anyio.fail_after(30):
            while not (
                failed := (
                    await client.get("/v1/admin/webhook-deliveries?status=failed", headers=ADMIN)
                ).json()["data"]
            ):
                await anyio.sleep(0.05)
        assert [(d["account_id"], d["endpoint_id"]) for d in failed] == [("hooked", endpoint["id"])]
        endpoints = (await client.get("/v1/admin/accounts/hooked/webhooks", headers=ADMIN)).json()["data"]
        assert [e["id"] for e in endpoints] == [endpoint["id"]] and "secret" not in endpoints[0]
        log = (
            await client.get(f"/v1/admin/accounts/hooked/webhooks/{endpoint['id']}/deliveries", headers=ADMIN)
        ).json()["data"]
        assert [d["status"] for d in log] == ["failed"]

        delivery_id = failed[0]["id"]
        redelivered = await client.post(
            f"/v1/admin/accounts/hooked/webhook-deliveries/{delivery_id}/redeliver", headers=ADMIN
        )
        assert redelivered.status_code == 202, redelivered.text
        with anyio.fail_after(30):
            while (
                await client.get(f"/v1/admin/accounts/hooked/webhook-deliveries/{delivery_id}", headers=ADMIN)
            ).json()["status"] != "delivered":
                await anyio.sleep(0.05)
        assert len(receiver.received) == 3
        assert {r.headers["webhook-id"] for r in receiver.received} == {delivery_id}
        wrong_account = await client.post(
            f"/v1/admin/accounts/someone-else/webhook-deliveries/{delivery_id}/redeliver", headers=ADMIN
        )
        assert wrong_account.status_code == 404
    log = (await client.get("/v1/admin/audit", headers=ADMIN)).json()["data"]
    assert [(e["action"], e["target"], e["detail"]) for e in log] == [
        ("webhook.redeliver", "hooked", {"delivery": delivery_id})
    ]


@WITH_ADMIN
async def test_a_nul_in_an_admin_path_or_filter_is_bad_input(service, client: httpx.AsyncClient) -> None:
    """PostgreSQL refuses a NUL as a parameter: it must be caught as bad input, never met as a 500."""
    await create_user(service, "acme")
    for method, path in [
        ("GET", "/v1/admin/accounts/acme%00"),
        ("PATCH", "/v1/admin/accounts/acme%00"),
        ("GET", "/v1/admin/accounts/acme%00/ledger"),
        ("GET", "/v1/admin/accounts/acme%00/keys"),
        ("DELETE", "/v1/admin/accounts/acme/keys/lun_abc%00def"),
        ("GET", "/v1/admin/accounts/acme%00/webhooks"),
        ("GET", "/v1/admin/accounts/acme/webhook-deliveries/msg_%00"),
    ]:
        response = await client.request(method, path, headers=ADMIN, json={"tier": "pro"})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]
    response = await client.get("/v1/admin/audit?target=acme%00", headers=ADMIN)
    assert response.status_code == 400 and "target" in response.json()["error"]
