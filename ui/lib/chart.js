// A small SVG line chart of evenly spaced time steps: one or more series of numbers (null where
// a step has no value: the line breaks there), a y axis from 0 with round ticks, time labels
// on the x axis, a legend, and a readout of the step under the pointer or the keyboard cursor.
//
//   lineChart({label, times /* step starts, ms */, stepMs, series: [{name, values, color,
//     dashed}], format /* value → text */, describe /* i → readout text */, hasData /* i →
//     bool */, onSelect /* (i, event) */, testid})  →  {element, setCursor(i)}
//
// The chart is one focusable group: ←/→ move the cursor step by step (Home/End to the ends),
// Enter selects the step (as a click on it does).
import { el } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 560, H = 190, M = { left: 58, right: 12, top: 10, bottom: 26 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

/** Round tick values from 0 to at least `max`: about `count` of them, at 1, 2 or 5 × 10^k. */
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v < max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

const pad = (n) => String(n).padStart(2, "0");

/** A time label: the clock for ranges within a day, the date too for longer ones. */
function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs <= 2 * 86400e3) return spanMs < 600e3 ? `${clock}:${pad(d.getSeconds())}` : clock;
  return `${d.getMonth() + 1}/${d.getDate()}${spanMs <= 8 * 86400e3 ? ` ${clock}` : ""}`;
}

export function lineChart({ label, times, stepMs, series, format = String, describe, hasData, onSelect, testid }) {
  const n = times.length;
  const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v != null && Number.isFinite(v))));
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || 1;
  const bandW = pw / Math.max(n, 1);
  const x = (i) => M.left + bandW * (i + 0.5);
  const y = (v) => M.top + ph - (v / top) * ph;

  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart-svg",
    tabindex: 0, role: "group", "aria-label": `${label}. Left and right arrows move between steps, Enter searches the step's traces.` });
  const grid = svg("g", { class: "chart-grid" });
  for (const t of ticks) {
    grid.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t) }),
      svg("text", { x: M.left - 6, y: y(t) + 4, "text-anchor": "end", class: "chart-tick" }, format(t)));
  }
  // x labels: at most six, on round local times (every 5 minutes, hour, day…) where the steps
  // allow, else at steps spread evenly.
  const spanMs = n ? times[n - 1] - times[0] + stepMs : 0;
  const round = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * 60e3)
    .find((iv) => iv >= stepMs && iv % stepMs === 0 && spanMs / iv <= 6);
  const local = (t) => t - new Date(t).getTimezoneOffset() * 60e3;
  const labelled = round ? times.map((t, i) => (local(t) % round === 0 ? i : -1)).filter((i) => i >= 0) : [];
  if (labelled.length < 2) {
    labelled.length = 0;
    for (let i = 0, every = Math.max(1, Math.ceil(n / 5)); i < n; i += every) labelled.push(i);
  }
  for (const i of labelled) {
    grid.append(svg("text", { x: x(i), y: H - 8, "text-anchor": "middle", class: "chart-tick" }, timeLabel(times[i], spanMs)));
  }
  grid.append(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + ph, class: "chart-axis" }),
    svg("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph, class: "chart-axis" }));
  root.append(grid);

  const lines = svg("g", { class: "chart-lines" });
  for (const s of series) {
    let d = "", open = false;
    const dots = svg("g", { class: "chart-dots" });
    s.values.forEach((v, i) => {
      if (v == null || !Number.isFinite(v)) { open = false; return; }
      d += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      const alone = (i === 0 || s.values[i - 1] == null) && (i === n - 1 || s.values[i + 1] == null);
      if (alone || n <= 90) dots.append(svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: alone ? 2.6 : 1.8, fill: s.color }));
      open = true;
    });
    lines.append(svg("g", { class: `chart-series${s.dashed ? " dashed" : ""}`, "data-series": s.name },
      svg("path", { d, stroke: s.color }), dots));
  }
  root.append(lines);

  const guide = svg("line", { class: "chart-guide", y1: M.top, y2: M.top + ph, visibility: "hidden" });
  root.append(guide);
  const hits = svg("g", { class: "chart-hits" });
  for (let i = 0; i < n; i++) {
    const data = hasData ? hasData(i) : true;
    const r = svg("rect", { x: M.left + bandW * i, y: M.top, width: Math.max(bandW, 1), height: ph,
      class: `chart-step${data ? " has-data" : ""}`, "data-testid": "chart-step", "data-index": i,
      "data-t": Math.round(times[i] / 1000) });
    r.addEventListener("mouseenter", () => setCursor(i));
    r.addEventListener("click", (e) => { setCursor(i); if (onSelect) onSelect(i, e); });
    hits.append(r);
  }
  root.append(hits);

  const readout = el("p", { className: "chart-readout muted", "data-testid": "chart-readout" }, "\u00a0");
  let cursor = -1;
  function setCursor(i) {
    cursor = Math.max(0, Math.min(n - 1, i));
    if (n === 0) return;
    guide.setAttribute("x1", x(cursor));
    guide.setAttribute("x2", x(cursor));
    guide.setAttribute("visibility", "visible");
    readout.textContent = describe ? describe(cursor) : String(cursor);
  }
  root.addEventListener("mouseleave", () => {
    if (document.activeElement !== root) { guide.setAttribute("visibility", "hidden"); readout.textContent = "\u00a0"; }
  });
  root.addEventListener("focus", () => {
    if (cursor < 0) {
      let last = n - 1;
      if (hasData) while (last > 0 && !hasData(last)) last--;
      setCursor(last);
    } else setCursor(cursor);
  });
  root.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
    if (e.key in moves) {
      e.preventDefault();
      const d = moves[e.key];
      setCursor(Number.isFinite(d) ? cursor + d : d < 0 ? 0 : n - 1);
    } else if (e.key === "Enter" && cursor >= 0 && onSelect) {
      e.preventDefault();
      onSelect(cursor, e);
    }
  });

  const legend = el("ul", { className: "chart-legend" }, series.map((s) =>
    el("li", null, el("span", { className: `chart-key${s.dashed ? " dashed" : ""}`, style: { borderColor: s.color } }), s.name)));
  const element = el("figure", { className: "chart", "data-testid": testid },
    el("figcaption", null, label), legend, root, readout);
  return { element, setCursor };
}
