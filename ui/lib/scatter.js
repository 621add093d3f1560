// A scatter plot of traces: x = start time, y = duration, drawn as SVG by hand.  Points with
// errors use the error colour; hovering or focusing a point shows what it is; a click or Enter
// opens it.  The plot is one tab stop: the arrow keys (and Home/End) move between the points in
// time order.  The plot redraws itself when its box changes width.
import { duration, timestamp } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { top: 10, right: 18, bottom: 26, left: 64 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

// ---------------------------------------------------------------------------- ticks

const SECOND = 1e3, MINUTE = 6e4, HOUR = 3.6e6, DAY = 8.64e7; // ms
const TIME_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500,
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Wall-clock ticks (ms since the epoch) between min and max, aligned to the local clock. */
export function timeTicks(minMs, maxMs, target = 6) {
  const span = Math.max(maxMs - minMs, 1);
  const step = TIME_STEPS.find((s) => span / s <= target) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = new Date(minMs).getTimezoneOffset() * MINUTE; // local = utc - offset
  const ticks = [];
  for (let local = Math.ceil((minMs - offset) / step) * step; local + offset <= maxMs; local += step) {
    ticks.push(local + offset);
  }
  const label = (ms) => {
    const d = new Date(ms);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (step < SECOND) return `${hm}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    if (step < MINUTE) return `${hm}:${pad(d.getSeconds())}`;
    if (step < 6 * HOUR && span < DAY) return hm;
    if (step < DAY) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  };
  return ticks.map((t) => ({ value: t, label: label(t) }));
}

/** Round ticks (1, 2, 5 × 10ⁿ) from 0 up to at least max. */
export function niceTicks(max, target = 4) {
  if (!(max > 0)) max = 1;
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

// ---------------------------------------------------------------------------- the plot

/**
 * Build a scatter plot.  `points`: [{id, x (start, µs), y (duration, µs), error (bool),
 * label (the first line of the hover card)}]; `onOpen(id)` is called on click or Enter.
 * Returns {element, destroy}.
 */
export function scatterPlot(points, { onOpen, height = 220, ariaLabel = "Traces: duration over start time" } = {}) {
  const figure = document.createElement("figure");
  figure.className = "scatter";
  const box = document.createElement("div");
  box.className = "scatter-box";
  const tip = document.createElement("div");
  tip.className = "scatter-tip";
  tip.setAttribute("role", "tooltip");
  tip.id = `scatter-tip-${Math.random().toString(36).slice(2)}`;
  tip.hidden = true;
  box.append(tip);
  figure.append(box);

  let width = 0;
  let plot = null;

  function show(point, circle) {
    tip.replaceChildren();
    const head = document.createElement("strong");
    head.textContent = point.label;
    const lines = [`Duration ${duration(point.y)}`, `Start ${timestamp(point.x)}`];
    if (point.error) lines.push("Has errors");
    tip.append(head, ...lines.map((t) => Object.assign(document.createElement("div"), { textContent: t })));
    tip.hidden = false;
    const cx = Number(circle.getAttribute("cx")), cy = Number(circle.getAttribute("cy"));
    const left = Math.min(Math.max(cx + 10, 0), Math.max(width - tip.offsetWidth - 4, 0));
    const top = cy > tip.offsetHeight + 12 ? cy - tip.offsetHeight - 10 : cy + 12;
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
    circle.setAttribute("aria-describedby", tip.id);
  }
  function hide() { tip.hidden = true; }

  function draw() {
    width = box.clientWidth;
    if (!width) return;
    if (plot) plot.remove();
    const innerW = Math.max(width - MARGIN.left - MARGIN.right, 10);
    const innerH = height - MARGIN.top - MARGIN.bottom;

    let xMin = Infinity, xMax = -Infinity, yMax = 0;
    for (const p of points) {
      xMin = Math.min(xMin, p.x); xMax = Math.max(xMax, p.x); yMax = Math.max(yMax, p.y);
    }
    if (!points.length) { xMin = Date.now() * 1000 - 3.6e9; xMax = Date.now() * 1000; }
    if (xMax - xMin < 1e3) { xMin -= 1e6; xMax += 1e6; } // one instant: a two-second window
    else { const padX = (xMax - xMin) * 0.03; xMin -= padX; xMax += padX; }
    const yTicks = niceTicks(yMax * 1.05 || 1);
    const yTop = yTicks[yTicks.length - 1];
    const sx = (x) => MARGIN.left + ((x - xMin) / (xMax - xMin)) * innerW;
    const sy = (y) => MARGIN.top + innerH - (y / yTop) * innerH;

    const axes = svg("g", { class: "axes", "aria-hidden": "true" });
    for (const v of yTicks) {
      const y = sy(v);
      axes.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + innerW, y1: y, y2: y, class: "grid" }));
      axes.append(svg("text", { x: MARGIN.left - 6, y: y + 4, "text-anchor": "end" }, v === 0 ? "0" : duration(v)));
    }
    const xTicks = timeTicks(xMin / 1000, xMax / 1000, Math.max(2, Math.floor(innerW / 110)));
    const baseY = MARGIN.top + innerH;
    axes.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + innerW, y1: baseY, y2: baseY, class: "axis" }));
    for (const t of xTicks) {
      const x = sx(t.value * 1000);
      axes.append(svg("line", { x1: x, x2: x, y1: baseY, y2: baseY + 4, class: "axis" }));
      axes.append(svg("text", { x, y: baseY + 17, "text-anchor": "middle" }, t.label));
    }

    const dots = svg("g", { class: "points" });
    // errors last so they are drawn on top of the others
    const ordered = [...points].sort((a, b) => Number(a.error) - Number(b.error));
    // one tab stop for the whole plot; the arrow keys move between points in time order
    const byTime = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
    const circles = new Map();
    const move = (p, delta, e) => {
      const i = byTime.indexOf(p);
      const j = delta === -Infinity ? 0 : delta === Infinity ? byTime.length - 1 : i + delta;
      if (j < 0 || j >= byTime.length) return;
      e.preventDefault();
      circles.get(p).setAttribute("tabindex", -1);
      const next = circles.get(byTime[j]);
      next.setAttribute("tabindex", 0);
      next.focus();
    };
    const KEYS = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: -Infinity, End: Infinity };
    for (const p of ordered) {
      const c = svg("circle", {
        cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 5,
        class: p.error ? "point error" : "point", tabindex: p === byTime[0] ? 0 : -1, role: "link",
        "aria-label": `${p.label}, ${duration(p.y)}, started ${timestamp(p.x)}${p.error ? ", has errors" : ""}`,
        "data-trace-id": p.id,
      });
      c.addEventListener("mouseenter", () => show(p, c));
      c.addEventListener("focus", () => show(p, c));
      c.addEventListener("mouseleave", hide);
      c.addEventListener("blur", hide);
      c.addEventListener("click", () => onOpen && onOpen(p.id));
      c.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); if (onOpen) onOpen(p.id); }
        else if (e.key in KEYS) move(p, KEYS[e.key], e);
      });
      circles.set(p, c);
      dots.append(c);
    }
    plot = svg("svg", { width, height, role: "group", "aria-label": ariaLabel }, axes, dots);
    box.prepend(plot);
  }

  const observer = new ResizeObserver(() => { if (box.clientWidth !== width) draw(); });
  observer.observe(box);
  return { element: figure, destroy: () => observer.disconnect() };
}
