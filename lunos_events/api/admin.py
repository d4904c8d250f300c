"""The admin API (/v1/admin/...): accounts, keys, balances, usage, operations and the audit log.

Behind LUNOS_ADMIN_TOKEN (see api/admin_auth.py), never an API key. Every change is audited by
the services it calls.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.admin_auth import admin_actor
from lunos_events.api.auth import runtime
from lunos_events.api.body import read_json_object
from lunos_events.api.usage import usage_report
from lunos_events.errors import InvalidRequest
from lunos_events.ids import ACCOUNT_ID_PATTERN
from lunos_events.money import parse_amount
from lunos_events.services import accounts, audit, history, idempotency, operator
from lunos_events.services.generation_request import parse_app_id
from lunos_events.webhooks.history import page_limit

# Far beyond any real top-up, and far inside a BIGINT of cents.
MAX_AMOUNT_CENTS = 10**10


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, runtime(request).settings.max_body_bytes)


def _amount(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"'{name}' must be a decimal string such as \"25.00\"")
    try:
        cents = parse_amount(str(value))
    except ValueError as exc:
        raise InvalidRequest(f"'{name}': {exc}") from None
    if abs(cents) > MAX_AMOUNT_CENTS:
        raise InvalidRequest(f"'{name}' is too large")
    return cents


def _account_param(request: Request) -> str:
    account_id: str = request.path_params["account_id"]
    return account_id


def account_filter(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not ACCOUNT_ID_PATTERN.match(value):
        raise InvalidRequest("'account_id' is not a valid account id")
    return value


def _tiers(request: Request) -> frozenset[str]:
    return frozenset(runtime(request).settings.tiers)


async def list_accounts(request: Request) -> JSONResponse:
    admin_actor(request)
    query = request.query_params
    limit = history.parse_limit(query.get("limit"))
    page = await operator.list_accounts(runtime(request).store, limit, account_filter(query.get("after")))
    return JSONResponse(page)


async def create_account(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    body = await _body(request)
    account_id = body.get("id")
    if not isinstance(account_id, str):
        raise InvalidRequest("'id' is required: the new account's id")
    tier = operator.check_tier(body.get("tier", "free"), _tiers(request))
    balance = _amount(body.get("balance", "0"), "balance")
    created = await operator.create_account(runtime(request).store, actor, account_id, tier, balance)
    return JSONResponse(created, status_code=201)


async def get_account(request: Request) -> JSONResponse:
    admin_actor(request)
    store = runtime(request).store
    row = await accounts.get_account(store, _account_param(request))
    keys = await accounts.list_api_keys(store, row.id)
    live = sum(1 for key in keys if key["revoked_at_ms"] is None)
    return JSONResponse({**operator.account_view(row, live), "keys": keys})


async def update_account(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    body = await _body(request)
    if set(body) != {"tier"}:
        raise InvalidRequest("Only 'tier' can be changed")
    tier = operator.check_tier(body["tier"], _tiers(request))
    return JSONResponse(await operator.set_tier(runtime(request).store, actor, _account_param(request), tier))


async def adjust_balance(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    key = idempotency.parse_key(request.headers.get("idempotency-key"))
    body = await _body(request)
    amount = _amount(body.get("amount"), "amount")
    note = operator.check_note(body.get("note"))
    entry = await operator.top_up(runtime(request).store, actor, _account_param(request), amount, note, key)
    return JSONResponse(entry, status_code=200 if entry["replayed"] else 201)


async def account_ledger(request: Request) -> JSONResponse:
    admin_actor(request)
    limit = page_limit(request.query_params.get("limit"))
    rows = await operator.ledger(runtime(request).store, _account_param(request), limit)
    return JSONResponse({"object": "list", "data": rows})


async def list_keys(request: Request) -> JSONResponse:
    admin_actor(request)
    store = runtime(request).store
    account_id = (await accounts.get_account(store, _account_param(request))).id
    return JSONResponse({"object": "list", "data": await accounts.list_api_keys(store, account_id)})


async def create_key(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    created = await operator.create_key(runtime(request).store, actor, _account_param(request))
    return JSONResponse(created, status_code=201)


async def revoke_key(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    rt = runtime(request)
    revoked = await operator.revoke_key(
        rt.store, rt.bus, actor, _account_param(request), request.path_params["prefix"]
    )
    return JSONResponse(revoked)


async def usage(request: Request) -> JSONResponse:
    admin_actor(request)
    return JSONResponse(await usage_report(request, account_filter(request.query_params.get("account_id"))))


async def list_operations(request: Request) -> JSONResponse:
    admin_actor(request)
    query = request.query_params
    after = query.get("after")
    account_id = account_filter(query.get("account_id"))
    page = await history.list_operations(
        runtime(request).store,
        account_id,
        status=history.parse_status(query.get("status")),
        app_id=parse_app_id(query.get("app_id")),
        limit=history.parse_limit(query.get("limit")),
        after=history.Cursor.decode(after) if after else None,
        relink=runtime(request).generations.relink,
    )
    if account_id is not None:  # the admin list always says whose an operation is
        for entry in page["data"]:
            entry["account_id"] = account_id
    return JSONResponse(page)


async def audit_log(request: Request) -> JSONResponse:
    admin_actor(request)
    query = request.query_params
    target = query.get("target") or None
    if target is not None and (len(target) > 255 or not target.isprintable()):
        raise InvalidRequest("'target' must be at most 255 printable characters")
    rows = await audit.recent(runtime(request).store, page_limit(query.get("limit")), target=target)
    return JSONResponse({"object": "list", "data": rows})


routes = [
    Route("/v1/admin/accounts", list_accounts, methods=["GET"]),
    Route("/v1/admin/accounts", create_account, methods=["POST"]),
    Route("/v1/admin/accounts/{account_id}", get_account, methods=["GET"]),
    Route("/v1/admin/accounts/{account_id}", update_account, methods=["PATCH"]),
    Route("/v1/admin/accounts/{account_id}/balance", adjust_balance, methods=["POST"]),
    Route("/v1/admin/accounts/{account_id}/ledger", account_ledger, methods=["GET"]),
    Route("/v1/admin/accounts/{account_id}/keys", list_keys, methods=["GET"]),
    Route("/v1/admin/accounts/{account_id}/keys", create_key, methods=["POST"]),
    Route("/v1/admin/accounts/{account_id}/keys/{prefix}", revoke_key, methods=["DELETE"]),
    Route("/v1/admin/usage", usage, methods=["GET"]),
    Route("/v1/admin/operations", list_operations, methods=["GET"]),
    Route("/v1/admin/audit", audit_log, methods=["GET"]),
]
