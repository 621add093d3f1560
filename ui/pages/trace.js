// The trace page, /trace/{id}[?span=<spanId>]: a header naming the services and, for a failed
// trace, the service that failed first; a mini-map and time ruler; the span tree as a
// virtualised waterfall (only the rows on screen exist in the DOM, so a 10,000-span trace
// stays fast); a detail panel; search, statistics, slowest spans and an OTLP download.
// Links to other tools (rendered by the server from its configured templates) and the trace's
// incidents load after the waterfall and appear in the header and the span panel.
// `renderTrace` is shared with the open-file page.
import * as api from "../lib/api.js";
import { duration, timestamp, serviceColor, el, stylesheet } from "../lib/format.js";
import { parseOTLP, traceStats, toOTLP, firstFailure } from "../lib/model.js";
import { replaceParams } from "../lib/nav.js";

const ROW_H = 24;          // px: every waterfall row has this height (virtualisation relies on it)
const OVERSCAN = 8;        // rows rendered above and below the visible ones
const INDENT = 14;         // px per depth level
const MAX_INDENT_LEVELS = 30;

export async function render(main, ctx) {
  const id = ctx.match[0];
  await stylesheet("/ui/pages/trace.css");
  if (ctx.signal.aborted) return;
  main.append(el("p", { className: "loading", role: "status" }, `Loading trace ${id}…`));
  let doc;
  try {
    doc = await api.trace(id, { signal: ctx.signal });
  } catch (err) {
    if (err.name === "AbortError") return undefined;
    main.replaceChildren(el("h1", null, "Trace ", el("span", { className: "mono" }, id)),
      el("p", { className: "error", role: "alert" },
        err.status === 404 ? `Trace ${id} was not found. It may have expired or the ID may be wrong.` : err.message));
    return undefined;
  }
  if (ctx.signal.aborted) return undefined;
  let traces;
  try {
    traces = parseOTLP(doc);
  } catch (err) {
    main.replaceChildren(el("p", { className: "error", role: "alert" }, `The server's answer could not be read: ${err.message}`));
    return undefined;
  }
  const want = id.toLowerCase().replace(/^0+/, "");
  const trace = traces.find((t) => t.traceId.replace(/^0+/, "") === want) || traces[0];
  main.replaceChildren();
  return renderTrace(main, trace, { span: ctx.params.get("span"), updateUrl: true, signal: ctx.signal, links: true });
}

/** Render one Trace (lib/model.js) into `main`.  Options: span (ID to select), updateUrl
 *  (write the selection into ?span=), signal, links (load the stored trace's related links and
 *  incidents from /api/v1/traces/{id}/links once the waterfall is drawn).  Returns a cleanup
 *  function. */
export function renderTrace(main, trace, { span: initialSpan = null, updateUrl = false, signal = null, links = false } = {}) {
  stylesheet("/ui/pages/trace.css");
  const cleanups = [];
  const root = trace.roots.find((r) => !r.missingParent) || trace.roots[0];
  const failed = firstFailure(trace);

  // ------------------------------------------------------------------ state
  const collapsed = new Set();
  let visible = [];              // spans shown, in tree order
  let indexOf = new Map();       // span -> index in visible
  let selected = null;           // span in the detail panel
  let cursor = null;             // keyboard focus row
  let showCritical = true;
  let view = [0, Math.max(trace.duration, 1)]; // µs relative to trace.start
  let matches = [];              // spans matching the search
  let matchSet = new Set();
  let matchIndex = -1;
  let query = "";

  const descendants = new Map();
  for (let i = trace.spans.length - 1; i >= 0; i--) {
    const s = trace.spans[i];
    let n = 0;
    for (const c of s.children) n += 1 + descendants.get(c);
    descendants.set(s, n);
  }
  const critSegs = new Map();
  for (const seg of trace.criticalPath || []) {
    let list = critSegs.get(seg.span);
    if (!list) critSegs.set(seg.span, (list = []));
    list.push(seg);
  }

  // ------------------------------------------------------------------ related links (filled later)
  let correlation = null;            // the /api/v1/traces/{id}/links answer, once loaded
  const spanLinksFetched = new Map(); // spanId -> links, asked one span at a time (truncated answers)
  let spanLinksBox = null;           // the span panel's related-links section, while open
  const related = el("div", { className: "tr-related", "data-testid": "trace-related", hidden: true });

  // ------------------------------------------------------------------ header
  const maxDepth = trace.spans.reduce((m, s) => Math.max(m, s.depth), 0);
  const title = root ? `${root.service}: ${root.name || "(no name)"}` : "Trace";
  const serviceList = el("ul", { className: "tr-services", "aria-label": "Services" },
    trace.services.map((s) => el("li", null,
      el("button", {
        type: "button", className: "tr-service", title: `Search the trace for ${s.name}`,
        onclick: () => { searchInput.value = s.name; runSearch(); },
      }, el("span", { className: "swatch", style: { background: serviceColor(s.name) } }), s.name,
      el("span", { className: "muted" }, ` ${s.spanCount}`),
      s.errorCount ? el("span", { className: "error" }, ` · ${s.errorCount} error${s.errorCount > 1 ? "s" : ""}`) : null))));
  const header = el("header", { className: "tr-header" },
    el("h1", null, title, " ", el("span", { className: "mono muted tr-id" }, trace.traceId)),
    el("p", { className: "tr-summary" },
      el("span", null, `Started ${timestamp(trace.start)}`), " · ",
      el("span", { "data-testid": "trace-duration" }, `duration ${duration(trace.duration)}`), " · ",
      el("span", { "data-testid": "span-count" }, `${trace.spans.length} span${trace.spans.length === 1 ? "" : "s"}`), " · ",
      el("span", null, `${trace.services.length} service${trace.services.length === 1 ? "" : "s"}`), " · ",
      el("span", null, `depth ${maxDepth + 1}`),
      trace.errorCount ? [" · ", el("span", { className: "error" }, `${trace.errorCount} error span${trace.errorCount > 1 ? "s" : ""}`)] : null),
    serviceList,
    failed ? el("p", { className: "tr-failed", role: "note", "data-testid": "failed-first" },
      el("span", { className: "tr-err-icon", "aria-hidden": "true" }, "✖"), " Failed first: ",
      el("strong", null, failed.service), " — ", failed.name || "(no name)",
      ` at +${duration(failed.start - trace.start)}`, " ",
      el("button", { type: "button", className: "linklike", onclick: () => select(failed, { scroll: true }) }, "show span")) : null,
    related,
  );
  const warnings = trace.warnings.length
    ? el("div", { className: "tr-warnings", role: "alert", "data-testid": "trace-warnings" },
      el("strong", null, "Warning: "), trace.warnings.length === 1 ? trace.warnings[0]
        : el("ul", null, trace.warnings.map((w) => el("li", null, w))))
    : null;

  // ------------------------------------------------------------------ toolbar
  const searchInput = el("input", {
    type: "search", placeholder: "Find in trace (name, service, attribute)", "aria-label": "Find in trace",
    className: "tr-search", autocomplete: "off", spellcheck: "false",
  });
  const searchCount = el("span", { className: "tr-search-count muted", "aria-live": "polite", "data-testid": "search-count" });
  const prevBtn = el("button", { type: "button", "aria-label": "Previous match", title: "Previous match (Shift+Enter)", onclick: () => stepMatch(-1) }, "↑");
  const nextBtn = el("button", { type: "button", "aria-label": "Next match", title: "Next match (Enter)", onclick: () => stepMatch(1) }, "↓");
  const critBox = el("input", { type: "checkbox", checked: true, id: "tr-crit" });
  const resetZoomBtn = el("button", { type: "button", hidden: true, onclick: () => setView(0, trace.duration) }, "Reset zoom");
  const downloadBtn = el("button", { type: "button", onclick: download }, "Download OTLP JSON");
  const toolbar = el("div", { className: "tr-toolbar" },
    el("div", { className: "tr-find" }, searchInput, prevBtn, nextBtn, searchCount),
    el("label", { className: "tr-check", htmlFor: "tr-crit" }, critBox, " Critical path"),
    el("button", { type: "button", onclick: () => { collapsed.clear(); refresh(); } }, "Expand all"),
    el("button", { type: "button", onclick: () => { for (const s of trace.spans) if (s.children.length && s.depth > 0) collapsed.add(s); refresh(); } }, "Collapse all"),
    resetZoomBtn, downloadBtn);

  // ------------------------------------------------------------------ tabs
  const tabs = [["timeline", "Timeline"], ["stats", "Statistics"], ["slowest", "Slowest spans"]];
  const tabButtons = {};
  const panels = {};
  const tabList = el("div", { className: "tr-tabs", role: "tablist", "aria-label": "Trace views" },
    tabs.map(([key, label]) => (tabButtons[key] = el("button", {
      type: "button", role: "tab", id: `tr-tab-${key}`, "aria-controls": `tr-panel-${key}`,
      "aria-selected": key === "timeline" ? "true" : "false", tabindex: key === "timeline" ? "0" : "-1",
      onclick: () => showTab(key),
      onkeydown: (e) => {
        const keys = tabs.map((t) => t[0]);
        const i = keys.indexOf(key);
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          const k = keys[(i + (e.key === "ArrowRight" ? 1 : keys.length - 1)) % keys.length];
          showTab(k); tabButtons[k].focus(); e.preventDefault();
        }
      },
    }, label))));

  // ------------------------------------------------------------------ timeline
  const minimapCanvas = el("canvas", { className: "tr-minimap-canvas", "aria-hidden": "true" });
  const minimapWindow = el("div", { className: "tr-minimap-window" });
  const minimapSel = el("div", { className: "tr-drag-sel", hidden: true });
  const minimap = el("div", {
    className: "tr-minimap", "data-testid": "minimap", role: "img",
    "aria-label": "Overview of the whole trace; drag to zoom into a time range, double-click to reset",
    title: "Drag to zoom into a range; click to move the zoomed window; double-click to reset",
  }, minimapCanvas, minimapWindow, minimapSel);
  const ruler = el("div", { className: "tr-ruler", "data-testid": "ruler", title: "Drag to zoom into a range" });
  const rulerSel = el("div", { className: "tr-drag-sel", hidden: true });
  const timeHead = el("div", { className: "tr-timehead" },
    el("div", { className: "tr-namehead" }, el("span", { className: "muted" }, "Service: operation")),
    el("div", { className: "tr-timecol" }, minimap, el("div", { className: "tr-ruler-wrap" }, ruler, rulerSel)));
  const rowsLayer = el("div", { className: "wf-rows" });
  const spacer = el("div", { className: "wf-spacer" }, rowsLayer);
  const scroller = el("div", {
    className: "wf-scroll", role: "tree", tabindex: "0", "aria-label": "Span tree (arrow keys move, Left/Right collapse/expand, Enter opens details)",
    "data-testid": "waterfall",
  }, spacer);
  const detail = el("aside", { className: "tr-detail", "aria-label": "Span details", hidden: true, "data-testid": "span-detail" });
  panels.timeline = el("div", { className: "tr-panel tr-timeline", role: "tabpanel", id: "tr-panel-timeline", "aria-labelledby": "tr-tab-timeline" },
    el("div", { className: "tr-wf" }, timeHead, scroller), detail);
  panels.stats = el("div", { className: "tr-panel", role: "tabpanel", id: "tr-panel-stats", "aria-labelledby": "tr-tab-stats", hidden: true });
  panels.slowest = el("div", { className: "tr-panel", role: "tabpanel", id: "tr-panel-slowest", "aria-labelledby": "tr-tab-slowest", hidden: true });

  const page = el("section", { className: "trace-page", "data-trace-id": trace.traceId },
    header, warnings, toolbar, tabList, panels.timeline, panels.stats, panels.slowest);
  main.append(page);

  // ------------------------------------------------------------------ visible rows
  function computeVisible() {
    visible = [];
    let skipDepth = Infinity;
    for (const s of trace.spans) {
      if (s.depth > skipDepth) continue;
      skipDepth = Infinity;
      visible.push(s);
      if (collapsed.has(s) && s.children.length) skipDepth = s.depth;
    }
    indexOf = new Map();
    visible.forEach((s, i) => indexOf.set(s, i));
    spacer.style.height = `${visible.length * ROW_H}px`;
  }

  const pct = (us) => ((us - trace.start - view[0]) / (view[1] - view[0])) * 100;
  const rowId = (s) => `span-row-${s.spanId}`;

  function highlight(text) {
    if (!query) return text;
    const i = text.toLowerCase().indexOf(query);
    if (i < 0) return text;
    return [text.slice(0, i), el("mark", null, text.slice(i, i + query.length)), text.slice(i + query.length)];
  }

  function rowContent(s) {
    const hasKids = s.children.length > 0;
    const isCollapsed = collapsed.has(s);
    const color = serviceColor(s.service);
    const level = Math.min(s.depth, MAX_INDENT_LEVELS);
    const name = el("div", { className: "wf-name", style: { paddingLeft: `${4 + level * INDENT}px` } },
      hasKids ? el("span", {
        className: "wf-toggle", "data-testid": "span-toggle", title: isCollapsed ? "Expand" : "Collapse",
      }, isCollapsed ? "▸" : "▾") : el("span", { className: "wf-toggle wf-leaf" }),
      s.depth > MAX_INDENT_LEVELS ? el("span", { className: "muted wf-depth" }, `${s.depth}›`) : null,
      el("span", { className: "swatch", style: { background: color } }),
      s.error ? el("span", { className: "wf-err-icon", title: "Error" }, "✖", el("span", { className: "sr-only" }, "error: ")) : null,
      el("span", { className: "wf-svc" }, matchSet.has(s) ? highlight(s.service) : s.service), " ",
      el("span", { className: "wf-op" }, matchSet.has(s) ? highlight(s.name || "(no name)") : s.name || "(no name)"),
      s.missingParent ? el("span", { className: "badge warning wf-badge", title: `Parent span ${s.parentSpanId} is not in this trace` }, "parent missing") : null,
      isCollapsed ? el("span", { className: "badge wf-badge", title: "Hidden descendants" }, `+${descendants.get(s)}`) : null);

    const left = pct(s.start), right = pct(s.end);
    const bar = el("div", {
      className: "wf-bar", style: { left: `${left}%`, width: `${Math.max(right - left, 0)}%`, background: s.error ? "var(--error)" : color },
    });
    const bars = el("div", { className: "wf-bars" }, bar);
    if (showCritical && s.critical) {
      for (const seg of critSegs.get(s) || []) {
        const a = pct(seg.start), b = pct(seg.end);
        bars.append(el("div", { className: "wf-crit", style: { left: `${a}%`, width: `${Math.max(b - a, 0)}%` } }));
      }
    }
    let ev = 0;
    for (const e of s.events) {
      if (ev++ >= 20) break;
      bars.append(el("div", { className: "wf-event", style: { left: `${pct(e.time)}%` }, title: e.name }));
    }
    const labelText = `${duration(s.duration)}${s.error ? " · error" : ""}`;
    const label = el("span", { className: "wf-label" }, labelText);
    if (right < 0 || left > 100) {
      // Outside the zoomed range: say where it is, at the edge it lies beyond.
      label.textContent = `${right < 0 ? "◂ " : ""}${labelText} at +${duration(s.start - trace.start)}${left > 100 ? " ▸" : ""}`;
      label.classList.add("wf-label-out");
      if (right < 0) label.style.left = "0"; else { label.classList.add("wf-label-left"); label.style.right = "0"; }
    } else if (right <= 78) label.style.left = `${Math.max(right, 0)}%`;
    else if (left >= 14) { label.classList.add("wf-label-left"); label.style.right = `${100 - left}%`; }
    else { label.classList.add("wf-label-in"); label.style.left = `${Math.max(left, 0)}%`; }
    bars.append(label);
    if (s.skew > 0 && s.parent) {
      const before = s.start < s.parent.start;
      const text = before ? `skew: starts ${duration(s.skew)} before its parent` : `skew: starts ${duration(s.skew)} after its parent ended`;
      bars.append(el("span", { className: "wf-skew", title: `${text} (clock skew?)`, "data-testid": "skew-marker",
        style: before ? { left: `${Math.max(pct(s.parent.start), 0)}%` } : { left: `${Math.max(pct(s.parent.end), 0)}%` } }, `⚠ ${text}`));
    }
    return [name, bars];
  }

  // Rows on screen keep their element while they stay on screen (a click that re-renders
  // must not lose its target); only their state and, when it changed, their content update.
  let rowCache = new Map(); // span -> element
  function updateRow(row, s, i) {
    const cls = ["wf-row"];
    if (s.error) cls.push("is-error");
    if (s === selected) cls.push("is-selected");
    if (s === cursor) cls.push("is-cursor");
    if (matchSet.has(s)) cls.push("is-match");
    if (showCritical && s.critical) cls.push("is-critical");
    const className = cls.join(" ");
    if (row.className !== className) row.className = className;
    row.style.top = `${i * ROW_H}px`;
    row.setAttribute("aria-selected", s === selected ? "true" : "false");
    if (s.children.length) row.setAttribute("aria-expanded", collapsed.has(s) ? "false" : "true");
    const key = `${collapsed.has(s)}|${matchSet.has(s) ? query : ""}|${showCritical}|${view[0]}|${view[1]}`;
    if (row._key !== key) { row._key = key; row.replaceChildren(...rowContent(s)); }
  }
  function createRow(s) {
    return el("div", {
      role: "treeitem", id: rowId(s), "aria-level": String(s.depth + 1),
      "data-testid": "span-row", "data-span-id": s.spanId,
      "data-critical": s.critical ? "true" : null, "data-error": s.error ? "true" : null,
    });
  }

  let raf = 0;
  function renderRows() {
    raf = 0;
    const top = scroller.scrollTop, h = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
    const next = new Map();
    for (let i = first; i < last; i++) {
      const s = visible[i];
      let row = rowCache.get(s);
      if (!row) { row = createRow(s); rowsLayer.append(row); }
      rowCache.delete(s);
      updateRow(row, s, i);
      next.set(s, row);
    }
    for (const row of rowCache.values()) row.remove();
    rowCache = next;
    if (cursor && indexOf.has(cursor)) scroller.setAttribute("aria-activedescendant", rowId(cursor));
    else scroller.removeAttribute("aria-activedescendant");
  }
  rowsLayer.addEventListener("click", (e) => {
    const row = e.target.closest(".wf-row");
    if (!row) return;
    const s = trace.byId.get(row.dataset.spanId);
    if (!s) return;
    if (e.target.closest(".wf-toggle:not(.wf-leaf)")) { toggle(s); return; }
    cursor = s;
    select(s);
  });
  function schedule() { if (!raf) raf = requestAnimationFrame(renderRows); }
  scroller.addEventListener("scroll", schedule, { passive: true });

  function refresh() { computeVisible(); renderRows(); drawMinimapWindow(); }

  function toggle(s, open) {
    if (!s.children.length) return;
    const isOpen = !collapsed.has(s);
    if (open === undefined) open = !isOpen;
    if (open) collapsed.delete(s); else collapsed.add(s);
    refresh();
  }

  function reveal(s) {
    for (let p = s.parent; p; p = p.parent) collapsed.delete(p);
  }

  function scrollToSpan(s, center) {
    const i = indexOf.get(s);
    if (i === undefined) return;
    const top = i * ROW_H, h = scroller.clientHeight || 600;
    if (center) scroller.scrollTop = Math.max(0, top - h / 2 + ROW_H);
    else if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW_H > scroller.scrollTop + h) scroller.scrollTop = top + ROW_H - h;
  }

  function select(s, { scroll = false, focus = false } = {}) {
    selected = s;
    if (s) {
      cursor = s;
      reveal(s);
      computeVisible();
      if (scroll) {
        if (!panels.timeline.hidden) scrollToSpan(s, true);
        else showTab("timeline", () => scrollToSpan(s, true));
      }
    }
    renderDetail();
    renderRows();
    if (updateUrl) {
      const params = new URLSearchParams(location.search);
      if (s) params.set("span", s.spanId); else params.delete("span");
      replaceParams(params);
    }
    if (focus) scroller.focus();
  }

  // ------------------------------------------------------------------ keyboard
  scroller.addEventListener("keydown", (e) => {
    if (!visible.length) return;
    let i = cursor && indexOf.has(cursor) ? indexOf.get(cursor) : -1;
    const move = (j) => {
      j = Math.max(0, Math.min(visible.length - 1, j));
      cursor = visible[j]; scrollToSpan(cursor, false); renderRows();
    };
    const pageRows = Math.max(1, Math.floor((scroller.clientHeight || 600) / ROW_H) - 1);
    switch (e.key) {
      case "ArrowDown": move(i + 1); break;
      case "ArrowUp": move(i < 0 ? 0 : i - 1); break;
      case "PageDown": move(i + pageRows); break;
      case "PageUp": move(i - pageRows); break;
      case "Home": move(0); break;
      case "End": move(visible.length - 1); break;
      case "ArrowRight":
        if (!cursor) { move(0); break; }
        if (cursor.children.length && collapsed.has(cursor)) toggle(cursor, true);
        else if (cursor.children.length) move(i + 1);
        break;
      case "ArrowLeft":
        if (!cursor) { move(0); break; }
        if (cursor.children.length && !collapsed.has(cursor)) toggle(cursor, false);
        else if (cursor.parent) move(indexOf.get(cursor.parent));
        break;
      case "Enter": case " ":
        if (cursor) select(cursor);
        break;
      case "Escape":
        if (selected) select(null);
        break;
      default: return;
    }
    e.preventDefault();
  });
  scroller.addEventListener("focus", () => { if (!cursor && visible.length) { cursor = selected || visible[0]; renderRows(); } });

  // ------------------------------------------------------------------ ruler, zoom, mini-map
  function niceStep(range, target) {
    const raw = range / target;
    const p = 10 ** Math.floor(Math.log10(raw || 1));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }
  function renderRuler() {
    const [a, b] = view;
    const step = niceStep(b - a, 6);
    const ticks = [];
    for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) {
      const x = ((t - a) / (b - a)) * 100;
      ticks.push(el("span", { className: "tr-tick", style: { left: `${x}%` } }, el("span", { className: x > 94 ? "tr-tick-label right" : "tr-tick-label" }, duration(t))));
    }
    ruler.replaceChildren(...ticks);
  }
  function setView(a, b) {
    const total = Math.max(trace.duration, 1);
    a = Math.max(0, Math.min(a, total)); b = Math.max(0, Math.min(b, total));
    if (b - a < total * 1e-6 || b - a <= 0) return;
    view = [a, b];
    resetZoomBtn.hidden = a <= 0 && b >= total;
    renderRuler(); renderRows(); drawMinimapWindow();
  }

  function drawMinimap() {
    const w = minimap.clientWidth, h = minimap.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    minimapCanvas.width = Math.round(w * dpr); minimapCanvas.height = Math.round(h * dpr);
    minimapCanvas.style.width = `${w}px`; minimapCanvas.style.height = `${h}px`;
    const g = minimapCanvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const n = trace.spans.length, total = Math.max(trace.duration, 1);
    const rowH = h / n;
    const colors = new Map();
    trace.spans.forEach((s, i) => {
      let c = s.error ? "#c62828" : colors.get(s.service);
      if (!c) colors.set(s.service, (c = serviceColor(s.service)));
      g.fillStyle = c;
      const x = ((s.start - trace.start) / total) * w;
      g.fillRect(x, i * rowH, Math.max(1, (s.duration / total) * w), Math.max(1, rowH));
    });
  }
  function drawMinimapWindow() {
    const total = Math.max(trace.duration, 1);
    minimapWindow.style.left = `${(view[0] / total) * 100}%`;
    minimapWindow.style.width = `${((view[1] - view[0]) / total) * 100}%`;
    minimapWindow.hidden = view[0] <= 0 && view[1] >= total;
  }

  /** Drag over `area` (whose width maps to the range `rangeOf()`) to zoom to the dragged range. */
  function dragZoom(area, sel, rangeOf, onClick) {
    let x0 = null, rect = null;
    area.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      rect = area.getBoundingClientRect(); x0 = e.clientX - rect.left;
      area.setPointerCapture(e.pointerId); e.preventDefault();
    });
    area.addEventListener("pointermove", (e) => {
      if (x0 === null) return;
      const x = Math.max(0, Math.min(rect.width, e.clientX - rect.left));
      sel.hidden = Math.abs(x - x0) < 3;
      sel.style.left = `${Math.min(x, x0)}px`; sel.style.width = `${Math.abs(x - x0)}px`;
    });
    const finish = (e) => {
      if (x0 === null) return;
      const x = Math.max(0, Math.min(rect.width, e.clientX - rect.left));
      sel.hidden = true;
      const [a, b] = rangeOf();
      const at = (px) => a + (px / rect.width) * (b - a);
      if (Math.abs(x - x0) >= 3) setView(at(Math.min(x, x0)), at(Math.max(x, x0)));
      else if (onClick) onClick(at(x));
      x0 = null;
    };
    area.addEventListener("pointerup", finish);
    area.addEventListener("pointercancel", () => { x0 = null; sel.hidden = true; });
  }
  dragZoom(minimap, minimapSel, () => [0, Math.max(trace.duration, 1)], (t) => {
    const half = (view[1] - view[0]) / 2;
    const total = Math.max(trace.duration, 1);
    if (half * 2 >= total) return;
    const a = Math.max(0, Math.min(total - 2 * half, t - half));
    setView(a, a + 2 * half);
  });
  minimap.addEventListener("dblclick", () => setView(0, trace.duration));
  dragZoom(ruler.parentElement, rulerSel, () => view, null);

  const ro = new ResizeObserver(() => { drawMinimap(); syncScrollbar(); schedule(); });
  ro.observe(minimap); ro.observe(scroller);
  cleanups.push(() => ro.disconnect());
  function syncScrollbar() {
    // The header's time column lines up with the rows' bar column above the scrollbar.
    timeHead.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
  }

  // ------------------------------------------------------------------ search
  const searchText = new Map();
  function textOf(s) {
    let t = searchText.get(s);
    if (t === undefined) {
      const parts = [s.name, s.service, s.spanId];
      for (const a of s.attributes) parts.push(a.key, typeof a.value === "object" ? JSON.stringify(a.value) : String(a.value));
      for (const a of s.resource.attributes) parts.push(a.key, String(a.value));
      for (const e of s.events) { parts.push(e.name); for (const a of e.attributes) parts.push(a.key, String(a.value)); }
      if (s.status.message) parts.push(s.status.message);
      t = parts.join("\u0000").toLowerCase();
      searchText.set(s, t);
    }
    return t;
  }
  let searchTimer = 0;
  function runSearch() {
    clearTimeout(searchTimer);
    query = searchInput.value.trim().toLowerCase();
    matches = query ? trace.spans.filter((s) => textOf(s).includes(query)) : [];
    matchSet = new Set(matches);
    matchIndex = -1;
    searchCount.textContent = query ? (matches.length ? `${matches.length} match${matches.length > 1 ? "es" : ""}` : "no matches") : "";
    if (matches.length) stepMatch(1);
    else renderRows();
  }
  function stepMatch(d) {
    if (!matches.length) return;
    matchIndex = (matchIndex + d + matches.length) % matches.length;
    searchCount.textContent = `${matchIndex + 1} of ${matches.length} match${matches.length > 1 ? "es" : ""}`;
    select(matches[matchIndex], { scroll: true });
  }
  searchInput.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 150); });
  searchInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      const q = searchInput.value.trim().toLowerCase();
      if (q !== query) runSearch(); else stepMatch(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") { searchInput.value = ""; runSearch(); }
  });
  critBox.addEventListener("change", () => { showCritical = critBox.checked; renderRows(); });

  // ------------------------------------------------------------------ detail panel
  function rel(us) { return `+${duration(us)}`; }
  function valueNode(a) {
    if (a.type === "array" || a.type === "map") return el("pre", { className: "tr-json" }, JSON.stringify(a.value, null, 1));
    if (a.type === "int" || a.type === "double") return el("span", { className: "mono" }, String(a.value));
    if (a.type === "bool") return el("span", { className: "mono" }, String(a.value));
    if (a.type === "bytes") return el("span", { className: "mono" }, String(a.value));
    return String(a.value);
  }
  function attrTable(attrs, label, grouped) {
    if (!attrs.length) return el("p", { className: "muted" }, "none");
    const rows = [];
    const sorted = [...attrs].sort((x, y) => x.key.localeCompare(y.key));
    if (grouped) {
      const groups = new Map();
      for (const a of sorted) {
        const dot = a.key.indexOf(".");
        const g = dot > 0 ? a.key.slice(0, dot) : "";
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(a);
      }
      const single = [];
      const multi = [];
      for (const [g, list] of groups) (g && list.length > 1 ? multi : single).push([g, list]);
      if (single.length) for (const [, list] of single) for (const a of list) rows.push(attrRow(a));
      for (const [g, list] of multi) {
        rows.push(el("tr", { className: "tr-group" }, el("th", { colspan: "3", scope: "rowgroup" }, g)));
        for (const a of list) rows.push(attrRow(a));
      }
    } else for (const a of sorted) rows.push(attrRow(a));
    return el("table", { className: "tr-attrs", "aria-label": label }, el("tbody", null, rows));
  }
  function attrRow(a) {
    return el("tr", { "data-key": a.key },
      el("th", { scope: "row", className: "mono" }, a.key),
      el("td", null, valueNode(a)),
      el("td", { className: "tr-type muted" }, a.type));
  }
  function renderDetail() {
    const s = selected;
    detail.hidden = !s;
    if (s) detail.dataset.spanId = s.spanId; else delete detail.dataset.spanId;
    panels.timeline.classList.toggle("with-detail", !!s);
    if (!s) { detail.replaceChildren(); spanLinksBox = null; return; }
    const statusText = s.status.code === "error" ? "Error" : s.status.code === "ok" ? "OK" : "Unset";
    const facts = [
      ["Service", [el("span", { className: "swatch", style: { background: serviceColor(s.service) } }), s.service]],
      ["Kind", s.kind],
      ["Start", `${rel(s.start - trace.start)} (${timestamp(s.start)})`],
      ["Duration", duration(s.duration)],
      ["Self time", duration(s.selfTime)],
      ["Status", el("span", { className: s.error ? "error" : "", "data-testid": "span-status" },
        s.error ? "✖ " : "", statusText, s.status.message ? `: ${s.status.message}` : "")],
      ["Span ID", el("span", { className: "mono" }, s.spanId)],
      ["Parent", s.parent
        ? el("button", { type: "button", className: "linklike mono", onclick: () => select(s.parent, { scroll: true }) }, `${s.parent.name} (${s.parent.spanId})`)
        : s.parentSpanId ? el("span", { className: "warning" }, `${s.parentSpanId} — missing from this trace`) : "none (root)"],
    ];
    const notes = [];
    if (s.critical) notes.push(el("p", { className: "tr-note" }, "On the critical path."));
    if (s.skew > 0 && s.parent) notes.push(el("p", { className: "tr-note warning" },
      `⚠ Clock skew? This span starts ${duration(s.skew)} ${s.start < s.parent.start ? "before its parent starts" : "after its parent ends"}.`));
    if (s.noTimestamp) notes.push(el("p", { className: "tr-note warning" }, "⚠ The span has no start time; it is drawn at its parent's start."));
    const evs = [...s.events].sort((a, b) => a.time - b.time);
    detail.replaceChildren(...[
      el("div", { className: "tr-detail-head" },
        el("h2", null, s.name || "(no name)"),
        el("button", { type: "button", className: "tr-close", "aria-label": "Close details", onclick: () => select(null, { focus: true }) }, "×")),
      s.error ? el("p", { className: "tr-error-line" }, "✖ Error", s.status.message ? `: ${s.status.message}` : "") : null,
      el("dl", { className: "tr-facts" }, ...facts.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
      notes,
      (spanLinksBox = el("section", { className: "tr-span-related", "data-testid": "span-related-links", "aria-label": "Related links", hidden: true })),
      el("h3", null, `Attributes (${s.attributes.length})`), attrTable(s.attributes, "Span attributes", true),
      el("h3", null, "Resource"), attrTable(s.resource.attributes, "Resource attributes", false),
      el("h3", null, "Scope"),
      s.scope.name || s.scope.version || s.scope.attributes.length
        ? [el("p", { className: "mono" }, s.scope.name || "(no name)", s.scope.version ? ` ${s.scope.version}` : ""),
          s.scope.attributes.length ? attrTable(s.scope.attributes, "Scope attributes", false) : null]
        : el("p", { className: "muted" }, "none"),
      el("h3", null, `Events (${evs.length})`),
      evs.length ? el("ol", { className: "tr-events" }, evs.map((e) => el("li", null,
        el("div", null, el("strong", null, e.name || "(no name)"), " ",
          el("span", { className: "muted" }, `${rel(e.time - trace.start)} in trace · ${e.time >= s.start ? "+" : "−"}${duration(Math.abs(e.time - s.start))} in span`)),
        e.attributes.length ? attrTable(e.attributes, "Event attributes", false) : null)))
        : el("p", { className: "muted" }, "none"),
      el("h3", null, `Links (${s.links.length})`),
      s.links.length ? el("ul", { className: "tr-links" }, s.links.map((l) => el("li", null,
        l.traceId ? el("a", { href: `/trace/${encodeURIComponent(l.traceId)}${l.spanId ? `?span=${encodeURIComponent(l.spanId)}` : ""}`, className: "mono" },
          `trace ${l.traceId}${l.spanId ? `, span ${l.spanId}` : ""}`) : el("span", { className: "mono" }, `span ${l.spanId} (no trace ID)`),
        l.traceId === trace.traceId ? el("span", { className: "muted" }, " (this trace)") : null,
        l.attributes.length ? attrTable(l.attributes, "Link attributes", false) : null)))
        : el("p", { className: "muted" }, "none"),
    ].flat(Infinity).filter(Boolean));
    fillSpanLinks(s);
  }

  // ------------------------------------------------------------------ statistics, slowest
  function renderStats() {
    const rows = traceStats(trace);
    const bySvc = new Map();
    for (const r of rows) {
      let v = bySvc.get(r.service);
      if (!v) bySvc.set(r.service, (v = { service: r.service, count: 0, total: 0, self: 0, errors: 0 }));
      v.count += r.count; v.total += r.total; v.self += r.self; v.errors += r.errors;
    }
    const svcRows = [...bySvc.values()].sort((a, b) => b.self - a.self);
    const totalSelf = svcRows.reduce((n, r) => n + r.self, 0) || 1;
    const num = (v) => el("td", { className: "num" }, v);
    panels.stats.replaceChildren(
      el("h2", null, "Time per service"),
      el("p", { className: "muted" }, "Self time is the time a span spends outside its children; the self-time share shows where the trace's time went."),
      el("table", { className: "tr-stats", "aria-label": "Time per service", "data-testid": "stats-services" },
        el("thead", null, el("tr", null, ["Service", "Spans", "Errors", "Total time", "Self time", "Share of self time"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", null, svcRows.map((r) => el("tr", null,
          el("td", null, el("span", { className: "swatch", style: { background: serviceColor(r.service) } }), r.service),
          num(String(r.count)), num(r.errors ? el("span", { className: "error" }, String(r.errors)) : "0"),
          num(duration(r.total)), num(duration(r.self)),
          el("td", null, el("span", { className: "tr-share" }, el("span", { style: { width: `${(r.self / totalSelf) * 100}%`, background: serviceColor(r.service) } })),
            ` ${((r.self / totalSelf) * 100).toFixed(1)}%`))))),
      el("h2", null, "Time per operation"),
      el("table", { className: "tr-stats", "aria-label": "Time per operation", "data-testid": "stats-operations" },
        el("thead", null, el("tr", null, ["Service", "Operation", "Count", "Errors", "Total", "Self", "Average", "Max"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", null, rows.map((r) => el("tr", null,
          el("td", null, el("span", { className: "swatch", style: { background: serviceColor(r.service) } }), r.service),
          el("td", null, r.name || "(no name)"), num(String(r.count)),
          num(r.errors ? el("span", { className: "error" }, String(r.errors)) : "0"),
          num(duration(r.total)), num(duration(r.self)), num(duration(r.total / r.count)), num(duration(r.max)))))));
  }
  function renderSlowest() {
    const top = [...trace.spans].sort((a, b) => b.duration - a.duration).slice(0, 20);
    const topSelf = [...trace.spans].sort((a, b) => b.selfTime - a.selfTime).slice(0, 20);
    const list = (spans, label, key) => el("table", { className: "tr-stats", "aria-label": label, "data-testid": key },
      el("thead", null, el("tr", null, ["Span", "Duration", "Self time", "Start"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, spans.map((s) => el("tr", null,
        el("td", null, el("button", { type: "button", className: "linklike", onclick: () => select(s, { scroll: true }) },
          el("span", { className: "swatch", style: { background: serviceColor(s.service) } }),
          s.error ? el("span", { className: "error" }, "✖ ") : null, `${s.service}: ${s.name || "(no name)"}`)),
        el("td", { className: "num" }, duration(s.duration)), el("td", { className: "num" }, duration(s.selfTime)),
        el("td", { className: "num" }, rel(s.start - trace.start))))));
    panels.slowest.replaceChildren(
      el("h2", null, "Slowest spans"), list(top, "Slowest spans by duration", "slowest-spans"),
      el("h2", null, "Most self time"), list(topSelf, "Spans with the most self time", "slowest-self"));
  }
  const rendered = new Set();
  function showTab(key, then) {
    for (const [k] of tabs) {
      const on = k === key;
      tabButtons[k].setAttribute("aria-selected", on ? "true" : "false");
      tabButtons[k].tabIndex = on ? 0 : -1;
      panels[k].hidden = !on;
    }
    if (!rendered.has(key)) {
      if (key === "stats") renderStats();
      if (key === "slowest") renderSlowest();
      rendered.add(key);
    }
    if (key === "timeline") {
      requestAnimationFrame(() => { drawMinimap(); syncScrollbar(); if (then) then(); renderRows(); });
    }
  }

  // ------------------------------------------------------------------ related links
  const isWebUrl = (u) => typeof u === "string" && /^https?:\/\//i.test(u);
  const external = (l, testid) => el("a", { href: l.url, target: "_blank", rel: "noopener", className: "tr-ext", "data-testid": testid }, l.name);

  async function loadRelated() {
    try {
      correlation = await api.getJSON(`/api/v1/traces/${encodeURIComponent(trace.traceId)}/links`, null, { signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      related.hidden = false;
      related.replaceChildren(el("p", { className: "muted tr-related-error" }, `Related links could not be loaded: ${err.message}`));
      return;
    }
    if (signal && signal.aborted) return;
    renderRelated();
    if (selected) fillSpanLinks(selected);
  }

  function renderRelated() {
    const traceLinks = (correlation.trace || []).filter((l) => isWebUrl(l.url));
    const incidents = correlation.incidents || [];
    related.hidden = !traceLinks.length && !incidents.length;
    related.replaceChildren(
      traceLinks.length ? el("nav", { className: "tr-related-links", "aria-label": "Related links" },
        el("span", { className: "muted" }, "Open in: "),
        el("ul", null, traceLinks.map((l) => el("li", null, external(l, "trace-link"))))) : null,
      incidents.length ? el("div", { className: "tr-incidents", role: "note", "aria-label": "Incidents", "data-testid": "trace-incidents" },
        el("strong", null, incidents.length === 1 ? "Incident: " : `Incidents (${incidents.length}): `),
        el("ul", null, incidents.map((i) => el("li", { "data-incident-id": i.id },
          isWebUrl(i.link) ? el("a", { href: i.link, target: "_blank", rel: "noopener", className: "tr-ext" }, i.title) : el("span", null, i.title),
          el("span", { className: "muted mono" }, ` ${i.id}`),
          i.created ? el("span", { className: "muted" }, ` · opened ${i.created}`) : null)))) : null);
  }

  /** The span panel's related links: from the trace's answer, or asked for this span alone
   *  when the server left it out of a long trace's answer. */
  function fillSpanLinks(s) {
    const box = spanLinksBox;
    if (!box || !correlation) return;
    const id = s.spanId.toLowerCase();
    let list = (correlation.spans || {})[id] || spanLinksFetched.get(id);
    if (!list && correlation.spansTruncated) {
      spanLinksFetched.set(id, []);
      api.getJSON(`/api/v1/traces/${encodeURIComponent(trace.traceId)}/links`, { spanId: id }, { signal })
        .then((answer) => {
          spanLinksFetched.set(id, (answer.spans || {})[id] || []);
          if (selected === s && spanLinksBox === box) fillSpanLinks(s);
        })
        .catch(() => { /* the panel simply shows no related links */ });
      return;
    }
    list = (list || []).filter((l) => isWebUrl(l.url));
    box.hidden = !list.length;
    box.replaceChildren(...(list.length ? [el("h3", null, "Related links"),
      el("ul", { className: "tr-related-list" }, list.map((l) => el("li", null, external(l, "span-link"))))] : []));
  }

  // ------------------------------------------------------------------ download
  function download() {
    const blob = new Blob([JSON.stringify(toOTLP(trace))], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `trace-${trace.traceId}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ------------------------------------------------------------------ start
  computeVisible();
  renderRuler();
  drawMinimapWindow();
  syncScrollbar();
  drawMinimap();
  const initial = initialSpan ? trace.byId.get(initialSpan) || trace.byId.get(String(initialSpan).toLowerCase()) : null;
  if (initial) select(initial, { scroll: true });
  else {
    renderRows();
    if (initialSpan) {
      page.insertBefore(el("p", { className: "warning", role: "status" }, `Span ${initialSpan} is not in this trace.`), toolbar);
    }
  }
  // After the waterfall is on screen: the related links never hold up the trace itself.
  if (links) setTimeout(() => { if (!(signal && signal.aborted)) loadRelated(); }, 0);
  return () => { cancelAnimationFrame(raf); for (const f of cleanups) f(); };
}
