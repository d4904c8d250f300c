// The live page: submit with the API key (header only), then follow the operation through
// EventSource using the scoped token of `events_url`. No build step, no dependencies.
"use strict";

const EVENT_TYPES = ["video.pending", "video.completed", "video.failed", "video.cancelled"];
const $ = (id) => document.getElementById(id);

const state = { source: null, operationId: null, lastEventId: null, finished: false, startedAt: 0 };

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
  $("status").textContent = status.status;
  if (status.status === "pending") return;
  // A final status: the server ends the stream; closing here stops EventSource from reconnecting.
  finish();
  if (status.status === "completed") {
    const video = $("video");
    video.src = status.video_url;
    video.hidden = false;
  }
}

function finish() {
  state.finished = true;
  if (state.source) state.source.close();
  state.source = null;
  $("connection").textContent = "";
  $("submit").disabled = false;
}

function watch(eventsUrl) {
  const source = new EventSource(sameOrigin(eventsUrl));
  state.source = source;
  for (const type of EVENT_TYPES) source.addEventListener(type, onStatusEvent);
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
  Object.assign(state, { source: null, operationId: null, lastEventId: null, finished: false });
  $("submit").disabled = true;
  $("events").replaceChildren();
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
    $("status").textContent = body.status;
    $("job").hidden = false;
    watch(body.events_url);
    if (window.lunosGallery) window.lunosGallery.ensureConnected();
  } catch (error) {
    showError(`Request failed: ${error}`);
    $("submit").disabled = false;
  }
}

$("submit-form").addEventListener("submit", submit);
loadModels();
