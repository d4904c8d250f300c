// The live page: submit with the API key (header only), then follow the operation through
// EventSource using the scoped token of `events_url`. No build step, no dependencies.
"use strict";

// Status changes (stored, with an id); `video.progress` reports come between them while it runs.
const EVENT_TYPES = ["video.pending", "video.processing", "video.completed", "video.failed", "video.cancelled",
  "video.deleted"];
const PROGRESS_EVENT = "video.progress";
const QUEUE_POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

const state = {
  source: null, operationId: null, lastEventId: null, finished: false, startedAt: 0,
  status: null, queueTimer: null,
};

// How far an operation is, in words and as a bar value (null: nothing to show): its place while
// queued, its estimated progress while processing. Shared with gallery.js.
function progressOf(status) {
  if (status.status === "pending") {
    if (status.queue_position == null) return { label: "Queued", value: null };
    const eta = status.eta_seconds != null ? ` · ~${status.eta_seconds} s` : "";
    return { label: `Queued · #${status.queue_position}${eta}`, value: null };
  }
  if (status.status === "processing") {
    // A listing's entries carry no estimate: the gallery shows "Generating" until a report comes.
    if (status.progress == null) return { label: "Generating", value: null };
    const eta = status.eta_seconds != null ? ` · ~${status.eta_seconds} s left` : "";
    return { label: `Generating ${status.progress}%${eta}`, value: status.progress };
  }
  if (status.status === "completed") return { label: "Done", value: 100 };
  return null;
}

// Statuses only move forward and progress only up: an older report (a poll answered before an
// event, a stored event replayed on a resume) is not news. Shared with gallery.js.
const STAGES = { pending: 0, processing: 1 };
function isBehind(status, last) {
  if (!last) return false;
  const stage = (s) => STAGES[s.status] ?? 2;
  if (stage(status) !== stage(last)) return stage(status) < stage(last);
  return status.status === "processing" && (status.progress ?? 0) < (last.progress ?? 0);
}

function showProgress(update) {
  if (isBehind(update, state.status)) return;
  // The same status again keeps what only a poll tells (a pending event has no queue place).
  const same = state.status && state.status.status === update.status;
  const status = same ? { ...state.status, ...update } : update;
  state.status = status;
  $("status").textContent = status.status;
  const shown = progressOf(status);
  $("progress-box").hidden = !shown;
  if (!shown) return;
  const bar = $("progress");
  // Without a value a <progress> is indeterminate: queued, it has nothing to measure yet.
  if (shown.value === null) bar.removeAttribute("value"); else bar.value = shown.value;
  $("progress-label").textContent = shown.label;
}

// Events carry no queue place: a poll tells it, every few seconds while the operation waits.
async function pollWhileQueued() {
  state.queueTimer = null;
  if (state.finished || !state.operationId || (state.status && state.status.status !== "pending")) return;
  try {
    const response = await fetch(`/v1/video/generations/${encodeURIComponent(state.operationId)}`, { headers: authHeaders() });
    if (response.ok) showProgress(await response.json());
  } catch (_) { /* the stream still tells the changes */ }
  if (!state.finished && state.status && state.status.status === "pending") {
    state.queueTimer = setTimeout(pollWhileQueued, QUEUE_POLL_MS);
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function authHeaders() {
  const headers = { Authorization: `Bearer ${$("api-key").value.trim()}` };
  const appId = $("app-id").value.trim();
  if (appId) headers["X-App-ID"] = appId;
  return headers;
}

async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    if (!response.ok) return;
    const { data } = await response.json();
    const select = $("model");
    select.replaceChildren(...data.map((m) => new Option(`${m.id} (${m.price_per_second} ${m.currency}/s)`, m.id)));
  } catch (_) { /* the default option stays */ }
}

// The page talks to the server that served it, whatever host name the server puts in its links.
function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

function logEvent(event, status) {
  const item = document.createElement("li");
  item.dataset.type = event.type;
  item.dataset.id = event.lastEventId;
  const seconds = ((performance.now() - state.startedAt) / 1000).toFixed(2);
  const detail = status.video_url ? ` ${status.video_url}` : status.error ? ` — ${status.error}` : "";
  item.innerHTML = `<span class="type"></span> <span class="muted">#${event.lastEventId} +${seconds}s</span><span class="detail"></span>`;
  item.querySelector(".type").textContent = event.type;
  item.querySelector(".detail").textContent = detail;
  $("events").append(item);
}

function onStatusEvent(event) {
  const status = JSON.parse(event.data);
  state.lastEventId = event.lastEventId;
  logEvent(event, status);
  showProgress(status);
  if (status.status === "pending" || status.status === "processing") return;
  // A final status: the server ends the stream; closing here stops EventSource from reconnecting.
  finish();
  if (status.status === "completed") {
    const video = $("video");
    video.src = status.video_url;
    video.hidden = false;
  }
}

// A progress report: no id (EventSource keeps the last one for a resume), not a status change.
function onProgressEvent(event) {
  showProgress(JSON.parse(event.data));
}

function finish() {
  state.finished = true;
  clearTimeout(state.queueTimer);
  if (state.source) state.source.close();
  state.source = null;
  $("connection").textContent = "";
  $("submit").disabled = false;
}

function watch(eventsUrl) {
  const source = new EventSource(sameOrigin(eventsUrl));
  state.source = source;
  for (const type of EVENT_TYPES) source.addEventListener(type, onStatusEvent);
  source.addEventListener(PROGRESS_EVENT, onProgressEvent);
  source.onopen = () => { $("connection").textContent = "(live)"; };
  source.onerror = () => {
    if (state.finished || state.source !== source) return;
    if (source.readyState === EventSource.CONNECTING) {
      $("connection").textContent = "(reconnecting…)";
      return;
    }
    // Closed for good (e.g. the token expired): fetch a fresh link and resume after the last event.
    $("connection").textContent = "(resuming…)";
    setTimeout(resume, 1000);
  };
}

async function resume() {
  if (state.finished) return;
  try {
    const response = await fetch(`/v1/video/generations/${encodeURIComponent(state.operationId)}`, { headers: authHeaders() });
    const body = await response.json();
    if (!response.ok) { showError(body.error); finish(); return; }
    showProgress(body);
    const url = new URL(body.events_url, location.href);
    if (state.lastEventId) url.searchParams.set("last_event_id", state.lastEventId);
    watch(url.toString());
  } catch (error) {
    setTimeout(resume, 3000);
  }
}

async function submit(event) {
  event.preventDefault();
  showError("");
  if (!$("api-key").value.trim()) { showError("Enter your API key first"); $("api-key").focus(); return; }
  if (state.source) state.source.close();
  clearTimeout(state.queueTimer);
  Object.assign(state, {
    source: null, operationId: null, lastEventId: null, finished: false, status: null, queueTimer: null,
  });
  $("submit").disabled = true;
  $("events").replaceChildren();
  $("progress-box").hidden = true;
  $("video").hidden = true;
  $("video").removeAttribute("src");
  try {
    state.startedAt = performance.now();
    const response = await fetch("/v1/video/generations", {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify({ model: $("model").value, prompt: $("prompt").value, response_format: "mp4" }),
    });
    const body = await response.json();
    if (!response.ok) {
      showError(body.error || `HTTP ${response.status}`);
      $("submit").disabled = false;
      return;
    }
    state.operationId = body.id;
    $("operation-id").textContent = body.id;
    showProgress(body);
    $("job").hidden = false;
    watch(body.events_url);
    pollWhileQueued();
    if (window.lunosGallery) window.lunosGallery.ensureConnected();
  } catch (error) {
    showError(`Request failed: ${error}`);
    $("submit").disabled = false;
  }
}

$("submit-form").addEventListener("submit", submit);
loadModels();
