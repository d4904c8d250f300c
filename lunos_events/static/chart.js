// Usage per app per day as stacked SVG bars, drawn here (no library, no CDN), with a legend and the
// same figures as a table for screen readers and exact values. Used by / and /admin.
"use strict";

const CHART_COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207", "#be185d"];
const SVG_NS = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

function svgNode(name, attributes, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function appLabel(appId) { return appId === null || appId === undefined ? "(no app)" : appId; }

// Every day from the first to the last one with operations, so gaps show as empty days.
function dayRange(days) {
  if (!days.length) return [];
  const first = Date.parse(days[0].date), last = Date.parse(days[days.length - 1].date);
  const range = [];
  for (let t = first; t <= last; t += DAY_MS) range.push(new Date(t).toISOString().slice(0, 10));
  return range;
}

/** Draw `days` ([{date, app_id, operations, spend}]) into `container`; `measure` is spend or operations. */
function drawDailyChart(container, days, measure, currency) {
  container.replaceChildren();
  if (!days.length) {
    const empty = document.createElement("p");
    empty.className = "notice";
    empty.textContent = "No usage in this period.";
    container.append(empty);
    return;
  }
  const value = (d) => (measure === "spend" ? Number(d.spend) : d.operations);
  const apps = [...new Set(days.map((d) => appLabel(d.app_id)))].sort();
  const color = (app) => CHART_COLORS[apps.indexOf(app) % CHART_COLORS.length];
  const dates = dayRange(days);
  const byDate = new Map(dates.map((date) => [date, []]));
  for (const d of days) byDate.get(d.date).push(d);
  const totals = dates.map((date) => byDate.get(date).reduce((sum, d) => sum + value(d), 0));
  const peak = Math.max(...totals) || 1;
  // Whole numbers on the axis for counts, cents for money.
  const max = measure === "spend" ? peak : Math.ceil(peak / 4) * 4;

  const width = 720, height = 240, left = 48, bottom = 28, top = 10, right = 8;
  const plotW = width - left - right, plotH = height - top - bottom;
  const step = plotW / dates.length, barW = Math.max(2, Math.min(28, step * 0.7));
  const unit = measure === "spend" ? ` ${currency || "USD"}` : " videos";
  const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${measure === "spend" ? "Spend" : "Videos"} per day from ${dates[0]} to ${dates[dates.length - 1]}, stacked by app; the table below has the figures.` });
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(svgNode("line", { x1: left, x2: width - right, y1: y, y2: y, class: "axis" }));
    const label = (max * i) / 4;
    svg.append(svgNode("text", { x: left - 6, y: y + 4, "text-anchor": "end" },
      measure === "spend" ? label.toFixed(2) : String(Math.round(label))));
  }
  const labelEvery = Math.ceil(dates.length / 8);
  dates.forEach((date, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = top + plotH;
    for (const d of byDate.get(date).slice().sort((a, b) => appLabel(a.app_id).localeCompare(appLabel(b.app_id)))) {
      const h = (value(d) / max) * plotH;
      y -= h;
      const rect = svgNode("rect", { x, y, width: barW, height: Math.max(h, 0.5), fill: color(appLabel(d.app_id)) });
      rect.dataset.date = date;
      rect.dataset.app = appLabel(d.app_id);
      rect.append(svgNode("title", {}, `${date} · ${appLabel(d.app_id)}: ${d.operations} videos, ${d.spend} ${currency || "USD"}`));
      svg.append(rect);
    }
    if (i % labelEvery === 0) {
      svg.append(svgNode("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle" }, date.slice(5)));
    }
  });

  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const app of apps) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = color(app);
    item.append(swatch, app);
    legend.append(item);
  }

  const details = document.createElement("details");
  details.className = "table-view";
  const summary = document.createElement("summary");
  summary.textContent = "Show as a table";
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th scope=col>Day</th><th scope=col>App</th><th scope=col>Videos</th><th scope=col>Spend</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const d of days) {
    const row = body.insertRow();
    for (const cell of [d.date, appLabel(d.app_id), String(d.operations), `${d.spend} ${currency || "USD"}`]) {
      row.insertCell().textContent = cell;
    }
  }
  table.append(body);
  wrap.append(table);
  details.append(summary, wrap);
  container.append(svg, legend, details);
  container.dataset.unit = unit.trim();
}
