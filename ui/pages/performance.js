// Service performance (`/performance`): a service's latency quantiles, error rate and
// throughput over time, from the RED metrics counted at ingest before sampling
// (`/api/v1/metrics`, docs/api-analytics.md), and a table of its operations.
//
// The URL holds the view: `service`, `operation` (absent: all operations merged), `kind` (a span
// kind; absent: all), the range as on the graph page (`lookback=1h`, or `start` & `end` in epoch
// µs or RFC 3339) and `compare` (an offset such as `1h`, `1d`, `7d`: the same range that much
// earlier, drawn dashed, with the differences in the table).
//
// A step of a chart opens the search page for the service (and operation) over that step:
// on the latency chart for the traces at least as long as the step's p95, on the error chart
// for the traces with errors, on the throughput chart for all of them.
import { getJSON, services as fetchServices, ApiError } from "../lib/api.js";
import { duration, el, stylesheet, timestamp } from "../lib/format.js";
import { navigate } from "../lib/nav.js";
import { lineChart } from "../lib/chart.js";
import { PRESETS, rangeFromParams } from "./graph.js";

const KINDS = ["server", "client", "producer", "consumer", "internal", "unspecified"];
const COMPARES = [["", "Nothing"], ["1h", "1 hour earlier"], ["1d", "1 day earlier"], ["7d", "7 days earlier"]];
const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
const COLORS = { p50: "#2e7d32", p95: "#1f5fbf", p99: "#8e24aa", errors: "#c62828", rate: "#1d2129" };

/** A compare offset (`30m`, `1h`, `1d`, `7d`, `2w`, or seconds) in ms; NaN when it is not one. */
export function parseOffset(raw) {
  if (!raw) return NaN;
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const m = /^(\d+)([smhdw])$/.exec(raw);
  return m && Number(m[1]) > 0 ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** The page's state from its URL. */
export function stateFromParams(params, nowMs = Date.now()) {
  const range = rangeFromParams(params, nowMs);
  const compare = params.get("compare") || "";
  const offsetMs = parseOffset(compare);
  const kind = params.get("kind") || "";
  return {
    service: params.get("service") || "", operation: params.get("operation") || "",
    kind: KINDS.includes(kind) ? kind : "", badKind: kind && !KINDS.includes(kind) ? kind : "",
    range, compare: Number.isFinite(offsetMs) ? compare : "", offsetMs: Number.isFinite(offsetMs) ? offsetMs : 0,
    badCompare: compare && !Number.isFinite(offsetMs) ? compare : "",
  };
}

function rangeEntries(range) {
  return range.lookback === "custom"
    ? [["start", String(Math.round(range.startMs * 1000))], ["end", String(Math.round(range.endMs * 1000))]]
    : [["lookback", range.lookback]];
}

/** This page's URL for a state (fields left empty are left out). */
export function pageHref(s) {
  const p = new URLSearchParams();
  if (s.service) p.set("service", s.service);
  if (s.operation) p.set("operation", s.operation);
  if (s.kind) p.set("kind", s.kind);
  for (const [k, v] of rangeEntries(s.range)) p.set(k, v);
  if (s.compare) p.set("compare", s.compare);
  return `/performance?${p}`;
}

/** The search page's URL: service (operation) over [startMs, endMs] or the state's range;
 *  `minDurationMs` (traces at least that long) and `errors` narrow it. */
export function searchHref({ service, operation, range, startMs, endMs, minDurationMs, errors }) {
  const p = new URLSearchParams({ service });
  if (operation) p.set("operation", operation);
  if (startMs != null) {
    p.set("start", String(Math.round(startMs * 1000)));
    p.set("end", String(Math.round(endMs * 1000)));
  } else for (const [k, v] of rangeEntries(range)) p.set(k, v);
  if (minDurationMs > 0) p.set("minDuration", `${Math.floor(minDurationMs * 1000) / 1000}ms`);
  if (errors) p.set("errors", "true");
  return `/search?${p}`;
}

// ------------------------------------------------------------------------------- formatting

const ms = (v) => (v == null ? "–" : duration(v * 1000));
const pct = (v) => {
  if (v == null) return "–";
  const p = v * 100;
  return `${p === 0 ? "0" : p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toFixed(2)}%`;
};
const perSec = (v) => (v == null ? "–" : `${v === 0 ? "0" : v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toPrecision(2)}/s`);
const count = (n) => (n == null ? "–" : n.toLocaleString("en"));
const signed = (text, v) => (v > 0 ? `+${text}` : v < 0 ? `−${text.replace(/^-/, "")}` : text);
const stepName = (s) => (s % 86400 === 0 ? `${s / 86400}-day` : s % 3600 === 0 ? `${s / 3600}-hour`
  : s % 60 === 0 ? `${s / 60}-minute` : `${s}-second`);

/** A difference cell's second line: {text, cls} (cls "worse", "better" or ""). */
function delta(cur, base, field) {
  const c = cur?.[field], b = base?.[field];
  if (!base || !base.calls) return cur && cur.calls ? { text: "new", cls: "" } : null;
  if (c == null || b == null) return { text: "–", cls: "" };
  const d = c - b;
  const rel = b ? ` (${signed(`${Math.abs(Math.round((100 * d) / b))}%`, d)})` : "";
  if (field === "errorRate") {
    const pp = 100 * d;
    return { text: `${signed(`${Math.abs(pp).toFixed(Math.abs(pp) >= 10 ? 0 : 1)} pp`, pp)}`, cls: d > 0 ? "worse" : d < 0 ? "better" : "" };
  }
  if (field === "calls") return { text: `${signed(count(Math.abs(d)), d)}${rel}`, cls: "" };
  if (field === "rate") return { text: `${signed(perSec(Math.abs(d)), d)}${rel}`, cls: "" };
  return { text: `${signed(ms(Math.abs(d)), d)}${rel}`, cls: d > 0 ? "worse" : d < 0 ? "better" : "" };
}

// ------------------------------------------------------------------------------------ form

function toLocalInput(msTime) {
  const d = new Date(msTime - new Date(msTime).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}

function form(state, serviceNames) {
  const go = (patch) => navigate(pageHref({ ...state, ...patch }));
  const field = (id, label, control) => el("div", { className: "perf-field" }, el("label", { htmlFor: id }, label), control);
  const names = serviceNames.includes(state.service) || !state.service ? serviceNames : [state.service, ...serviceNames];
  const service = el("select", { id: "perf-service", name: "service" },
    el("option", { value: "", selected: !state.service }, names.length ? "Choose a service…" : "No services yet"),
    names.map((n) => el("option", { value: n, selected: n === state.service }, n)));
  service.addEventListener("change", () => go({ service: service.value, operation: "" }));
  const operation = el("select", { id: "perf-operation", name: "operation", disabled: !state.service },
    el("option", { value: "" }, "All operations"),
    state.operation ? el("option", { value: state.operation, selected: true }, state.operation) : null);
  operation.addEventListener("change", () => go({ operation: operation.value }));
  const kind = el("select", { id: "perf-kind", name: "kind" },
    el("option", { value: "" }, "All kinds"), KINDS.map((k) => el("option", { value: k, selected: k === state.kind }, k)));
  kind.addEventListener("change", () => go({ kind: kind.value }));
  const range = state.range;
  const lookback = el("select", { id: "perf-range", name: "lookback" },
    PRESETS.map(([v, label]) => el("option", { value: v, selected: range.lookback === v }, label)),
    el("option", { value: "custom", selected: range.lookback === "custom" }, "Custom range…"));
  const from = el("input", { type: "datetime-local", id: "perf-from", value: toLocalInput(range.startMs) });
  const to = el("input", { type: "datetime-local", id: "perf-to", value: toLocalInput(range.endMs) });
  const custom = el("div", { className: "perf-custom", hidden: range.lookback !== "custom" },
    field("perf-from", "From", from), field("perf-to", "To", to),
    el("button", { type: "submit", className: "primary" }, "Show"));
  lookback.addEventListener("change", () => {
    custom.hidden = lookback.value !== "custom";
    if (lookback.value === "custom") from.focus();
    else go({ range: { lookback: lookback.value } });
  });
  const offsets = COMPARES.some(([v]) => v === state.compare) ? COMPARES : [...COMPARES, [state.compare, `${state.compare} earlier`]];
  const compare = el("select", { id: "perf-compare", name: "compare" },
    offsets.map(([v, label]) => el("option", { value: v, selected: v === state.compare }, label)));
  compare.addEventListener("change", () => go({ compare: compare.value }));
  const problem = el("p", { className: "error perf-problem", role: "alert" });
  const f = el("form", { className: "perf-form", "aria-label": "What to show" },
    field("perf-service", "Service", service), field("perf-operation", "Operation", operation),
    field("perf-kind", "Span kind", kind), field("perf-range", "Time range", lookback), custom,
    field("perf-compare", "Compare with", compare), problem);
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    if (lookback.value !== "custom") { go({ range: { lookback: lookback.value } }); return; }
    const start = new Date(from.value).getTime(), end = new Date(to.value).getTime();
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
      problem.textContent = "Choose a start before the end.";
      return;
    }
    go({ range: { lookback: "custom", startMs: start, endMs: end } });
  });
  /** Fill the operation list once the operations are known (busiest first). */
  f.setOperations = (ops) => {
    const list = ops.includes(state.operation) || !state.operation ? ops : [state.operation, ...ops];
    operation.replaceChildren(el("option", { value: "", selected: !state.operation }, "All operations"),
      ...list.map((o) => el("option", { value: o, selected: o === state.operation }, o)));
  };
  return f;
}

// ------------------------------------------------------------------------------------ data

function metricsParams(state, { shift = 0, operation = state.operation, groupBy, format } = {}) {
  return {
    service: state.service, operation: operation || undefined, kind: state.kind || undefined, groupBy, format,
    from: ((state.range.startMs - shift) / 1000).toFixed(3), to: ((state.range.endMs - shift) / 1000).toFixed(3),
  };
}

function apiHref(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  return `/api/v1/metrics?${p}`;
}

/** The baseline's points laid on the current range's steps (by position after the offset). */
function alignBaseline(current, baseline, offsetMs) {
  if (!baseline) return null;
  const step = current.step, t0 = current.series[0].points[0]?.t;
  const out = current.series[0].points.map(() => null);
  for (const p of baseline.series[0].points) {
    const i = Math.round((p.t + offsetMs / 1000 - t0) / step);
    if (i >= 0 && i < out.length) out[i] = p;
  }
  return out;
}

// ------------------------------------------------------------------------------------ views

function charts(state, current, baselinePoints) {
  const series = current.series[0];
  const pts = series.points;
  const stepMs = current.step * 1000;
  const times = pts.map((p) => p.t * 1000);
  const base = baselinePoints || [];
  const earlier = state.compare ? ` (${state.compare} earlier)` : "";
  const hasData = (i) => pts[i].calls > 0;
  const when = (i) => `${timestamp(times[i] * 1000)} – ${timestamp((times[i] + stepMs) * 1000).slice(11)}`;
  const baseText = (i, f) => (base[i] ? `; ${state.compare} earlier ${f(base[i])}` : "");
  const open = (i, extra) => navigate(searchHref({ service: state.service, operation: state.operation,
    startMs: times[i], endMs: times[i] + stepMs, ...extra }));
  const line = (name, field, color, dashed = false, from = pts) => ({ name, color, dashed, values: from.map((p) => (p ? p[field] : null)) });

  const latency = lineChart({
    label: "Latency", testid: "chart-latency", stepMs, times, format: ms, hasData,
    series: [line("p50", "p50", COLORS.p50), line("p95", "p95", COLORS.p95), line("p99", "p99", COLORS.p99),
      ...(baselinePoints ? [line(`p50${earlier}`, "p50", COLORS.p50, true, base), line(`p95${earlier}`, "p95", COLORS.p95, true, base),
        line(`p99${earlier}`, "p99", COLORS.p99, true, base)] : [])],
    describe: (i) => `${when(i)}: ${pts[i].calls ? `p50 ${ms(pts[i].p50)}, p95 ${ms(pts[i].p95)}, p99 ${ms(pts[i].p99)}` : "no calls"}` +
      baseText(i, (b) => (b.calls ? `p50 ${ms(b.p50)}, p95 ${ms(b.p95)}, p99 ${ms(b.p99)}` : "no calls")) +
      (pts[i].calls ? ". Select to search the traces at least as long as the p95." : ""),
    onSelect: (i) => open(i, { minDurationMs: pts[i].p95 || 0 }),
  });
  const errors = lineChart({
    label: "Error rate", testid: "chart-errors", stepMs, times, format: pct, hasData,
    series: [line("error rate", "errorRate", COLORS.errors), ...(baselinePoints ? [line(`error rate${earlier}`, "errorRate", COLORS.errors, true, base)] : [])],
    describe: (i) => `${when(i)}: ${pts[i].calls ? `${pct(pts[i].errorRate)} (${count(pts[i].errors)} of ${count(pts[i].calls)})` : "no calls"}` +
      baseText(i, (b) => (b.calls ? pct(b.errorRate) : "no calls")) + (pts[i].errors ? ". Select to search the failed traces." : ""),
    onSelect: (i) => open(i, { errors: pts[i].errors > 0 }),
  });
  const rate = lineChart({
    label: "Throughput (calls per second)", testid: "chart-throughput", stepMs, times, format: perSec, hasData,
    series: [line("calls/s", "rate", COLORS.rate), ...(baselinePoints ? [line(`calls/s${earlier}`, "rate", COLORS.rate, true, base)] : [])],
    describe: (i) => `${when(i)}: ${perSec(pts[i].rate)} (${count(pts[i].calls)} calls)` + baseText(i, (b) => `${perSec(b.rate)} (${count(b.calls)} calls)`) +
      (pts[i].calls ? ". Select to search the step's traces." : ""),
    onSelect: (i) => open(i, {}),
  });
  return el("div", { className: "perf-charts" }, latency.element, errors.element, rate.element);
}

function operationsTable(state, merged, mergedBase, groups, groupsBase) {
  const baseByOp = new Map((groupsBase?.series || []).map((s) => [s.operation, s.totals]));
  const compare = !!groupsBase;
  const fields = [["calls", count], ["rate", perSec], ["errorRate", pct], ["p50", ms], ["p95", ms], ["p99", ms]];
  const headers = ["Calls", "Rate", "Error rate", "p50", "p95", "p99"];
  const row = (operation, totals, base) => {
    const selected = (operation || "") === state.operation;
    const href = pageHref({ ...state, operation: operation || "" });
    return el("tr", { className: selected ? "selected" : undefined, "aria-current": selected ? "true" : undefined,
      dataset: { operation: operation || "" } },
    el("th", { scope: "row" }, el("a", { href, "aria-label": `${operation || "All operations"}: show its charts` }, operation || "All operations")),
    fields.map(([f, fmt]) => {
      const d = compare ? delta(totals, base, f) : null;
      return el("td", { className: `num${f === "errorRate" && totals.errors ? " error" : ""}`, dataset: { field: f } },
        fmt(totals[f]), d ? el("span", { className: `perf-delta ${d.cls}`, "data-testid": "delta" }, d.text) : null);
    }),
    el("td", null, el("a", { href: searchHref({ service: state.service, operation, range: state.range }) }, "traces")));
  };
  // In the comparison, operations present only in the baseline are listed too (without calls now).
  const ops = [...groups.series];
  if (groupsBase) {
    const known = new Set(ops.map((s) => s.operation));
    for (const s of groupsBase.series) {
      if (!known.has(s.operation)) ops.push({ operation: s.operation, totals: { calls: 0, errors: 0, errorRate: null, rate: 0, p50: null, p95: null, p99: null } });
    }
  }
  return el("table", { className: "perf-table", "aria-label": "Operations" },
    el("thead", null, el("tr", null, el("th", { scope: "col" }, "Operation"),
      headers.map((h) => el("th", { scope: "col", className: "num" }, h)), el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Search")))),
    el("tbody", null, row("", merged.series[0].totals, mergedBase?.series[0].totals),
      ops.map((s) => row(s.operation, s.totals, baseByOp.get(s.operation)))));
}

// ------------------------------------------------------------------------------------ page

export async function render(main, ctx) {
  stylesheet("/ui/pages/performance.css");
  const state = stateFromParams(ctx.params);
  const opts = { signal: ctx.signal };
  main.append(el("h1", null, "Service performance"));
  let names = [];
  try {
    names = await fetchServices(opts);
  } catch (err) {
    if (err.name === "AbortError") return;
    main.append(el("p", { className: "error", role: "alert" }, `Could not load the services: ${err.message}`));
  }
  const f = form(state, names);
  main.append(f);
  for (const [bad, what] of [[state.badKind, "span kind"], [state.badCompare, "comparison offset"]]) {
    if (bad) main.append(el("p", { className: "warning", role: "alert" }, `The ${what} “${bad}” in the address is not one this page knows; it is ignored.`));
  }
  if (state.range.invalid) {
    main.append(el("p", { className: "warning", role: "alert" }, `The time range in the address does not parse; showing the ${state.range.label} instead.`));
  }
  if (!state.service) {
    main.append(el("p", { className: "muted", role: "status" }, names.length
      ? "Choose a service to see its latency, error rate and throughput over time, and its operations."
      : "No service has sent spans yet."));
    return;
  }
  const status = el("p", { className: "loading", role: "status" }, "Loading metrics…");
  main.append(status);
  const shift = state.offsetMs;
  const requests = [
    getJSON("/api/v1/metrics", metricsParams(state), opts),
    state.operation ? getJSON("/api/v1/metrics", metricsParams(state, { operation: "" }), opts) : null,
    getJSON("/api/v1/metrics", metricsParams(state, { operation: "", groupBy: "operation" }), opts),
    ...(shift ? [
      getJSON("/api/v1/metrics", metricsParams(state, { shift }), opts),
      state.operation ? getJSON("/api/v1/metrics", metricsParams(state, { shift, operation: "" }), opts) : null,
      getJSON("/api/v1/metrics", metricsParams(state, { shift, operation: "", groupBy: "operation" }), opts),
    ] : []),
  ];
  let current, merged, groups, baseline = null, mergedBase = null, groupsBase = null;
  try {
    [current, merged, groups, baseline, mergedBase, groupsBase] = await Promise.all(requests);
  } catch (err) {
    if (err.name === "AbortError") return;
    status.className = "error";
    status.setAttribute("role", "alert");
    status.textContent = err instanceof ApiError ? `Could not load the metrics: ${err.message}` : String(err);
    return;
  }
  merged ||= current;
  mergedBase ||= baseline;
  f.setOperations(groups.series.map((s) => s.operation));

  const totals = current.series[0].totals;
  const what = `${state.service}${state.operation ? ` · ${state.operation}` : ""}${state.kind ? ` (${state.kind} spans)` : ""}`;
  const when = state.range.lookback === "custom" ? state.range.label : `the ${state.range.label}`;
  const baseCalls = baseline ? baseline.series[0].totals.calls : 0;
  if (!totals.calls && !baseCalls) {
    status.className = "muted";
    status.textContent = `No spans of ${what} in ${when}.`;
    if (!state.operation && !groups.series.length) return;
  } else {
    status.className = "muted perf-summary";
    status.textContent = `${what}: ${count(totals.calls)} calls (${perSec(totals.rate)}), ${count(totals.errors)} errors (${pct(totals.errorRate)}), ` +
      `p50 ${ms(totals.p50)}, p95 ${ms(totals.p95)}, p99 ${ms(totals.p99)} in ${when}; ${stepName(current.step)} steps` +
      (baseline ? `; dashed: the same range ${state.compare} earlier (${count(baseCalls)} calls).` : ".");
  }
  const points = alignBaseline(current, baseline, shift);
  if (totals.calls || baseCalls) {
    main.append(charts(state, current, points),
      el("p", { className: "muted perf-hint" }, "Select a step of a chart (or focus a chart and use the arrow keys and Enter) to search its traces: " +
        "on the latency chart those at least as long as the step's p95, on the error chart the failed ones."));
  }
  const csv = (label, params) => el("a", { href: apiHref({ ...params, format: "csv" }), download: "", "data-testid": "csv" }, label);
  main.append(el("p", { className: "perf-downloads" }, "Download CSV: ",
    csv("this series", metricsParams(state)), " · ", csv("every operation", metricsParams(state, { operation: "", groupBy: "operation" })),
    shift ? [" · ", csv(`this series, ${state.compare} earlier`, metricsParams(state, { shift }))] : null));
  main.append(el("h2", { id: "perf-operations" }, "Operations"));
  if (!groups.series.length && !groupsBase?.series.length) {
    main.append(el("p", { className: "muted" }, `No operations of ${state.service} in ${when}.`));
    return;
  }
  main.append(operationsTable(state, merged, mergedBase, groups, groupsBase));
  if (groupsBase) main.append(el("p", { className: "muted perf-hint" }, `Second lines: the change since the same range ${state.compare} earlier (pp: percentage points).`));
}
