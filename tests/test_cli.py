"""Operator commands, run as a user would run them."""

from __future__ import annotations

import httpx
import pytest

from lunos_events.services import audit, operator
from lunos_events.serving import running_service
from tests.conftest import auth
from tests.processes import run, settings_env

pytestmark = pytest.mark.anyio


# No key cache: a revoked key must fail on the very next request (with the cache it may keep
# working for LUNOS_AUTH_CACHE_SECONDS; tests/test_api_errors.py covers that delay).
@pytest.mark.settings(auth_cache_seconds=0)
async def test_operator_commands(settings) -> None:
    env = settings_env(settings)

    created = run("users", "create", "user123", "--balance", "12.50", "--tier", "pro", env=env)
    assert created.returncode == 0, created.stderr
    assert "user123" in created.stdout

    duplicate = run("users", "create", "user123", env=env)
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr

    bad_id = run("users", "create", "no spaces allowed", env=env)
    assert bad_id.returncode != 0

    made = run("keys", "create", "user123", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("lun_") and " " not in key

    assert run("keys", "create", "nobody", env=env).returncode != 0

    topped = run("balance", "add", "user123", "7.50", env=env)
    assert topped.returncode == 0, topped.stderr
    assert "20.00" in topped.stdout
    assert run("balance", "add", "user123", "0.001", env=env).returncode != 0
    assert run("balance", "add", "user123", "-100", env=env).returncode != 0  # never below zero

    async with running_service(settings) as rt:
        async with httpx.AsyncClient(base_url=rt.settings.resolved_public_base_url()) as client:
            account = (await client.get("/v1/account", headers=auth(key))).json()
            assert account == {"id": "user123", "balance": "20.00", "currency": "USD", "tier": "pro"}
            # The CLI's top-up is in the ledger, as the admin API's are.
            ledger = await operator.ledger(rt.store, "user123", 10)
            assert [(e["amount"], e["note"], e["actor"]) for e in ledger] == [
                ("7.50", "added with the CLI", "cli")
            ]

            assert run("keys", "revoke", "lun_", env=env).returncode != 0  # too short to be safe
            revoked = run("keys", "revoke", key[:12], env=env)
            assert revoked.returncode == 0, revoked.stderr
            assert (await client.get("/v1/account", headers=auth(key))).status_code == 401
            assert run("keys", "revoke", key, env=env).returncode != 0  # already revoked
            # Every operator change made with the CLI is in the audit log, as the admin API's are.
            log = await audit.recent(rt.store, 10, target="user123")
            assert [(e["actor"], e["action"]) for e in log] == [
                ("cli", "key.revoke"),
                ("cli", "balance.adjust"),
                ("cli", "key.create"),
                ("cli", "account.create"),
            ]
