"""Webhook endpoints of an account: create, list, change, delete, rotate the secret; and the
account's default secret used for per-request webhooks."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lunos_events.errors import InvalidRequest, NotFound, RateLimited
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services.generation_request import parse_app_id, text_field
from lunos_events.services.webhook_fanout import bump_webhooks_version, parse_event_filter
from lunos_events.store.webhook_models import WebhookDefaultSecret, WebhookEndpoint
from lunos_events.url_guard import check_url_syntax, resolve_target
from lunos_events.webhooks.signing import new_secret

ENDPOINT_ID_PREFIX = "ep_"
MAX_DESCRIPTION_CHARS = 500
ENDPOINT_NOT_FOUND = "Webhook endpoint not found"
# A count cap frees up only when the tenant deletes an endpoint; the header is there for clients
# that treat every 429 alike.
ENDPOINT_CAP_RETRY_AFTER_SECONDS = 60


async def check_target(rt: Runtime, url: Any) -> str:
    """Refuse a URL that is malformed or resolves to an address webhooks may not reach."""
    checked = check_url_syntax(url)
    await resolve_target(checked, rt.settings.webhook_allow_private)
    return checked


def _description(value: Any) -> str | None:
    if value is None:
        return None
    return text_field(value, "description", MAX_DESCRIPTION_CHARS)


def endpoint_view(row: Any, *, with_secret: bool = False) -> dict[str, Any]:
    view = {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "app_id": row.app_id,
        "description": row.description,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "created_at_ms": row.created_at_ms,
        "updated_at_ms": row.updated_at_ms,
    }
    if with_secret:
        view["secret"] = row.secret
    return view


async def create_endpoint(
    rt: Runtime, account_id: str, body: dict[str, Any], max_endpoints: int
) -> dict[str, Any]:
    """Create an endpoint; RateLimited (429) when the account already has `max_endpoints`: each one
    multiplies the outbound traffic of every event."""
    if "url" not in body:
        raise InvalidRequest("Missing required field: url")
    stamp = now_ms()
    endpoint = WebhookEndpoint(
        id=ENDPOINT_ID_PREFIX + secrets.token_urlsafe(12),
        account_id=account_id,
        app_id=parse_app_id(body.get("app_id")),
        url=await check_target(rt, body["url"]),
        description=_description(body.get("description")),
        events=parse_event_filter(body.get("events"), "events"),
        secret=new_secret(),
        created_at_ms=stamp,
        updated_at_ms=stamp,
    )
    async with rt.store.transaction() as conn:
        # SQLModel declares no __table__ (it is set by the SQLAlchemy mapping at class creation).
        table = WebhookEndpoint.__table__  # type: ignore[attr-defined]
        # The bump first: it locks the account's row, so concurrent creates count one at a time.
        await conn.execute(bump_webhooks_version(account_id))
        count = (
            await conn.execute(select(func.count()).where(col(WebhookEndpoint.account_id) == account_id))
        ).scalar_one()
        if count >= max_endpoints:
            raise RateLimited(
                f"Too many webhook endpoints: at most {max_endpoints} for this tier; "
                "delete one, or widen one's event filter",
                max_endpoints,
                0,
                stamp + ENDPOINT_CAP_RETRY_AFTER_SECONDS * 1000,
                ENDPOINT_CAP_RETRY_AFTER_SECONDS,
            )
        await conn.execute(table.insert().values(**endpoint.model_dump()))
    return endpoint_view(endpoint, with_secret=True)


def _check_id(row_id: str, not_found: str) -> None:
    if not row_id.isprintable():
        # None of ours is, and a NUL (a %00 in the URL) is refused by PostgreSQL as a parameter.
        raise NotFound(not_found)


async def load_owned(rt: Runtime, table: Any, row_id: str, account_id: str, not_found: str) -> Any:
    """The row of `table` with this id if the account owns it; another account's is NotFound too."""
    _check_id(row_id, not_found)
    async with rt.store.reading() as conn:
        row = (
            await conn.execute(select(table).where(table.id == row_id, table.account_id == account_id))
        ).first()
    if row is None:
        raise NotFound(not_found)
    return row


async def load_endpoint(rt: Runtime, account_id: str, endpoint_id: str) -> Any:
    return await load_owned(rt, WebhookEndpoint, endpoint_id, account_id, ENDPOINT_NOT_FOUND)


async def list_endpoints(rt: Runtime, account_id: str) -> list[dict[str, Any]]:
    async with rt.store.reading() as conn:
        rows = (
            await conn.execute(
                select(WebhookEndpoint)
                .where(col(WebhookEndpoint.account_id) == account_id)
                .order_by(col(WebhookEndpoint.created_at_ms))
            )
        ).all()
    return [endpoint_view(r) for r in rows]


async def update_endpoint(
    rt: Runtime, account_id: str, endpoint_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    await load_endpoint(rt, account_id, endpoint_id)
    changes: dict[str, Any] = {}
    if "url" in body:
        changes["url"] = await check_target(rt, body["url"])
    if "events" in body:
        changes["events"] = parse_event_filter(body["events"], "events")
    if "app_id" in body:
        changes["app_id"] = parse_app_id(body["app_id"])
    if "description" in body:
        changes["description"] = _description(body["description"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise InvalidRequest("Field 'enabled' must be true or false")
        changes["enabled"] = body["enabled"]
        # Re-enabling starts with a clean slate; the failure clock restarts.
        changes["disabled_reason"] = None if body["enabled"] else "disabled by the account"
        changes["failing_since_ms"] = None
    if changes:
        changes["updated_at_ms"] = now_ms()
        async with rt.store.transaction() as conn:
            await conn.execute(
                update(WebhookEndpoint)
                .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.account_id) == account_id)
                .values(**changes)
            )
            await conn.execute(bump_webhooks_version(account_id))
    return endpoint_view(await load_endpoint(rt, account_id, endpoint_id))


async def delete_endpoint(rt: Runtime, account_id: str, endpoint_id: str) -> None:
    _check_id(endpoint_id, ENDPOINT_NOT_FOUND)
    async with rt.store.transaction() as conn:
        deleted = await conn.execute(
            delete(WebhookEndpoint).where(
                col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.account_id) == account_id
            )
        )
        if deleted.rowcount != 1:
            raise NotFound(ENDPOINT_NOT_FOUND)
        await conn.execute(bump_webhooks_version(account_id))


async def rotate_secret(rt: Runtime, account_id: str, endpoint_id: str) -> dict[str, Any]:
    """A new secret; the current one keeps signing alongside it for the overlap period."""
    current = await load_endpoint(rt, account_id, endpoint_id)
    stamp = now_ms()
    expires = stamp + int(rt.settings.webhook_rotation_overlap_seconds * 1000)
    secret = new_secret()
    async with rt.store.transaction() as conn:
        rotated = await conn.execute(
            update(WebhookEndpoint)
            # Guarded on the secret read above: of two concurrent rotations only one wins.
            .where(col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.secret) == current.secret)
            .values(
                secret=secret,
                previous_secret=current.secret,
                previous_secret_expires_at_ms=expires,
                updated_at_ms=stamp,
            )
        )
    if rotated.rowcount != 1:
        raise InvalidRequest("The secret was rotated concurrently; try again")
    return {"id": endpoint_id, "secret": secret, "previous_secret_expires_at_ms": expires}


def signing_secrets(endpoint: Any, at_ms: int) -> list[str]:
    """The secrets that sign a message now: the current one, plus the previous one during overlap."""
    keys = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_expires_at_ms or 0) > at_ms:
        keys.append(endpoint.previous_secret)
    return keys


async def default_secret(rt: Runtime, account_id: str) -> str:
    """The account's secret for per-request webhooks, created on first use."""
    query = select(col(WebhookDefaultSecret.secret)).where(col(WebhookDefaultSecret.account_id) == account_id)
    async with rt.store.reading() as conn:
        secret = (await conn.execute(query)).scalar_one_or_none()
    if secret is not None:
        return secret
    # SQLModel declares no __table__ (it is set by the SQLAlchemy mapping at class creation).
    table = WebhookDefaultSecret.__table__  # type: ignore[attr-defined]
    try:
        async with rt.store.transaction() as conn:
            await conn.execute(
                table.insert().values(account_id=account_id, secret=new_secret(), created_at_ms=now_ms())
            )
    except IntegrityError:
        pass  # created concurrently: the stored one wins
    async with rt.store.reading() as conn:
        return (await conn.execute(query)).scalar_one()
