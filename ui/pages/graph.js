// Service graph (`/graph`): which service calls which, how often and how often the callee
// failed, over a time range, from the public `/api/dependencies` route.  The range lives in the
// URL as on the search page: `lookback=1h` (a preset), or `start` & `end` (epoch microseconds,
// or RFC 3339) for a custom range; a service opens the search page for that service over the
// same range.
import { dependencies, ApiError } from "../lib/api.js";
import { el, serviceColor, stylesheet, timestamp } from "../lib/format.js";
import { navigate } from "../lib/nav.js";

const SVG = "http://www.w3.org/2000/svg";
export const PRESETS = [
  ["15m", "Last 15 minutes", 15 * 60e3], ["1h", "Last hour", 3600e3], ["6h", "Last 6 hours", 6 * 3600e3],
  ["24h", "Last 24 hours", 86400e3], ["2d", "Last 2 days", 2 * 86400e3], ["7d", "Last 7 days", 7 * 86400e3],
];
const DEFAULT_LOOKBACK = "1h";

/** A time from the URL in ms: µs since the epoch (digits, Jaeger's form) or a date string. */
function parseTime(raw) {
  if (raw == null || raw === "") return NaN;
  if (/^\d+$/.test(raw)) return Number(raw) / 1000;
  return Date.parse(raw);
}

/** The range in the URL: {lookback ("custom" for start & end), startMs, endMs, label}.  A
 *  custom range that does not parse falls back to the default preset, flagged `invalid`. */
export function rangeFromParams(params, nowMs = Date.now()) {
  let invalid = false;
  if (params.has("start") || params.has("end")) {
    const start = parseTime(params.get("start")), end = parseTime(params.get("end"));
    if (Number.isFinite(start) && Number.isFinite(end) && end > start) {
      return { lookback: "custom", startMs: start, endMs: end,
        label: `${timestamp(start * 1000)} – ${timestamp(end * 1000)}` };
    }
    invalid = true;
  }
  const preset = PRESETS.find(([v]) => v === params.get("lookback")) || PRESETS.find(([v]) => v === DEFAULT_LOOKBACK);
  return { lookback: preset[0], startMs: nowMs - preset[2], endMs: nowMs, label: preset[1].toLowerCase(), invalid };
}

/** The graph's query string for a range. */
function rangeQuery(range) {
  return range.lookback === "custom"
    ? new URLSearchParams({ start: String(Math.round(range.startMs * 1000)), end: String(Math.round(range.endMs * 1000)) })
    : new URLSearchParams({ lookback: range.lookback });
}

/** The search page's URL for one service over the same range (its parameters: `service`, and
 *  `lookback` or `start` & `end` in epoch µs). */
export function searchHref(service, range) {
  return `/search?${new URLSearchParams([["service", service], ...rangeQuery(range)])}`;
}

// ------------------------------------------------------------------------------------- layout

/** Layers by longest path from the roots.  Back edges (those closing a cycle, found by a
 *  depth-first walk from the roots, then from whatever a cycle left unvisited) are left out of
 *  the layering so it terminates; they are returned so they can be drawn differently. */
export function layered(nodes, links) {
  const out = new Map(nodes.map((n) => [n, []]));
  const indeg = new Map(nodes.map((n) => [n, 0]));
  for (const l of links) { out.get(l.parent).push(l.child); indeg.set(l.child, indeg.get(l.child) + 1); }
  const state = new Map(); // 1 on the walk's stack, 2 done
  const back = new Set(), post = [];
  const walk = (start) => {
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = out.get(top[0])[top[1]++];
      if (next === undefined) { state.set(top[0], 2); post.push(top[0]); stack.pop(); continue; }
      const s = state.get(next);
      if (s === 1) back.add(`${top[0]}\u0000${next}`);
      else if (!s) { state.set(next, 1); stack.push([next, 0]); }
    }
  };
  for (const n of nodes) if (indeg.get(n) === 0 && !state.has(n)) walk(n);
  for (const n of nodes) if (!state.has(n)) walk(n);
  const layer = new Map(nodes.map((n) => [n, 0]));
  for (const n of post.reverse()) { // topological order of the graph without its back edges
    for (const c of out.get(n)) {
      if (!back.has(`${n}\u0000${c}`)) layer.set(c, Math.max(layer.get(c), layer.get(n) + 1));
    }
  }
  const layers = [];
  for (const n of nodes) (layers[layer.get(n)] ||= []).push(n);
  // Fewer crossings: order each layer by the mean position of its neighbours in the one before.
  const pos = new Map();
  layers.forEach((ns) => ns.forEach((n, i) => pos.set(n, i)));
  const preds = new Map(nodes.map((n) => [n, []]));
  for (const l of links) preds.get(l.child).push(l.parent);
  for (let i = 1; i < layers.length; i++) {
    const score = (n) => {
      const ps = preds.get(n).filter((p) => layer.get(p) < i);
      return ps.length ? ps.reduce((a, p) => a + pos.get(p), 0) / ps.length : pos.get(n);
    };
    const scored = layers[i].map((n) => [score(n), n]).sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
    layers[i] = scored.map(([, n]) => n);
    layers[i].forEach((n, j) => pos.set(n, j));
  }
  return { layers, layer, back };
}

// -------------------------------------------------------------------------------------- page

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

const pct = (errors, calls) => {
  if (!calls || !errors) return "0%";
  const p = (100 * errors) / calls;
  return `${p >= 10 || p === Math.round(p) ? Math.round(p) : p.toFixed(1)}%`;
};
const plural = (n, one, many) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;

function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}

function rangeForm(range) {
  const select = el("select", { id: "graph-range", name: "lookback" },
    PRESETS.map(([v, label]) => el("option", { value: v, selected: range.lookback === v }, label)),
    el("option", { value: "custom", selected: range.lookback === "custom" }, "Custom range…"));
  const from = el("input", { type: "datetime-local", id: "graph-from", name: "from", value: toLocalInput(range.startMs) });
  const to = el("input", { type: "datetime-local", id: "graph-to", name: "to", value: toLocalInput(range.endMs) });
  const custom = el("span", { className: "graph-custom", hidden: range.lookback !== "custom" },
    el("label", { htmlFor: "graph-from" }, "From"), from, el("label", { htmlFor: "graph-to" }, "To"), to);
  const problem = el("span", { className: "error", role: "alert" });
  const button = el("button", { type: "submit", className: "primary" }, range.lookback === "custom" ? "Show" : "Refresh");
  const form = el("form", { className: "graph-form", "aria-label": "Graph range" },
    el("label", { htmlFor: "graph-range" }, "Time range"), select, custom, button, problem);
  select.addEventListener("change", () => {
    custom.hidden = select.value !== "custom";
    button.textContent = select.value === "custom" ? "Show" : "Refresh";
    if (select.value !== "custom") navigate(`/graph?${new URLSearchParams({ lookback: select.value })}`);
    else from.focus();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (select.value !== "custom") { navigate(`/graph?${new URLSearchParams({ lookback: select.value })}`); return; }
    const start = new Date(from.value).getTime(), end = new Date(to.value).getTime();
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
      problem.textContent = "Choose a start before the end.";
      return;
    }
    navigate(`/graph?${rangeQuery({ lookback: "custom", startMs: start, endMs: end })}`);
  });
  return form;
}

const NODE_H = 34, ROW = 74, GAP_X = 190, PAD = 24;
const nodeWidth = (name) => Math.max(90, Math.round(name.length * 7.6) + 28);

function drawGraph(links, range) {
  const names = [...new Set(links.flatMap((l) => [l.parent, l.child]))].sort();
  const { layers, layer, back } = layered(names, links);
  const box = new Map();
  let x = PAD, height = 0;
  for (const ns of layers) {
    const w = Math.max(...ns.map(nodeWidth));
    ns.forEach((n, i) => box.set(n, { x: x + (w - nodeWidth(n)) / 2, y: PAD + 18 + i * ROW, w: nodeWidth(n), h: NODE_H }));
    height = Math.max(height, PAD + 18 + ns.length * ROW);
    x += w + GAP_X;
  }
  const width = x - GAP_X + PAD;
  height += back.size ? 60 : 10;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "graph-svg",
    role: "group", "aria-label": `Service graph: ${plural(names.length, "service", "services")}, ${plural(links.length, "link", "links")}` });
  root.append(svg("defs", null,
    ...["plain", "error"].map((kind) => svg("marker", { id: `graph-arrow-${kind}`, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse", class: `graph-arrow ${kind}` },
    svg("path", { d: "M0,0 L10,5 L0,10 z" })))));
  const edges = svg("g", { class: "graph-edges" });
  const nodes = svg("g", { class: "graph-nodes" });
  root.append(edges, nodes);
  // Several edges leaving or entering the same node spread over its side.
  const ports = (list) => { const m = new Map(); list.forEach((l, i) => m.set(l, (i + 1) / (list.length + 1))); return m; };
  const outPort = new Map(), inPort = new Map();
  for (const n of names) {
    const outs = links.filter((l) => l.parent === n).sort((a, b) => box.get(a.child).y - box.get(b.child).y);
    const ins = links.filter((l) => l.child === n).sort((a, b) => box.get(a.parent).y - box.get(b.parent).y);
    for (const [l, f] of ports(outs)) outPort.set(l, f);
    for (const [l, f] of ports(ins)) inPort.set(l, f);
  }
  for (const l of links) {
    const p = box.get(l.parent), c = box.get(l.child);
    const isBack = back.has(`${l.parent}\u0000${l.child}`) || layer.get(l.child) <= layer.get(l.parent);
    let d, lx, ly;
    if (!isBack) {
      const x1 = p.x + p.w, y1 = p.y + p.h * outPort.get(l), x2 = c.x - 2, y2 = c.y + c.h * inPort.get(l);
      const dx = Math.max(40, (x2 - x1) / 2);
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 6;
    } else { // a call back to an earlier (or the same) layer: loop under both nodes
      const x1 = p.x + p.w / 2 + 8, y1 = p.y + p.h, x2 = c.x + c.w / 2 - 8, y2 = c.y + c.h + 2;
      const low = Math.max(y1, y2) + 44;
      d = `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = low - 8;
    }
    const failed = l.errorCount > 0;
    const label = `${plural(l.callCount, "call", "calls")}${failed ? ` · ${pct(l.errorCount, l.callCount)} errors` : ""}`;
    const g = svg("g", { class: `graph-edge${failed ? " error" : ""}${isBack ? " back" : ""}`, "data-testid": "graph-edge",
      "data-parent": l.parent, "data-child": l.child },
    svg("title", null, `${l.parent} → ${l.child}: ${plural(l.callCount, "call", "calls")}, ` +
      `${plural(l.errorCount, "error", "errors")} (${pct(l.errorCount, l.callCount)})`),
    svg("path", { d, "marker-end": `url(#graph-arrow-${failed ? "error" : "plain"})` }),
    svg("text", { x: lx, y: ly, "text-anchor": "middle", class: "graph-edge-label" }, label));
    edges.append(g);
  }
  for (const n of names) {
    const b = box.get(n);
    const calls = links.filter((l) => l.child === n).reduce((a, l) => a + l.callCount, 0);
    const href = searchHref(n, range);
    const a = svg("a", { href, class: "graph-node", "data-testid": "graph-node", "data-service": n,
      "aria-label": `${n}: search its traces` },
    svg("title", null, `${n}${calls ? ` — called ${plural(calls, "time", "times")}` : ""}; open its search`),
    svg("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 5, fill: serviceColor(n) }),
    svg("text", { x: b.x + b.w / 2, y: b.y + b.h / 2, "text-anchor": "middle", "dominant-baseline": "central" }, n));
    const go = (e) => { e.preventDefault(); navigate(href); };
    a.addEventListener("click", (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return; // new tab etc.
      go(e);
    });
    a.addEventListener("keydown", (e) => { if (e.key === "Enter") go(e); });
    nodes.append(a);
  }
  return root;
}

function linkTable(links, range) {
  const service = (n) => el("a", { href: searchHref(n, range) }, el("span", { className: "swatch", style: { background: serviceColor(n) } }), n);
  return el("table", { className: "graph-table", "aria-label": "Service links" },
    el("thead", null, el("tr", null, ...["Parent", "Child", "Calls", "Errors", "Error rate"].map((h, i) =>
      el("th", { scope: "col", className: i > 1 ? "num" : undefined }, h)))),
    el("tbody", null, links.map((l) => el("tr", { className: l.errorCount ? "error-row" : undefined, dataset: { parent: l.parent, child: l.child } },
      el("td", null, service(l.parent)), el("td", null, service(l.child)),
      el("td", { className: "num" }, l.callCount.toLocaleString("en")),
      el("td", { className: `num${l.errorCount ? " error" : ""}` }, (l.errorCount || 0).toLocaleString("en")),
      el("td", { className: `num${l.errorCount ? " error" : ""}` }, pct(l.errorCount || 0, l.callCount))))));
}

export async function render(main, ctx) {
  stylesheet("/ui/pages/graph.css");
  const range = rangeFromParams(ctx.params);
  const status = el("p", { className: "loading", role: "status" }, "Loading service links…");
  main.append(el("h1", null, "Service graph"), rangeForm(range));
  if (range.invalid) {
    main.append(el("p", { className: "warning", role: "alert" },
      `The time range in the address does not parse; showing the ${range.label} instead.`));
  }
  main.append(status);
  let links;
  try {
    links = await dependencies(range.endMs, range.endMs - range.startMs, { signal: ctx.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    status.className = "error";
    status.setAttribute("role", "alert");
    status.textContent = err instanceof ApiError ? `Could not load the service links: ${err.message}` : String(err);
    return;
  }
  links = links.map((l) => ({ ...l, errorCount: l.errorCount || 0 }));
  if (!links.length) {
    status.className = "muted";
    status.textContent = `No calls between services in ${range.lookback === "custom" ? range.label : `the ${range.label}`}.`;
    return;
  }
  const services = new Set(links.flatMap((l) => [l.parent, l.child]));
  const calls = links.reduce((a, l) => a + l.callCount, 0), errors = links.reduce((a, l) => a + l.errorCount, 0);
  status.className = "muted graph-summary";
  status.textContent = `${plural(services.size, "service", "services")}, ${plural(links.length, "link", "links")}, ` +
    `${plural(calls, "call", "calls")} (${plural(errors, "error", "errors")}) in ` +
    `${range.lookback === "custom" ? range.label : `the ${range.label}`}. Select a service to search its traces.`;
  main.append(el("div", { className: "graph-view" }, drawGraph(links, range)),
    el("h2", { id: "graph-links" }, "Links"), linkTable(links, range));
}
