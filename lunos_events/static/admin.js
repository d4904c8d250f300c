// The operator console: the admin API with the admin token from this tab's sessionStorage, sent
// only as a header. Plain DOM, no dependencies; chart.js draws the usage chart.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "lunos-admin-token";
const ACTOR_KEY = "lunos-admin-actor";
const consoleState = { accountsAfter: null, operationsAfter: null, account: null };

function headers(extra = {}) {
  const result = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}`, ...extra };
  const actor = sessionStorage.getItem(ACTOR_KEY);
  if (actor) result["X-Admin-Actor"] = actor;
  return result;
}

async function admin(path, { method = "GET", body, extraHeaders } = {}) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/v1/admin${path}`, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

function announce(message) {
  $("done").textContent = message;
  $("done").hidden = !message;
}

// Run an action, showing its error (or clearing the last one).
async function attempt(action) {
  showError("");
  try { return await action(); } catch (error) { showError(error); return undefined; }
}

const when = (ms) => (ms ? new Date(ms).toLocaleString([], { dateStyle: "short", timeStyle: "medium" }) : "–");

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
    tr.append(td);
  }
  return tr;
}

function button(label, onClick, accessibleName) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = label;
  if (accessibleName) b.setAttribute("aria-label", accessibleName);
  b.addEventListener("click", onClick);
  return b;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// Accounts

async function loadAccounts(more = false) {
  const page = await admin(`/accounts${query({ limit: "50", after: more ? consoleState.accountsAfter : "" })}`);
  if (!more) $("accounts").replaceChildren();
  for (const a of page.data) {
    const tr = row([a.id, `${a.balance} ${a.currency}`, a.tier, a.live_keys,
      button("Open", () => attempt(() => openAccount(a.id)), `Open account ${a.id}`)]);
    tr.dataset.account = a.id;
    $("accounts").append(tr);
  }
  consoleState.accountsAfter = page.next_after;
  $("accounts-more").hidden = !page.next_after;
}

async function openAccount(accountId) {
  const [account, ledger] = await Promise.all([
    admin(`/accounts/${encodeURIComponent(accountId)}`),
    admin(`/accounts/${encodeURIComponent(accountId)}/ledger`),
  ]);
  consoleState.account = account.id;
  $("detail-id").textContent = account.id;
  $("detail-balance").textContent = `${account.balance} ${account.currency}`;
  $("detail-tier").textContent = account.tier;
  $("keys").replaceChildren(...account.keys.map((k) => row([k.prefix + "…", when(k.created_at_ms), when(k.revoked_at_ms),
    k.revoked_at_ms ? "" : button("Revoke", () => attempt(() => revokeKey(k.prefix)), `Revoke key ${k.prefix}`)])));
  $("ledger").replaceChildren(...ledger.data.map((e) => row([when(e.created_at_ms), e.amount, e.balance_after, e.note, e.actor])));
  $("account-detail").hidden = false;
}

async function revokeKey(prefix) {
  if (!confirm(`Revoke key ${prefix}…? Requests with it will be refused.`)) return;
  await admin(`/accounts/${encodeURIComponent(consoleState.account)}/keys/${encodeURIComponent(prefix)}`, { method: "DELETE" });
  announce(`Key ${prefix}… revoked.`);
  await Promise.all([openAccount(consoleState.account), loadAccounts()]);
}

async function createKey() {
  const made = await admin(`/accounts/${encodeURIComponent(consoleState.account)}/keys`, { method: "POST" });
  $("new-key-value").textContent = made.key;
  $("new-key").hidden = false;
  await Promise.all([openAccount(consoleState.account), loadAccounts()]);
}

async function topUp(event) {
  event.preventDefault();
  // One key per filled-in form: a double click or a retry does not credit twice.
  const form = $("top-up");
  form.dataset.key = form.dataset.key || crypto.randomUUID();
  const entry = await admin(`/accounts/${encodeURIComponent(consoleState.account)}/balance`, {
    method: "POST",
    body: { amount: $("top-up-amount").value.trim(), note: $("top-up-note").value },
    extraHeaders: { "Idempotency-Key": form.dataset.key },
  });
  delete form.dataset.key;
  form.reset();
  announce(`Balance of ${entry.account_id} is now ${entry.balance_after} ${entry.currency}.`);
  await Promise.all([openAccount(consoleState.account), loadAccounts()]);
}

async function changeTier(event) {
  event.preventDefault();
  const account = await admin(`/accounts/${encodeURIComponent(consoleState.account)}`, {
    method: "PATCH", body: { tier: $("change-tier-value").value.trim() },
  });
  $("change-tier").reset();
  announce(`${account.id} is now on tier ${account.tier}.`);
  await Promise.all([openAccount(account.id), loadAccounts()]);
}

async function createAccount(event) {
  event.preventDefault();
  const account = await admin("/accounts", { method: "POST", body: {
    id: $("new-account-id").value.trim(), tier: $("new-account-tier").value.trim() || "free",
    balance: $("new-account-balance").value.trim() || "0",
  } });
  $("create-account").reset();
  announce(`Account ${account.id} created.`);
  await loadAccounts();
  await openAccount(account.id);
}

// Operations, usage, webhooks, audit

async function loadOperations(more = false) {
  const page = await admin(`/operations${query({
    account_id: $("ops-account").value.trim(), app_id: $("ops-app").value.trim(), status: $("ops-status").value,
    limit: "50", after: more ? consoleState.operationsAfter : "",
  })}`);
  if (!more) $("operations").replaceChildren();
  for (const o of page.data) {
    const tr = row([new Date(o.created_at).toLocaleString(), o.account_id, o.app_id, o.model, o.status, o.cost, o.prompt]);
    tr.dataset.id = o.id;
    $("operations").append(tr);
  }
  consoleState.operationsAfter = page.next_after;
  $("operations-more").hidden = !page.next_after;
}

let lastUsage = null;
async function loadUsage() {
  lastUsage = await admin(`/usage${query({ group_by: "day", account_id: $("usage-account").value.trim() })}`);
  $("usage-total").textContent = `${lastUsage.total.operations} videos · ${lastUsage.total.spend} ${lastUsage.currency} spent`;
  drawDailyChart($("usage-chart"), lastUsage.days, $("usage-measure").value, lastUsage.currency);
}

async function loadDeliveries() {
  const page = await admin(`/webhook-deliveries${query({
    account_id: $("deliveries-account").value.trim(), status: $("deliveries-status").value,
  })}`);
  $("deliveries").replaceChildren(...page.data.map((d) => {
    const tr = row([when(d.created_at_ms), d.account_id, d.event_type, d.url, d.status, d.attempts, d.last_error,
      button("Redeliver", () => attempt(() => redeliver(d)), `Redeliver ${d.id}`)]);
    tr.dataset.id = d.id;
    return tr;
  }));
}

async function redeliver(delivery) {
  await admin(`/accounts/${encodeURIComponent(delivery.account_id)}/webhook-deliveries/${encodeURIComponent(delivery.id)}/redeliver`, { method: "POST" });
  announce(`Delivery ${delivery.id} queued again.`);
  await loadDeliveries();
}

async function loadEndpoints(event) {
  event.preventDefault();
  const page = await admin(`/accounts/${encodeURIComponent($("endpoints-account").value.trim())}/webhooks`);
  $("endpoints").replaceChildren(...page.data.map((e) => row([e.id, e.url, e.events.join(", "), e.enabled ? "yes" : `no (${e.disabled_reason || ""})`])));
}

async function loadAudit() {
  const page = await admin("/audit");
  $("audit").replaceChildren(...page.data.map((e) => row([when(e.at_ms), e.actor, e.action, e.target, e.detail ? JSON.stringify(e.detail) : ""])));
}

const LOADERS = { accounts: loadAccounts, operations: loadOperations, usage: loadUsage, webhooks: loadDeliveries, audit: loadAudit };

function selectTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  announce("");
  return attempt(() => LOADERS[name]());
}

// Tabs follow the ARIA pattern: arrow keys move between them.
function onTabKey(event) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const index = tabs.indexOf(event.target);
  const next = event.key === "ArrowRight" ? index + 1 : event.key === "ArrowLeft" ? index - 1 : null;
  if (next === null) return;
  const tab = tabs[(next + tabs.length) % tabs.length];
  tab.focus();
  selectTab(tab.id.slice(4));
}

async function signIn(event) {
  if (event) event.preventDefault();
  if (event) {
    sessionStorage.setItem(TOKEN_KEY, $("admin-token").value.trim());
    sessionStorage.setItem(ACTOR_KEY, $("actor").value.trim());
  }
  const ok = await attempt(async () => { await loadAccounts(); return true; });
  $("console").hidden = !ok;
  $("sign-out").hidden = !ok;
  $("admin-token").value = "";
  if (ok) { $("actor").value = sessionStorage.getItem(ACTOR_KEY) || ""; selectTab("accounts"); }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ACTOR_KEY);
  $("console").hidden = true;
  $("sign-out").hidden = true;
  announce("Signed out.");
}

const submitting = (handler) => (event) => { event.preventDefault(); attempt(() => handler(event)); };
$("token-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
for (const tab of document.querySelectorAll('[role="tab"]')) {
  tab.addEventListener("click", () => selectTab(tab.id.slice(4)));
  tab.addEventListener("keydown", onTabKey);
}
$("create-account").addEventListener("submit", submitting(createAccount));
$("top-up").addEventListener("submit", submitting(topUp));
$("change-tier").addEventListener("submit", submitting(changeTier));
$("create-key").addEventListener("click", () => attempt(createKey));
$("accounts-more").addEventListener("click", () => attempt(() => loadAccounts(true)));
$("operations-filter").addEventListener("submit", submitting(() => loadOperations()));
$("operations-more").addEventListener("click", () => attempt(() => loadOperations(true)));
$("usage-filter").addEventListener("submit", submitting(loadUsage));
$("usage-measure").addEventListener("change", () => lastUsage && drawDailyChart($("usage-chart"), lastUsage.days, $("usage-measure").value, lastUsage.currency));
$("deliveries-filter").addEventListener("submit", submitting(loadDeliveries));
$("endpoints-form").addEventListener("submit", submitting(loadEndpoints));
if (sessionStorage.getItem(TOKEN_KEY)) signIn();
