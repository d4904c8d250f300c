// The gallery: the account's videos newest first, live over the account stream (a stream token,
// never the key, in the URL), filters, infinite scroll on the list cursor, and usage per day.
// Relies on live.js for `$`, `sameOrigin`, `progressOf` and `isBehind`.
"use strict";

(() => {
  const PAGE = 12;
  const STATUS_EVENTS = ["video.pending", "video.processing", "video.completed", "video.failed", "video.cancelled",
    "video.deleted"];
  const gallery = {
    key: "", connected: false, nextAfter: null, loading: false, cards: new Map(),
    source: null, lastEventId: null, currency: "USD", usage: [], generation: 0,
  };

  const keyHeaders = () => ({ Authorization: `Bearer ${gallery.key}` });

  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...keyHeaders(), ...(options.headers || {}) } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  function fail(error) {
    $("error").textContent = String(error.message || error);
    $("error").hidden = false;
  }

  async function loadAccount() {
    const account = await api("/v1/account");
    $("balance").textContent = account.balance;
    $("currency").textContent = account.currency;
    $("tier").textContent = account.tier;
    $("account-id").textContent = account.id;
    gallery.currency = account.currency;
    $("account").hidden = false;
  }

  async function loadUsage() {
    const usage = await api("/v1/usage?group_by=day");
    gallery.usage = usage.days;
    const apps = [...new Set(usage.apps.map((a) => a.app_id).filter((a) => a !== null))];
    $("known-apps").replaceChildren(...apps.map((a) => new Option(a, a)));
    drawDailyChart($("usage-chart"), gallery.usage, $("usage-measure").value, usage.currency);
    $("usage").hidden = false;
  }

  function listQuery(after, limit) {
    const query = new URLSearchParams({ limit: String(limit) });
    if ($("filter-status").value) query.set("status", $("filter-status").value);
    if ($("filter-app").value.trim()) query.set("app_id", $("filter-app").value.trim());
    if (after) query.set("after", after);
    return `/v1/video/generations?${query}`;
  }

  function formatTime(iso) {
    return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function playIn(card, url, prompt) {
    const media = card.querySelector(".media");
    const video = document.createElement("video");
    video.controls = true; video.playsInline = true; video.autoplay = true; video.muted = true;
    video.src = url;
    video.setAttribute("aria-label", `Video: ${prompt}`);
    media.replaceChildren(video);
    video.focus();
  }

  function renderMedia(card, entry) {
    const media = card.querySelector(".media");
    media.replaceChildren();
    if (entry.thumbnail_url && entry.status !== "deleted") {
      const img = document.createElement("img");
      img.src = entry.thumbnail_url; img.alt = ""; img.loading = "lazy";
      media.append(img);
    } else {
      const placeholder = document.createElement("span");
      placeholder.className = "placeholder";
      placeholder.textContent = entry.status === "completed" ? "No poster · ready to play"
        : entry.status === "pending" ? "Queued…" : entry.status === "processing" ? "Generating…"
        : entry.status === "deleted" ? "Video deleted" : "No video";
      media.append(placeholder);
    }
    if (entry.status === "completed" && entry.video_url) {
      const play = document.createElement("button");
      play.type = "button"; play.className = "play";
      play.textContent = "▶ Play";
      play.setAttribute("aria-label", `Play: ${entry.prompt || entry.id}`);
      play.addEventListener("click", () => playIn(card, entry.video_url, entry.prompt || entry.id));
      media.append(play);
    }
  }

  function renderStatus(card, entry) {
    card.dataset.status = entry.status;
    const badge = card.querySelector(".badge");
    badge.className = `badge ${entry.status}`;
    badge.textContent = entry.status;
    card.querySelector(".card-error").textContent = entry.error || "";
    renderProgress(card, entry);
    if (card.dataset.drawn !== entry.status) renderMedia(card, entry); // not on every progress report
    card.dataset.drawn = entry.status;
  }

  // While it waits or runs: a bar (indeterminate while queued) and its words, from live.js.
  function renderProgress(card, entry) {
    const box = card.querySelector(".card-progress");
    const shown = entry.status === "pending" || entry.status === "processing" ? progressOf(entry) : null;
    box.hidden = !shown;
    if (!shown) return;
    const bar = box.querySelector("progress");
    if (shown.value === null) bar.removeAttribute("value"); else bar.value = shown.value;
    bar.setAttribute("aria-label", `${shown.label}: ${entry.prompt || entry.id}`);
    box.querySelector(".progress-label").textContent = shown.label;
  }

  function makeCard(entry) {
    const card = document.createElement("li");
    card.className = "card";
    card.dataset.id = entry.id;
    card.innerHTML = `<div class="media"></div><div class="body"><div class="prompt"></div>
      <div><span class="badge"></span></div>
      <div class="card-progress" hidden><progress max="100"></progress><span class="progress-label"></span></div>
      <div class="meta"><span class="model"></span>
      <span class="cost"></span><span class="app"></span><time></time></div><div class="card-error error"></div></div>`;
    card.querySelector(".prompt").textContent = entry.prompt || entry.id;
    card.querySelector(".model").textContent = entry.model;
    card.querySelector(".cost").textContent = `${entry.cost} ${gallery.currency}`;
    card.querySelector(".app").textContent = entry.app_id ? `app ${entry.app_id}` : "no app";
    const time = card.querySelector("time");
    time.dateTime = entry.created_at;
    time.textContent = formatTime(entry.created_at);
    card.entry = entry;
    renderStatus(card, entry);
    gallery.cards.set(entry.id, card);
    return card;
  }

  async function loadPage() {
    if (gallery.loading || (gallery.cards.size && !gallery.nextAfter)) return;
    gallery.loading = true;
    const generation = gallery.generation;
    try {
      const page = await api(listQuery(gallery.nextAfter, PAGE));
      if (generation !== gallery.generation) return; // the filters changed meanwhile
      for (const entry of page.data) if (!gallery.cards.has(entry.id)) $("gallery").append(makeCard(entry));
      gallery.nextAfter = page.next_after;
      $("more").hidden = !page.next_after;
      $("gallery-empty").hidden = gallery.cards.size > 0;
    } catch (error) { fail(error); } finally { gallery.loading = false; }
    // A tall screen may show the end of the list already: keep filling it.
    if (gallery.nextAfter && isVisible($("gallery-end"))) loadPage();
  }

  function isVisible(element) {
    const box = element.getBoundingClientRect();
    return box.top < window.innerHeight + 200;
  }

  // New operations (from another tab, the API or this page) come in at the top.
  async function loadNewest() {
    try {
      const page = await api(listQuery(null, PAGE));
      const fresh = page.data.filter((entry) => !gallery.cards.has(entry.id));
      for (const entry of fresh.reverse()) $("gallery").prepend(makeCard(entry));
      $("gallery-empty").hidden = gallery.cards.size > 0;
    } catch (error) { fail(error); }
  }

  function resetList() {
    gallery.generation += 1;
    gallery.cards.clear();
    gallery.nextAfter = null;
    $("gallery").replaceChildren();
  }

  let refreshTimer = null;
  function refreshSoon() { // balance and usage after a change, at most twice a second
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { loadAccount().catch(fail); loadUsage().catch(fail); }, 500);
  }

  function update(card, status) {
    if (isBehind(status, card.entry)) return; // older news than the card shows
    card.entry = { ...card.entry, ...status };
    renderStatus(card, card.entry);
  }

  function onEvent(event) {
    gallery.lastEventId = event.lastEventId;
    const status = JSON.parse(event.data);
    const card = gallery.cards.get(status.id);
    // A deletion is never a new video: one off the page (retention deletes old ones in batches)
    // needs no listing.
    if (card) update(card, status); else if (event.type !== "video.deleted") loadNewest();
    refreshSoon();
  }

  // A progress report: no id (EventSource keeps the last one), nothing to charge or list anew.
  function onProgress(event) {
    const status = JSON.parse(event.data);
    const card = gallery.cards.get(status.id);
    if (card) update(card, status);
  }

  async function openStream() {
    if (gallery.source) gallery.source.close();
    const minted = await api("/v1/video/stream-tokens", { method: "POST" });
    const url = new URL(sameOrigin(minted.events_url), location.href);
    if (gallery.lastEventId) url.searchParams.set("last_event_id", gallery.lastEventId);
    const source = new EventSource(url.pathname + url.search);
    gallery.source = source;
    for (const type of STATUS_EVENTS) source.addEventListener(type, onEvent);
    source.addEventListener("video.progress", onProgress);
    source.onopen = () => { $("live-state").textContent = "● live"; };
    source.onerror = () => {
      if (gallery.source !== source) return;
      if (source.readyState === EventSource.CONNECTING) { $("live-state").textContent = "reconnecting…"; return; }
      // Closed for good (the token expired): mint a new one and resume after the last event.
      $("live-state").textContent = "resuming…";
      setTimeout(() => openStream().catch(fail), 2000);
    };
  }

  async function connect(event) {
    if (event) event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    gallery.key = key;
    $("error").hidden = true;
    $("connect").disabled = true;
    try {
      await loadAccount();
      gallery.connected = true;
      $("gallery-section").hidden = false;
      resetList();
      await Promise.all([loadUsage(), loadPage(), openStream()]);
    } catch (error) { fail(error); } finally { $("connect").disabled = false; }
  }

  $("key-form").addEventListener("submit", connect);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); resetList(); loadPage(); });
  $("filter-status").addEventListener("change", () => { resetList(); loadPage(); });
  $("more").addEventListener("click", loadPage);
  $("usage-measure").addEventListener("change", () =>
    drawDailyChart($("usage-chart"), gallery.usage, $("usage-measure").value, gallery.currency));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && gallery.nextAfter) loadPage();
  }, { rootMargin: "200px" }).observe($("gallery-end"));

  // live.js calls this after a submit: the gallery follows the key that was used.
  window.lunosGallery = {
    ensureConnected() {
      if (!gallery.connected || gallery.key !== $("api-key").value.trim()) connect();
    },
  };
})();
