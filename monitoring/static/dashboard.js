// The live dashboard: reads the panels from /api/panels, queries Prometheus through /api/prom/,
// draws each panel as SVG or HTML, and does it again every refresh_s. Every drawn number is also
// on the element as data-value (with data-series and the panel's data-eval-time), so a test can
// hold the page against Prometheus' own answers.
"use strict";

const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72",
                "#a5d6ff", "#7ee787", "#e3b341", "#ffa198", "#d2a8ff"];
const SVG = "http://www.w3.org/2000/svg";
const BARS_SHOWN = 16;

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function fmt(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  if (unit === "s") {
    const a = Math.abs(value);
    if (a < 1) return `${(value * 1000).toFixed(a < 0.1 ? 1 : 0)} ms`;
    if (a < 120) return `${value.toFixed(a < 10 ? 2 : 1)} s`;
    if (a < 7200) return `${(value / 60).toFixed(1)} min`;
    return `${(value / 3600).toFixed(1)} h`;
  }
  if (unit === "bytes") {
    const steps = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = value, i = 0;
    while (Math.abs(v) >= 1024 && i < steps.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(i && Math.abs(v) < 10 ? 1 : 0)} ${steps[i]}`;
  }
  const a = Math.abs(value);
  let text;
  if (a >= 1e6) text = `${(value / 1e6).toFixed(1)}M`;
  else if (a >= 1e4) text = `${(value / 1e3).toFixed(1)}K`;
  else if (a >= 100 || Number.isInteger(value)) text = `${Math.round(value)}`;
  else text = value.toFixed(a < 1 ? 3 : 1);
  return unit === "ops" ? `${text}/s` : text;
}

function seriesName(legend, metric) {
  return legend.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label) => metric[label] ?? "").replace(/\s+/g, " ").trim();
}

async function prom(endpoint, params) {
  const response = await fetch(`/api/prom/${endpoint}?${new URLSearchParams(params)}`);
  const body = await response.json();
  if (body.status !== "success") throw new Error(body.error || `Prometheus answered ${response.status}`);
  return body.data;
}

async function instant(panel, time) {
  const rows = [];
  for (const query of panel.queries) {
    const data = await prom("query", {query: query.expr, time});
    for (const r of data.result) rows.push({name: seriesName(query.legend, r.metric), metric: r.metric,
                                             value: Number(r.value[1])});
  }
  return rows;
}

async function range(panel, start, end, step) {
  const series = [];
  for (const query of panel.queries) {
    const data = await prom("query_range", {query: query.expr, start, end, step});
    for (const r of data.result) series.push({name: seriesName(query.legend, r.metric),
                                              points: r.values.map(([t, v]) => [t, Number(v)])});
  }
  return series;
}

function niceMax(max) {
  if (!(max > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * magnitude >= max) return m * magnitude;
  return 10 * magnitude;
}

function clock(t) {
  return new Date(t * 1000).toTimeString().slice(0, 5);
}

function drawTimeseries(body, panel, series, start, end) {
  const width = Math.max(body.clientWidth, 300), height = 200, left = 62, right = 8, top = 8, bottom = 20;
  const max = niceMax(Math.max(0, ...series.flatMap(s => s.points.map(p => p[1]).filter(Number.isFinite))));
  const x = t => left + (t - start) / (end - start) * (width - left - right);
  const y = v => top + (1 - v / max) * (height - top - bottom);
  const svg = el("svg:svg", {width, height, viewBox: `0 0 ${width} ${height}`});
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    svg.append(el("svg:line", {class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v)}));
    svg.append(el("svg:text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", text: fmt(v, panel.unit)}));
  }
  const tickEvery = 300;
  for (let t = Math.ceil(start / tickEvery) * tickEvery; t <= end; t += tickEvery) {
    svg.append(el("svg:text", {x: x(t), y: height - 4, "text-anchor": "middle", text: clock(t)}));
  }
  const legend = el("div", {class: "legend"});
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "", pen = "M";
    let previous = null;
    for (const [t, v] of s.points) {
      if (!Number.isFinite(v)) { pen = "M"; continue; }
      // A gap of more than three steps is a gap in the data, not a line across it.
      if (previous !== null && t - previous > 3 * panel.step) pen = "M";
      d += `${pen}${x(t).toFixed(1)},${y(Math.min(v, max)).toFixed(1)} `;
      pen = "L";
      previous = t;
    }
    svg.append(el("svg:path", {d, fill: "none", stroke: color, "stroke-width": 2}));
    const last = s.points.length ? s.points[s.points.length - 1] : null;
    const current = last && last[0] === end ? last[1] : null;
    legend.append(el("div", {class: "series", "data-series": s.name, "data-value": current ?? ""},
                     el("span", {class: "sw", style: `background:${color}`}), s.name,
                     el("b", {text: fmt(current, panel.unit)})));
  });
  body.replaceChildren(svg, series.length ? legend : el("div", {class: "empty", text: panel.empty_text}));
}

function drawBars(body, panel, rows) {
  rows.sort((a, b) => b.value - a.value || a.name.localeCompare(b.name));
  const max = Math.max(...rows.map(r => r.value), 0) || 1;
  const grid = el("div", {class: "bars"});
  // Partitions at zero are counted, not drawn: the eye goes to the ones with lag.
  const zeros = rows.filter(r => r.value === 0).length;
  const shown = rows.filter(r => r.value !== 0).slice(0, BARS_SHOWN);
  for (const r of shown) {
    grid.append(el("div", {class: "label", title: r.name, text: r.name}),
                el("div", {class: "track"}, el("div", {class: "fill", style: `width:${100 * r.value / max}%`})),
                el("div", {class: "value", "data-series": r.name, "data-value": r.value, text: fmt(r.value, panel.unit)}));
  }
  const parts = [shown.length ? grid : el("div", {class: rows.length ? "all-clear" : "empty",
                                                   text: rows.length ? "no lag" : "no data"})];
  const hidden = rows.length - zeros - shown.length;
  const notes = [];
  if (hidden > 0) notes.push(`+${hidden} more, up to ${fmt(rows[shown.length].value, panel.unit)}`);
  if (zeros > 0) notes.push(`${zeros} partition${zeros > 1 ? "s" : ""} at 0`);
  if (notes.length) parts.push(el("div", {class: "more", "data-zeros": zeros, text: notes.join(" · ")}));
  body.replaceChildren(...parts);
}

function drawStat(body, panel, rows) {
  if (!rows.length) {
    body.replaceChildren(el("div", {class: "empty", text: panel.empty_text}));
    return;
  }
  body.replaceChildren(el("div", {class: "stats"}, ...rows.map(r => el("div", {class: "stat"},
    el("div", {class: "big", "data-series": r.name, "data-value": r.value, text: fmt(r.value, panel.unit)}),
    el("div", {class: "label", text: r.name})))));
}

function drawStates(body, panel, rows) {
  const connectors = new Map();
  for (const r of rows) {
    const c = r.metric.connector;
    if (!connectors.has(c)) connectors.set(c, {status: "unknown", tasks: []});
    if (r.metric.task === undefined) connectors.get(c).status = r.metric.status;
    else connectors.get(c).tasks.push(r.metric);
  }
  if (!connectors.size) {
    body.replaceChildren(el("div", {class: "empty", text: "no connector reported"}));
    return;
  }
  const tiles = el("div", {class: "tiles"});
  for (const [name, c] of [...connectors].sort()) {
    const worst = c.tasks.some(t => t.status === "failed") ? "failed" : c.status;
    const tasks = el("div", {class: "tasks"});
    c.tasks.sort((a, b) => a.task - b.task).forEach((t, i) => {
      if (i) tasks.append(", ");
      tasks.append(el("span", {class: `chip-${t.status}`, text: `task ${t.task} ${t.status}`}));
    });
    tiles.append(el("div", {class: `tile s-${worst}`, "data-series": name, "data-value": worst},
                    el("div", {class: "name", text: `${name} · ${c.status}`}), tasks));
  }
  body.replaceChildren(tiles);
}

function drawAlerts(body, alerts) {
  alerts.sort((a, b) => (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1)
                        || a.labels.alertname.localeCompare(b.labels.alertname));
  if (!alerts.length) {
    body.replaceChildren(el("div", {class: "all-clear", text: "No alert firing or pending"}));
    return;
  }
  body.replaceChildren(el("div", {class: "alerts"}, ...alerts.map(a => el("div",
    {class: `alert ${a.state} ${a.labels.severity || ""}`, "data-series": a.labels.alertname, "data-value": a.state},
    el("span", {class: "name", text: a.labels.alertname}),
    el("span", {text: a.annotations.summary || ""}),
    el("div", {class: "meta", text: `${a.state} since ${new Date(a.activeAt).toLocaleTimeString()} · ${a.labels.severity || ""} `},
       el("span", {class: "runbook", text: `runbook: ${a.annotations.runbook || "-"}`}))))));
}

function layout(config) {
  const grid = document.getElementById("grid");
  const bodies = new Map();
  for (const panel of config.panels) {
    const body = el("div", {class: "body"});
    grid.append(el("section", {class: "panel", id: `panel-${panel.id}`, "data-kind": panel.kind,
                               style: `grid-column: span ${panel.width}`},
                   el("h2", {text: panel.title}), el("div", {class: "why", text: panel.description}), body));
    bodies.set(panel.id, body);
  }
  return bodies;
}

async function drawPanel(panel, body, config, end) {
  const section = body.parentElement;
  if (panel.kind === "alerts") {
    drawAlerts(body, (await prom("alerts", {})).alerts);
  } else if (panel.kind === "timeseries") {
    panel.step = Math.max(config.refresh_s, Math.round(config.range_s / 240));
    const last = Math.floor(end / panel.step) * panel.step;
    drawTimeseries(body, panel, await range(panel, last - config.range_s, last, panel.step), last - config.range_s, last);
    section.dataset.evalTime = last;
    return;
  } else {
    const rows = await instant(panel, end);
    ({bars: drawBars, stat: drawStat, states: drawStates})[panel.kind](body, panel, rows);
  }
  section.dataset.evalTime = end;
}

async function main() {
  const config = await (await fetch("/api/panels")).json();
  const bodies = layout(config);
  const status = document.getElementById("status");
  async function refresh() {
    const end = Math.floor(Date.now() / 1000) - config.settle_s;
    const failures = [];
    await Promise.all(config.panels.map(async panel => {
      const body = bodies.get(panel.id);
      try {
        await drawPanel(panel, body, config, end);
        body.parentElement.dataset.drawn = String(Number(body.parentElement.dataset.drawn || 0) + 1);
      } catch (error) {
        failures.push(panel.title);
        body.replaceChildren(el("div", {class: "error", text: String(error.message || error)}));
      }
    }));
    status.dataset.state = failures.length ? "error" : "ok";
    status.textContent = failures.length ? `cannot draw: ${failures.join(", ")}`
      : `updated ${new Date(end * 1000).toLocaleTimeString()} · every ${config.refresh_s}s · rate window ${config.rate_window}`;
    document.body.dataset.refreshed = end;
  }
  await refresh();
  setInterval(refresh, config.refresh_s * 1000);
}

main();
