// Service graph (`/graph`): which service calls which, how often, how often the calls failed and
// how long they took, over a time range, from `/api/v1/dependencies` (the client/server span
// pairs counted at ingest, before sampling, with latency quantiles per link and the cycles of
// the graph); where that answers 503 (analytics off), from Jaeger's `/api/dependencies` (links
// from the stored spans, without latency).  The range lives in the
// URL as on the search page: `lookback=1h` (a preset), or `start` & `end` (epoch microseconds,
// or RFC 3339) for a custom range; a service opens the search page for that service over the
// same range.
// A (nearly) acyclic graph is drawn in columns, callers left of callees; a graph knotted with
// cycles, on a ring.  Call counts label the links when they all fit; otherwise hovering over or
// focusing a service shows its own links with their labels and dims the rest.
import { dependencies, getJSON, ApiError } from "../lib/api.js";
import { duration, el, serviceColor, stylesheet, timestamp } from "../lib/format.js";
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

// --------------------------------------------------------------------------------------- data

/** The links of the range: {links: [{parent, child, callCount, errorCount, latency (ns:
 *  {p50, p95, p99, mean}) | null}], cycles: [[service…]], cyclesTruncated, withLatency}.  Both
 *  kinds of pairs between two services (request, messaging) make one link: their counts add up
 *  and the latency is the busier one's. */
export async function loadLinks(range, opts) {
  let answer;
  try {
    answer = await getJSON("/api/v1/dependencies",
      { from: (range.startMs / 1000).toFixed(3), to: (range.endMs / 1000).toFixed(3) }, opts);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 503) throw err;
    const links = await dependencies(range.endMs, range.endMs - range.startMs, opts);
    return { links: links.map((l) => ({ ...l, errorCount: l.errorCount || 0, latency: null })),
      cycles: [], cyclesTruncated: false, withLatency: false };
  }
  const byPair = new Map();
  for (const e of answer.edges) {
    const key = `${e.source}\u0000${e.target}`;
    const had = byPair.get(key);
    const link = { parent: e.source, child: e.target, callCount: e.calls, errorCount: e.errors || 0,
      latency: e.latency || null, busiest: e.calls };
    if (!had) byPair.set(key, link);
    else {
      had.callCount += link.callCount;
      had.errorCount += link.errorCount;
      if (link.busiest > had.busiest) { had.latency = link.latency; had.busiest = link.busiest; }
    }
  }
  return { links: [...byPair.values()], cycles: answer.cycles || [], cyclesTruncated: !!answer.cyclesTruncated, withLatency: true };
}

const latencyText = (lat) => (lat ? `p50 ${duration(lat.p50 / 1000)}, p95 ${duration(lat.p95 / 1000)}, p99 ${duration(lat.p99 / 1000)}` : "");

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

const NODE_H = 34, ROW = 74, GAP_X = 190, PAD = 24, LABEL_H = 16, MAX_LABELS_AT_REST = 24;
const nodeWidth = (name) => Math.max(90, Math.round(name.length * 7.6) + 28);

/** Which drawing suits the graph: `"layered"` (columns left to right) when it is (nearly)
 *  acyclic and the columns carry its structure: few back edges (at most 2, or 15% of the
 *  links) and few forward links skipping a column (at most 2, or 25%; such a link would run
 *  through the services between); otherwise `"ring"`: the services on an ellipse, where links
 *  fan out across the middle instead of stacking along one row.  Returns {kind, ...layered()}. */
export function chooseLayout(nodes, links) {
  const l = layered(nodes, links);
  if (nodes.length <= 2) return { kind: "layered", ...l };
  let skipping = 0;
  for (const k of links) {
    if (!l.back.has(`${k.parent}\u0000${k.child}`) && l.layer.get(k.child) - l.layer.get(k.parent) > 1) skipping++;
  }
  const few = (n, share) => n <= Math.max(2, Math.round(share * links.length));
  const kind = l.layers.length >= 2 && few(l.back.size, 0.15) && few(skipping, 0.25) ? "layered" : "ring";
  return { kind, ...l };
}

// Geometry: each link becomes {d (the SVG path), at(t) (a point on it), cands (label anchors to
// try, best first)}; a label anchor is {x, y} of a text with `text-anchor: middle` whose
// baseline is y.

const cubic = (p0, p1, p2, p3) => (t) => {
  const u = 1 - t;
  return [0, 1].map((i) => u * u * u * p0[i] + 3 * u * u * t * p1[i] + 3 * u * t * t * p2[i] + t * t * t * p3[i]);
};
const quad = (p0, p1, p2) => (t) => {
  const u = 1 - t;
  return [0, 1].map((i) => u * u * p0[i] + 2 * u * t * p1[i] + t * t * p2[i]);
};
const centre = (b) => [b.x + b.w / 2, b.y + b.h / 2];

/** Where the ray from a box's centre in direction (dx, dy) leaves the box, `gap` beyond it. */
function boxExit(b, dx, dy, gap = 1) {
  const [cx, cy] = centre(b);
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len;
  const t = Math.min(ux ? (b.w / 2) / Math.abs(ux) : Infinity, uy ? (b.h / 2) / Math.abs(uy) : Infinity) + gap;
  return [cx + ux * t, cy + uy * t];
}

const LABEL_TS = [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78];

function layeredGeometry(names, links, lay) {
  const { layers, layer, back } = lay;
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
  // Several edges leaving or entering the same node spread over its side.
  const ports = (list) => { const m = new Map(); list.forEach((l, i) => m.set(l, (i + 1) / (list.length + 1))); return m; };
  const outPort = new Map(), inPort = new Map();
  for (const n of names) {
    const outs = links.filter((l) => l.parent === n).sort((a, b) => box.get(a.child).y - box.get(b.child).y);
    const ins = links.filter((l) => l.child === n).sort((a, b) => box.get(a.parent).y - box.get(b.parent).y);
    for (const [l, f] of ports(outs)) outPort.set(l, f);
    for (const [l, f] of ports(ins)) inPort.set(l, f);
  }
  const geo = new Map();
  for (const l of links) {
    const p = box.get(l.parent), c = box.get(l.child);
    const isBack = back.has(`${l.parent}\u0000${l.child}`) || layer.get(l.child) <= layer.get(l.parent);
    let g;
    if (!isBack) {
      const x1 = p.x + p.w, y1 = p.y + p.h * outPort.get(l), x2 = c.x - 2, y2 = c.y + c.h * inPort.get(l);
      const dx = Math.max(40, (x2 - x1) / 2);
      const at = cubic([x1, y1], [x1 + dx, y1], [x2 - dx, y2], [x2, y2]);
      const cands = [{ x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6 }];
      for (const t of LABEL_TS.slice(1)) { const [px, py] = at(t); cands.push({ x: px, y: py - 6 }); }
      for (const t of LABEL_TS) { const [px, py] = at(t); cands.push({ x: px, y: py + 15 }); }
      g = { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, at, cands, back: false };
    } else { // a call back to an earlier (or the same) layer: loop under both nodes
      const x1 = p.x + p.w / 2 + 8, y1 = p.y + p.h, x2 = c.x + c.w / 2 - 8, y2 = c.y + c.h + 2;
      const low = Math.max(y1, y2) + 44;
      const at = cubic([x1, y1], [x1, low], [x2, low], [x2, y2]);
      const cands = [{ x: (x1 + x2) / 2, y: low - 8 }];
      for (const t of LABEL_TS.slice(1)) { const [px, py] = at(t); cands.push({ x: px, y: py - 4 }); }
      g = { d: `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2}`, at, cands, back: true };
    }
    geo.set(l, g);
  }
  return { box, geo, width, height };
}

/** The services on an ellipse (in the layering's order, so most calls run clockwise), far
 *  enough apart that no two boxes come within `MARGIN`; links are curves bending to their
 *  right, so A → B and B → A run apart. */
function ringGeometry(names, links, order, scale) {
  const MARGIN = 18, ASPECT = 1.9;
  const n = order.length;
  const w = new Map(order.map((s) => [s, nodeWidth(s)]));
  const maxW = Math.max(...w.values());
  const at = (ry, i) => { const a = -Math.PI / 2 + (2 * Math.PI * i) / n; return [ry * ASPECT * Math.cos(a), ry * Math.sin(a)]; };
  const clash = (ry) => {
    const pts = order.map((s, i) => at(ry, i));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = Math.abs(pts[i][0] - pts[j][0]), dy = Math.abs(pts[i][1] - pts[j][1]);
        if (dx < (w.get(order[i]) + w.get(order[j])) / 2 + MARGIN && dy < NODE_H + MARGIN) return true;
      }
    }
    return false;
  };
  let ry = Math.max(110, n * 12);
  for (let k = 0; k < 60 && clash(ry); k++) ry *= 1.08;
  ry *= scale;
  const rx = ry * ASPECT, loopRoom = links.some((l) => l.parent === l.child) ? 70 : 0;
  const cx = PAD + maxW / 2 + rx + loopRoom, cy = PAD + NODE_H / 2 + ry + loopRoom;
  const box = new Map(order.map((s, i) => {
    const [px, py] = at(ry, i);
    return [s, { x: cx + px - w.get(s) / 2, y: cy + py - NODE_H / 2, w: w.get(s), h: NODE_H }];
  }));
  const width = 2 * cx, height = 2 * cy;
  const geo = new Map();
  for (const l of links) {
    const p = box.get(l.parent), c = box.get(l.child);
    let curve;
    if (l.parent === l.child) { // a loop outside the ring
      const [px, py] = centre(p);
      const ox = px - cx, oy = py - cy, len = Math.hypot(ox, oy) || 1, ux = ox / len, uy = oy / len;
      const rot = (a) => [ux * Math.cos(a) - uy * Math.sin(a), ux * Math.sin(a) + uy * Math.cos(a)];
      const [ax, ay] = rot(-0.45), [bx, by] = rot(0.45);
      const s = boxExit(p, ax, ay), e = boxExit(p, bx, by, 2);
      const c1 = [s[0] + ax * 60, s[1] + ay * 60], c2 = [e[0] + bx * 60, e[1] + by * 60];
      curve = { d: `M${s} C${c1} ${c2} ${e}`, at: cubic(s, c1, c2, e) };
    } else {
      const [x1, y1] = centre(p), [x2, y2] = centre(c);
      const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy);
      const bend = Math.min(60, Math.max(16, 0.14 * len));
      const ctrl = [(x1 + x2) / 2 - (dy / len) * bend, (y1 + y2) / 2 + (dx / len) * bend];
      const s = boxExit(p, ctrl[0] - x1, ctrl[1] - y1), e = boxExit(c, ctrl[0] - x2, ctrl[1] - y2, 2);
      curve = { d: `M${s} Q${ctrl} ${e}`, at: quad(s, ctrl, e) };
    }
    const cands = LABEL_TS.map((t) => { const [px, py] = curve.at(t); return { x: px, y: py + 4.5 }; });
    geo.set(l, { d: curve.d, at: curve.at, cands, back: false });
  }
  return { box, geo, width, height };
}

let measureCtx;
/** A label's width in px at the graph's font size (13px), with room for its white halo. */
function labelWidth(text, bold) {
  measureCtx ||= document.createElement("canvas").getContext("2d");
  measureCtx.font = `${bold ? 600 : 400} 13px ${getComputedStyle(document.documentElement).fontFamily}`;
  return Math.ceil(measureCtx.measureText(text).width) + 6;
}

const overlaps = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];

/** Greedy label placement: each label takes its first anchor whose box stays inside the
 *  drawing and clear of every service box and every label placed before it, preferring one
 *  that no other link of the list runs through (requiring it when `strict`).  Returns a Map
 *  link → anchor (null for a label that found no room), or null at the first miss when `all`. */
function placeLabels(list, geo, widths, nodeBoxes, width, height, { all = false, strict = false } = {}) {
  const taken = [], out = new Map();
  const paths = list.map((l) => {
    const pts = Array.from({ length: 33 }, (_, i) => geo.get(l).at(i / 32));
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    return { l, pts, bbox: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] };
  });
  const crossed = (l, r) => paths.some((o) => o.l !== l && overlaps(o.bbox, r) &&
    o.pts.some(([x, y]) => x > r[0] && x < r[2] && y > r[1] && y < r[3]));
  for (const l of list) {
    const w = widths.get(l);
    const boxes = geo.get(l).cands.map((a) => [a, [a.x - w / 2, a.y - 12, a.x + w / 2, a.y + LABEL_H - 12]])
      .filter(([, r]) => r[0] >= 0 && r[1] >= 0 && r[2] <= width && r[3] <= height &&
        !nodeBoxes.some((b) => overlaps(r, b)) && !taken.some((b) => overlaps(r, b)));
    const pick = boxes.find(([, r]) => !crossed(l, r)) || (strict ? null : boxes[0]);
    if (!pick && all) return null;
    out.set(l, pick ? pick[0] : null);
    if (pick) taken.push(pick[1]);
  }
  return out;
}

const linkLabel = (l) => `${plural(l.callCount, "call", "calls")}${l.errorCount ? ` · ${pct(l.errorCount, l.callCount)} errors` : ""}`;

/** The graph's layout with its labels: at rest (every label, when there are few and all of
 *  them fit clear of the other links; otherwise none) and for each service (the labels of its own links, shown while it is highlighted). */
function layout(names, links) {
  const lay = chooseLayout(names, links);
  const widths = new Map(links.map((l) => [l, labelWidth(linkLabel(l), l.errorCount > 0)]));
  const touching = new Map(names.map((n) => [n, links.filter((l) => l.parent === n || l.child === n)]));
  let result;
  // A ring too tight for some service's labels grows until they fit (or gives up after a few
  // steps, leaving the labels without room hidden: the tooltips and the table still tell).
  for (let scale = 1, k = 0; k < 6; k++, scale *= 1.15) {
    const g = lay.kind === "layered" ? layeredGeometry(names, links, lay) : ringGeometry(names, links, lay.layers.flat(), scale);
    const nodeBoxes = [...g.box.values()].map((b) => [b.x - 2, b.y - 2, b.x + b.w + 2, b.y + b.h + 2]);
    const place = (list, opts) => placeLabels(list, g.geo, widths, nodeBoxes, g.width, g.height, opts);
    // At rest: every label or none, each clear of the other links.
    const rest = links.length <= MAX_LABELS_AT_REST ? place(links, { all: true, strict: true }) : null;
    const byNode = new Map();
    let fits = true;
    for (const n of names) {
      const m = place(touching.get(n));
      byNode.set(n, m);
      if (fits && [...m.values()].some((a) => !a)) fits = false;
    }
    result = { kind: lay.kind, ...g, rest, byNode };
    if (fits || lay.kind === "layered") break;
  }
  return result;
}

function drawGraph(links, range) {
  const names = [...new Set(links.flatMap((l) => [l.parent, l.child]))].sort();
  const { kind, box, geo, width, height, rest, byNode } = layout(names, links);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`,
    class: `graph-svg ${kind}${rest ? " labels-at-rest" : ""}`, "data-layout": kind,
    role: "group", "aria-label": `Service graph: ${plural(names.length, "service", "services")}, ${plural(links.length, "link", "links")}` });
  root.append(svg("defs", null,
    ...["plain", "error"].map((k) => svg("marker", { id: `graph-arrow-${k}`, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 12, markerHeight: 12, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse", class: `graph-arrow ${k}` },
    svg("path", { d: "M0,0 L10,5 L0,10 z" })))));
  const edges = svg("g", { class: "graph-edges" });
  const nodes = svg("g", { class: "graph-nodes" });
  root.append(edges, nodes);
  // Line width grows with the call count (log scale over this graph's range).
  const lo = Math.log(Math.min(...links.map((l) => l.callCount || 1))), hi = Math.log(Math.max(...links.map((l) => l.callCount || 1)));
  const strokeWidth = (l) => (hi > lo ? 1.4 + (2.2 * (Math.log(l.callCount || 1) - lo)) / (hi - lo) : 1.6).toFixed(2);
  const edgeEls = new Map(), nodeEls = new Map();
  for (const l of links) {
    const g = geo.get(l), failed = l.errorCount > 0, at = rest?.get(l) || g.cands[0];
    const e = svg("g", { class: `graph-edge${failed ? " error" : ""}${g.back ? " back" : ""}`, "data-testid": "graph-edge",
      "data-parent": l.parent, "data-child": l.child },
    svg("title", null, `${l.parent} → ${l.child}: ${plural(l.callCount, "call", "calls")}, ` +
      `${plural(l.errorCount, "error", "errors")} (${pct(l.errorCount, l.callCount)})` +
      (l.latency ? `; latency ${latencyText(l.latency)}` : "")),
    svg("path", { d: g.d, "stroke-width": strokeWidth(l), "marker-end": `url(#graph-arrow-${failed ? "error" : "plain"})` }),
    svg("path", { d: g.d, class: "graph-edge-hit" }),
    svg("text", { x: at.x, y: at.y, "text-anchor": "middle", class: "graph-edge-label" }, linkLabel(l)));
    edges.append(e);
    edgeEls.set(l, e);
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
    nodeEls.set(n, a);
  }

  // Highlighting: a hovered or focused service shows its links (with their labels) and its
  // neighbours and dims the rest; a hovered link shows itself.  Hover wins over focus.
  let hovered = null, focused = null;
  const show = (target) => {
    root.classList.toggle("focusing", !!target);
    for (const e of edgeEls.values()) e.classList.remove("hl", "nolabel");
    for (const a of nodeEls.values()) a.classList.remove("hl");
    for (const [l, e] of edgeEls) {
      const a = rest?.get(l) || geo.get(l).cands[0];
      e.lastChild.setAttribute("x", a.x);
      e.lastChild.setAttribute("y", a.y);
    }
    if (!target) return;
    const mark = (l, a, raise) => {
      const e = edgeEls.get(l);
      e.classList.add("hl");
      if (a) { e.lastChild.setAttribute("x", a.x); e.lastChild.setAttribute("y", a.y); } else e.classList.add("nolabel");
      nodeEls.get(l.parent).classList.add("hl");
      nodeEls.get(l.child).classList.add("hl");
      if (raise) edges.append(e); // drawn over the dimmed links
    };
    if (target.service) {
      nodeEls.get(target.service).classList.add("hl");
      for (const [l, a] of byNode.get(target.service)) mark(l, a, true);
    } else {
      const l = target.link;
      mark(l, rest?.get(l) || byNode.get(l.parent).get(l) || byNode.get(l.child).get(l));
    }
  };
  const update = () => show(hovered || focused);
  for (const [n, a] of nodeEls) {
    a.addEventListener("mouseenter", () => { hovered = { service: n }; update(); });
    a.addEventListener("mouseleave", () => { hovered = null; update(); });
    a.addEventListener("focus", () => { focused = { service: n }; update(); });
    a.addEventListener("blur", () => { focused = null; update(); });
  }
  for (const [l, e] of edgeEls) {
    e.addEventListener("mouseenter", () => { if (!hovered?.service) { hovered = { link: l }; update(); } });
    e.addEventListener("mouseleave", () => { if (hovered?.link === l) { hovered = null; update(); } });
  }
  return { root, labelsAtRest: !!rest };
}

function linkTable(links, range, withLatency) {
  const service = (n) => el("a", { href: searchHref(n, range) }, el("span", { className: "swatch", style: { background: serviceColor(n) } }), n);
  const quantiles = withLatency ? ["p50", "p95", "p99"] : [];
  return el("table", { className: "graph-table", "aria-label": "Service links" },
    el("thead", null, el("tr", null, ...["Parent", "Child", "Calls", "Errors", "Error rate", ...quantiles].map((h, i) =>
      el("th", { scope: "col", className: i > 1 ? "num" : undefined }, h)))),
    el("tbody", null, links.map((l) => el("tr", { className: l.errorCount ? "error-row" : undefined, dataset: { parent: l.parent, child: l.child } },
      el("td", null, service(l.parent)), el("td", null, service(l.child)),
      el("td", { className: "num" }, l.callCount.toLocaleString("en")),
      el("td", { className: `num${l.errorCount ? " error" : ""}` }, (l.errorCount || 0).toLocaleString("en")),
      el("td", { className: `num${l.errorCount ? " error" : ""}` }, pct(l.errorCount || 0, l.callCount)),
      quantiles.map((q) => el("td", { className: "num", dataset: { field: q } }, l.latency ? duration(l.latency[q] / 1000) : "–"))))));
}

/** The cycles found (each as a → b → … → a), at most `MAX_CYCLES_SHOWN` of them. */
const MAX_CYCLES_SHOWN = 50;
function cycleList(cycles, truncated) {
  const shown = cycles.slice(0, MAX_CYCLES_SHOWN);
  const more = cycles.length - shown.length;
  return [el("h2", { id: "graph-cycles" }, "Cycles"),
    el("p", { className: "muted" }, `Services that end up calling themselves: ${plural(cycles.length, "cycle", "cycles")}` +
      `${truncated ? " (more exist: the server lists at most analytics.max_cycles)" : ""}.`),
    el("ul", { className: "graph-cycles", "aria-labelledby": "graph-cycles" }, shown.map((c) =>
      el("li", { "data-testid": "graph-cycle" }, [...c, c[0]].flatMap((n, i) => [i ? " → " : "",
        el("span", { className: "graph-cycle-node" }, el("span", { className: "swatch", style: { background: serviceColor(n) } }), n)])))),
    more > 0 ? el("p", { className: "muted" }, `and ${plural(more, "more cycle", "more cycles")} not shown.`) : null];
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
  let links, loaded;
  try {
    loaded = await loadLinks(range, { signal: ctx.signal });
    links = loaded.links;
  } catch (err) {
    if (err.name === "AbortError") return;
    status.className = "error";
    status.setAttribute("role", "alert");
    status.textContent = err instanceof ApiError ? `Could not load the service links: ${err.message}` : String(err);
    return;
  }
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
  const graph = drawGraph(links, range);
  if (!graph.labelsAtRest) status.textContent += " Hover over or focus a service to see the call counts on its links.";
  main.append(el("div", { className: "graph-view" }, graph.root),
    ...(loaded.cycles.length ? cycleList(loaded.cycles, loaded.cyclesTruncated).filter(Boolean) : []),
    el("h2", { id: "graph-links" }, "Links"), linkTable(links, range, loaded.withLatency),
    loaded.withLatency ? el("p", { className: "muted graph-note" }, "Latency: the client side's duration of each call, " +
      "from the calls counted at ingest (before sampling).")
      : el("p", { className: "muted graph-note" }, "Latency per link needs the metrics store (analytics.enabled); " +
      "these links come from the stored spans."));
}
