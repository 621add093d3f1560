// The search page (`/`, `/search`): find traces by service, operation, tags, time range,
// whole-trace duration and errors; see them as a scatter plot and a sortable list.
//
// The URL's query string is the search: service, operation, tags (the text as typed),
// lookback (15m 1h 3h 6h 12h 24h 2d 7d) or start & end (RFC 3339, or µs since the epoch as
// Jaeger's UI writes them), minDuration, maxDuration (Go durations, whole trace), limit,
// errors=true, sort (newest longest shortest spans).  Submitting pushes a history entry, so
// the back button returns to the previous search; loading such a URL runs it.
//
// `queryFromParams` is exported for the compare page, which runs a search given as this
// page's query string (`/compare?a=<id>&search=<query string>`).
import { traceSummaries, services as fetchServices, operations as fetchOperations } from "../lib/api.js";
import { duration, timestamp, serviceColor, el, stylesheet } from "../lib/format.js";
import { navigate, replaceParams } from "../lib/nav.js";
import { scatterPlot } from "../lib/scatter.js";

export const LOOKBACKS = [
  ["15m", "Last 15 minutes", 15 * 6e4], ["1h", "Last hour", 3.6e6], ["3h", "Last 3 hours", 3 * 3.6e6],
  ["6h", "Last 6 hours", 6 * 3.6e6], ["12h", "Last 12 hours", 12 * 3.6e6], ["24h", "Last 24 hours", 24 * 3.6e6],
  ["2d", "Last 2 days", 2 * 8.64e7], ["7d", "Last 7 days", 7 * 8.64e7],
];
export const DEFAULT_LOOKBACK = "1h";
export const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 10000;
const SORTS = [
  ["newest", "Newest first", (a, b) => b.start - a.start],
  ["longest", "Longest first", (a, b) => b.duration - a.duration],
  ["shortest", "Shortest first", (a, b) => a.duration - b.duration],
  ["spans", "Most spans", (a, b) => b.spans - a.spans],
];
/** The parameters that make a URL a search (anything else alone just shows the form). */
const QUERY_KEYS = ["service", "operation", "tags", "lookback", "start", "end", "minDuration",
  "maxDuration", "limit", "errors"];

// ---------------------------------------------------------------------------- parsing

/** Invalid search input: `fields` maps a form field (service, tags, time, minDuration,
 *  maxDuration, limit) to what is wrong with it. */
export class SearchInputError extends Error {
  constructor(fields) {
    super(Object.values(fields).join(" "));
    this.fields = fields;
  }
}

class TagError extends Error {}

const DURATION_UNITS = { ns: 1e-3, us: 1, "µs": 1, "μs": 1, ms: 1e3, s: 1e6, m: 6e7, h: 3.6e9 };

/** A Go duration ("100ms", "1.5s", "1m30s", "0"; not negative) in µs; NaN when it is not one. */
export function parseDuration(text) {
  const s = String(text).trim().replace(/^\+/, "");
  if (s === "0") return 0;
  if (!s) return NaN;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  for (let pos = 0; pos < s.length; pos = re.lastIndex) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return NaN;
    total += parseFloat(m[1]) * DURATION_UNITS[m[2]];
  }
  return total;
}

/** Strip the quotes of a (partly) quoted word: `"a b"` → `a b`; inside quotes `\"` is a quote
 *  and `\\` a backslash (any other backslash stays, for regular expressions). */
function unquote(raw) {
  let out = "", quoted = false, inQuote = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (inQuote && c === "\\" && (raw[i + 1] === '"' || raw[i + 1] === "\\")) { out += raw[++i]; continue; }
    if (c === '"') { inQuote = !inQuote; quoted = true; continue; }
    out += c;
  }
  return { text: out, quoted };
}

/** Split tag text into words at spaces and newlines outside double quotes. */
function tagWords(text) {
  const words = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    let word = "", inQuote = false;
    while (i < text.length && (inQuote || !/\s/.test(text[i]))) {
      const c = text[i];
      if (inQuote && c === "\\" && i + 1 < text.length) { word += c + text[i + 1]; i += 2; continue; }
      if (c === '"') inQuote = !inQuote;
      word += c;
      i++;
    }
    if (inQuote) throw new TagError(`“${word}”: a quote is not closed.`);
    words.push(word);
  }
  return words;
}

/** One condition: `key=value`, `key!=value`, `key=~regex`, `key!~regex`, or `key` (exists). */
function tagCondition(word) {
  let inQuote = false;
  for (let i = 0; i < word.length; i++) {
    const c = word[i];
    if (inQuote) {
      if (c === "\\") i++;
      else if (c === '"') inQuote = false;
      continue;
    }
    if (c === '"') { inQuote = true; continue; }
    const two = word.slice(i, i + 2);
    const op = two === "!=" || two === "=~" || two === "!~" ? two : c === "=" ? "=" : null;
    if (!op) continue;
    const key = unquote(word.slice(0, i)).text;
    const rawValue = word.slice(i + op.length);
    if (!key) throw new TagError(`“${word}”: the key is missing (write key${op}value).`);
    if (rawValue === "") {
      throw new TagError(`“${word}”: no value after ${op} (write ${key}${op}"" for an empty value).`);
    }
    if (rawValue[0] === "=") {
      throw new TagError(`“${word}”: use a single = (${key}=value), or quote a value that starts with =.`);
    }
    return { key, op, value: unquote(rawValue).text };
  }
  const key = unquote(word).text;
  if (!key) throw new TagError(`“${word}”: the key is missing.`);
  return { key, op: "exists" };
}

/** Tag text → the `query.attributes` object {key: {op, value}}; throws a TagError naming the
 *  malformed condition. */
export function parseTags(text) {
  const attributes = {};
  for (const word of tagWords(text || "")) {
    const cond = tagCondition(word);
    if (Object.hasOwn(attributes, cond.key)) {
      throw new TagError(`“${word}”: there is already a condition on ${cond.key} (one condition per key).`);
    }
    attributes[cond.key] = cond.op === "exists" ? { op: "exists" } : { op: cond.op, value: cond.value };
  }
  return attributes;
}

/** A time from the URL: µs since the epoch (digits, Jaeger's form) or a date string; ms. */
function parseTime(raw) {
  if (raw == null || raw === "") return NaN;
  if (/^\d+$/.test(raw)) return Number(raw) / 1000;
  return Date.parse(raw);
}

/**
 * The search page's query string → {query (for api.traceSummaries), window: {start, end} (ms),
 * limit}.  `now` (ms) anchors a lookback.  Throws SearchInputError naming each bad field.
 */
export function queryFromParams(params, now = Date.now()) {
  params = new URLSearchParams(params);
  const fields = {};
  let attributes = {};
  try {
    attributes = parseTags(params.get("tags") || "");
  } catch (err) {
    if (!(err instanceof TagError)) throw err;
    fields.tags = `Tag condition ${err.message}`;
  }
  if (isTrue(params.get("errors"))) {
    if (Object.hasOwn(attributes, "error")) {
      fields.tags = fields.tags || "“Errors only” and a tag condition on error conflict: keep one of them.";
    } else attributes.error = { op: "=", value: "true" };
  }

  let start, end;
  if (params.has("start") || params.has("end")) {
    start = parseTime(params.get("start"));
    end = parseTime(params.get("end"));
    if (!Number.isFinite(start) || !Number.isFinite(end)) fields.time = "Give both a start and an end time.";
    else if (start >= end) fields.time = "The start time must be before the end time.";
  } else {
    const lookback = params.get("lookback") || DEFAULT_LOOKBACK;
    const preset = LOOKBACKS.find(([key]) => key === lookback);
    if (!preset) fields.time = `Unknown time range “${lookback}”.`;
    else { end = now; start = now - preset[2]; }
  }

  const durations = {};
  for (const [name, label] of [["minDuration", "Min duration"], ["maxDuration", "Max duration"]]) {
    const raw = (params.get(name) || "").trim();
    if (!raw) continue;
    const us = parseDuration(raw);
    if (Number.isNaN(us)) fields[name] = `${label} “${raw}” is not a duration such as 100ms, 1.5s or 2m.`;
    else durations[name] = { raw, us };
  }
  if (durations.minDuration && durations.maxDuration && durations.minDuration.us > durations.maxDuration.us) {
    fields.maxDuration = "Max duration is less than min duration.";
  }

  const rawLimit = (params.get("limit") || "").trim();
  const limit = rawLimit ? Number(rawLimit) : DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    fields.limit = `Limit must be a whole number from 1 to ${MAX_LIMIT}.`;
  }
  if (Object.keys(fields).length) throw new SearchInputError(fields);
  return {
    query: {
      serviceName: params.get("service") || "",
      operationName: (params.get("service") && params.get("operation")) || "",
      attributes,
      startTimeMin: new Date(start),
      startTimeMax: new Date(end),
      traceDurationMin: durations.minDuration && durations.minDuration.raw,
      traceDurationMax: durations.maxDuration && durations.maxDuration.raw,
      searchDepth: limit,
    },
    window: { start, end },
    limit,
  };
}

function isTrue(v) { return v === "true" || v === "1" || v === "on"; }

/** Nanoseconds as a decimal string → µs (a double holds µs since the epoch exactly). */
function nsToUs(ns) {
  const s = String(ns);
  return s.length <= 3 ? Number(s) / 1000 : Number(s.slice(0, -3)) + Number(s.slice(-3)) / 1000;
}

function summaryRow(s) {
  const start = nsToUs(s.minStartTimeUnixNano);
  let dur = 0;
  try { dur = Number(BigInt(s.maxEndTimeUnixNano) - BigInt(s.minStartTimeUnixNano)) / 1000; } catch { /* bad input */ }
  return {
    id: s.traceId, rootService: s.rootServiceName, rootOperation: s.rootOperationName,
    start, duration: Math.max(dur, 0), spans: s.spanCount, errors: s.errorSpanCount,
    services: [...(s.services || [])].sort((a, b) => b.spanCount - a.spanCount || a.name.localeCompare(b.name)),
  };
}

/** A datetime-local input value ("YYYY-MM-DDTHH:MM[:SS]", local time) for a time in ms. */
function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  const base = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  return d.getSeconds() || d.getMilliseconds() ? `${base}:${p(d.getSeconds())}` : base;
}

function describeWindow(params) {
  if (params.has("start") || params.has("end")) {
    const s = parseTime(params.get("start")), e = parseTime(params.get("end"));
    return `from ${timestamp(s * 1000)} to ${timestamp(e * 1000)}`;
  }
  const preset = LOOKBACKS.find(([k]) => k === (params.get("lookback") || DEFAULT_LOOKBACK));
  return preset ? `in the ${preset[1].toLowerCase()}` : "";
}

// ---------------------------------------------------------------------------- the page

export async function render(main, ctx) {
  const css = stylesheet("/ui/pages/search.css");
  const params = new URLSearchParams(ctx.params);
  const runNow = QUERY_KEYS.some((k) => params.has(k));
  const cleanups = [];

  // -- start the fetches first: the services and the search run in parallel with the build
  const servicesPromise = fetchServices({ signal: ctx.signal });
  servicesPromise.catch(() => {}); // handled below; keeps an early failure from going unhandled

  // -- the form
  const field = (id, label, control, hint) => {
    const error = el("p", { className: "field-error error", id: `${id}-error`, hidden: true });
    control.id = id;
    control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
    return el("div", { className: `field field-${id}` },
      el("label", { htmlFor: id }, label), control,
      hint ? el("p", { className: "hint muted", id: `${id}-hint` }, hint) : null, error);
  };
  const serviceSel = el("select", { name: "service" }, el("option", { value: "" }, "All services"));
  const operationSel = el("select", { name: "operation", disabled: true }, el("option", { value: "" }, "All operations"));
  const tagsInput = el("textarea", {
    name: "tags", rows: 2, spellcheck: "false", autocomplete: "off",
    placeholder: 'http.status_code=500  http.route!=/health  db.system  user.name="Ada Lovelace"',
  });
  const lookbackSel = el("select", { name: "lookback" },
    ...LOOKBACKS.map(([k, label]) => el("option", { value: k }, label)),
    el("option", { value: "custom" }, "Custom range…"));
  const fromInput = el("input", { type: "datetime-local", name: "start", step: 1 });
  const toInput = el("input", { type: "datetime-local", name: "end", step: 1 });
  const customBox = el("div", { className: "custom-range", hidden: true },
    el("label", {}, "From ", fromInput), el("label", {}, "To ", toInput));
  const minInput = el("input", { name: "minDuration", placeholder: "e.g. 100ms", autocomplete: "off", spellcheck: "false" });
  const maxInput = el("input", { name: "maxDuration", placeholder: "e.g. 1.5s", autocomplete: "off", spellcheck: "false" });
  const limitInput = el("input", { name: "limit", type: "number", min: 1, max: MAX_LIMIT, step: 1, value: String(DEFAULT_LIMIT) });
  const errorsBox = el("input", { type: "checkbox", name: "errors", id: "errors" });
  const submit = el("button", { type: "submit", className: "primary" }, "Find traces");
  const formAlert = el("p", { className: "error form-alert", role: "alert", hidden: true });

  const timeField = field("lookback", "Time range", lookbackSel);
  timeField.append(customBox);
  const form = el("form", { className: "search-form", "aria-label": "Search traces", novalidate: true },
    field("service", "Service", serviceSel),
    field("operation", "Operation", operationSel),
    timeField,
    field("minDuration", "Min duration (whole trace)", minInput),
    field("maxDuration", "Max duration (whole trace)", maxInput),
    field("limit", "Limit", limitInput),
    field("tags", "Tags", tagsInput,
      "Space- or newline-separated: key=value, key!=value, key=~regex, key!~regex, or key alone (present). " +
      "Quote values with spaces: key=\"a b\". All must hold on one span. Enter searches, Shift+Enter adds a line."),
    el("div", { className: "field field-errors" },
      el("label", { className: "check" }, errorsBox, " Errors only"),
      el("p", { className: "hint muted" }, "Traces where a span matching the filters above has error status")),
    el("div", { className: "field field-submit" }, submit),
    formAlert);
  // the time field's error also reports the custom range
  fromInput.setAttribute("aria-describedby", "lookback-error");
  toInput.setAttribute("aria-describedby", "lookback-error");

  const status = el("p", { className: "count", "aria-live": "polite", "data-testid": "result-count" });
  const resultArea = el("div", { className: "results-body" });
  const results = el("section", { className: "results", "aria-label": "Search results", "data-testid": "results" },
    status, resultArea);

  // -- form ⇄ params
  let lastOpsFor = null;
  let opsController = null;
  function ensureOption(select, value) {
    if (value && ![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, value));
    select.value = value || "";
  }
  async function loadOperations(service, wanted) {
    if (opsController) opsController.abort();
    operationSel.replaceChildren(el("option", { value: "" }, "All operations"));
    operationSel.disabled = !service;
    if (!service) return;
    ensureOption(operationSel, wanted);
    lastOpsFor = service;
    opsController = new AbortController();
    const signal = opsController.signal;
    ctx.signal.addEventListener("abort", () => opsController && opsController.abort(), { once: true });
    operationSel.setAttribute("aria-busy", "true");
    try {
      const ops = await fetchOperations(service, { signal });
      if (signal.aborted || lastOpsFor !== service) return;
      const keep = operationSel.value;
      const names = [...new Set(ops.map((o) => o.name))].sort();
      operationSel.replaceChildren(el("option", { value: "" }, "All operations"),
        ...names.map((n) => el("option", { value: n }, n)));
      ensureOption(operationSel, keep);
    } catch (err) {
      if (signal.aborted || err.name === "AbortError") return;
      showError("operation", `Could not load the operations: ${err.message}`);
    } finally {
      if (!signal.aborted) operationSel.removeAttribute("aria-busy");
    }
  }

  function fillForm(p) {
    ensureOption(serviceSel, p.get("service") || "");
    loadOperations(p.get("service") || "", p.get("operation") || "");
    tagsInput.value = p.get("tags") || "";
    if (p.has("start") || p.has("end")) {
      lookbackSel.value = "custom";
      const s = parseTime(p.get("start")), e = parseTime(p.get("end"));
      fromInput.value = Number.isFinite(s) ? localInput(s) : "";
      toInput.value = Number.isFinite(e) ? localInput(e) : "";
    } else {
      const lb = p.get("lookback") || DEFAULT_LOOKBACK;
      lookbackSel.value = LOOKBACKS.some(([k]) => k === lb) ? lb : DEFAULT_LOOKBACK;
    }
    customBox.hidden = lookbackSel.value !== "custom";
    minInput.value = p.get("minDuration") || "";
    maxInput.value = p.get("maxDuration") || "";
    limitInput.value = p.get("limit") || String(DEFAULT_LIMIT);
    errorsBox.checked = isTrue(p.get("errors"));
  }

  function formParams() {
    const p = new URLSearchParams();
    if (serviceSel.value) p.set("service", serviceSel.value);
    if (serviceSel.value && operationSel.value) p.set("operation", operationSel.value);
    if (tagsInput.value.trim()) p.set("tags", tagsInput.value.trim());
    if (lookbackSel.value === "custom") {
      const iso = (v) => { const t = v ? new Date(v).getTime() : NaN; return Number.isFinite(t) ? new Date(t).toISOString() : ""; };
      p.set("start", iso(fromInput.value));
      p.set("end", iso(toInput.value));
    } else p.set("lookback", lookbackSel.value);
    if (minInput.value.trim()) p.set("minDuration", minInput.value.trim());
    if (maxInput.value.trim()) p.set("maxDuration", maxInput.value.trim());
    p.set("limit", limitInput.value.trim() || String(DEFAULT_LIMIT));
    if (errorsBox.checked) p.set("errors", "true");
    if (sort !== "newest") p.set("sort", sort);
    return p;
  }

  const FIELD_CONTROLS = { service: serviceSel, operation: operationSel, tags: tagsInput, time: lookbackSel,
    minDuration: minInput, maxDuration: maxInput, limit: limitInput };
  const errorIds = { time: "lookback" };
  function showError(name, message) {
    const id = errorIds[name] || name;
    const p = form.querySelector(`#${id}-error`);
    p.textContent = message;
    p.hidden = false;
    p.setAttribute("role", "alert");
    FIELD_CONTROLS[name].setAttribute("aria-invalid", "true");
  }
  function clearErrors() {
    for (const p of form.querySelectorAll(".field-error")) { p.hidden = true; p.textContent = ""; p.removeAttribute("role"); }
    for (const c of Object.values(FIELD_CONTROLS)) c.removeAttribute("aria-invalid");
    formAlert.hidden = true;
  }

  // -- the search
  let sort = SORTS.some(([k]) => k === params.get("sort")) ? params.get("sort") : "newest";
  let rows = null;       // summaryRow[] of the last search
  let searched = null;   // {params, window, limit} of the last search
  let selected = new Set();
  let searchController = null;
  let plot = null;
  cleanups.push(() => plot && plot.destroy());

  async function runSearch(p) {
    clearErrors();
    let parsed;
    try {
      parsed = queryFromParams(p);
    } catch (err) {
      if (!(err instanceof SearchInputError)) throw err;
      for (const [name, message] of Object.entries(err.fields)) showError(name, message);
      status.textContent = "";
      resultArea.replaceChildren();
      return false;
    }
    if (searchController) searchController.abort();
    const controller = searchController = new AbortController();
    ctx.signal.addEventListener("abort", () => controller.abort(), { once: true });
    status.textContent = "Searching…";
    status.className = "count loading";
    results.setAttribute("aria-busy", "true");
    try {
      const summaries = await traceSummaries(parsed.query, { signal: controller.signal });
      if (controller.signal.aborted) return true;
      rows = summaries.map(summaryRow);
      searched = { params: new URLSearchParams(p), ...parsed };
      selected = new Set();
      showResults();
    } catch (err) {
      if (controller.signal.aborted || err.name === "AbortError") return true;
      rows = null;
      status.textContent = "";
      status.className = "count";
      if (plot) { plot.destroy(); plot = null; }
      resultArea.replaceChildren(el("p", { className: "error search-error", role: "alert" },
        `The search failed: ${err.message}`));
    } finally {
      if (searchController === controller) results.removeAttribute("aria-busy");
    }
    return true;
  }

  /** This search as the compare page reads it: the page's own query string, with the time
   *  range made absolute (the window actually searched) and no sort. */
  function searchString() {
    const p = new URLSearchParams(searched.params);
    p.delete("lookback"); p.delete("sort");
    p.set("start", new Date(searched.window.start).toISOString());
    p.set("end", new Date(searched.window.end).toISOString());
    return p.toString();
  }

  function showResults() {
    if (plot) { plot.destroy(); plot = null; }
    status.className = "count";
    const n = rows.length;
    if (!n) {
      const p = searched.params;
      const what = p.get("service") ? `for ${p.get("service")}${p.get("operation") ? ` ${p.get("operation")}` : ""} ` : "";
      status.textContent = "No traces found.";
      resultArea.replaceChildren(el("div", { className: "empty", "data-testid": "no-results" },
        el("p", {}, `No trace matched ${what}${describeWindow(p)}.`),
        el("ul", {},
          el("li", {}, "Try a longer time range (traces are searched by the start of their spans)."),
          el("li", {}, "Remove a tag condition, or check its key: all conditions must hold on one span."),
          p.get("minDuration") || p.get("maxDuration") ? el("li", {}, "Widen the min/max duration.") : null,
          el("li", {}, "Recently sent spans can take a moment to become searchable."))));
      return;
    }
    const limit = searched.limit;
    status.replaceChildren(`${n} trace${n === 1 ? "" : "s"} found`,
      n >= limit ? el("span", { className: "muted" }, ` (the limit: raise it to see more)`) : "");

    const sortSel = el("select", { id: "sort", name: "sort" }, ...SORTS.map(([k, label]) => el("option", { value: k }, label)));
    sortSel.value = sort;
    sortSel.addEventListener("change", () => {
      sort = sortSel.value;
      const u = new URLSearchParams(location.search);
      if (sort === "newest") u.delete("sort"); else u.set("sort", sort);
      replaceParams(u);
      fillTable();
    });
    const compareBox = el("span", { className: "compare-selected", "aria-live": "polite" });
    const toolbar = el("div", { className: "toolbar" },
      el("label", { className: "inline", htmlFor: "sort" }, "Sort "), sortSel, compareBox);

    const maxDur = Math.max(...rows.map((r) => r.duration), 1);
    const tbody = el("tbody");
    const table = el("table", { className: "traces", "data-testid": "trace-list" },
      el("caption", { className: "visually-hidden" }, "Traces found"),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Select to compare")),
        el("th", { scope: "col" }, "Trace"),
        el("th", { scope: "col" }, "Start"),
        el("th", { scope: "col", className: "col-duration" }, "Duration"),
        el("th", { scope: "col", className: "num" }, "Spans"),
        el("th", { scope: "col" }, "Services"),
        el("th", { scope: "col" }, "Errors"),
        el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Compare")))),
      tbody);

    function updateCompare() {
      const ids = [...selected];
      if (ids.length === 2) {
        compareBox.replaceChildren(el("a", {
          href: `/compare?a=${encodeURIComponent(ids[0])}&b=${encodeURIComponent(ids[1])}`,
          className: "compare-link",
        }, "Compare the two selected traces"));
      } else {
        compareBox.replaceChildren(el("span", { className: "muted" }, ids.length > 2
          ? `${ids.length} selected: check exactly two traces to compare them`
          : "Check two traces to compare them"));
      }
    }

    function fillTable() {
      const cmp = SORTS.find(([k]) => k === sort)[2];
      const sorted = [...rows].sort((a, b) => cmp(a, b) || b.start - a.start);
      const median = sorted.length >= 2 ? searchString() : null;
      tbody.replaceChildren(...sorted.map((r) => {
        const href = `/trace/${encodeURIComponent(r.id)}`;
        const rootName = r.rootService ? `${r.rootService}: ${r.rootOperation}` : "(root span missing)";
        const check = el("input", { type: "checkbox", checked: selected.has(r.id), "aria-label": `Select ${rootName} ${r.id.slice(0, 8)} to compare` });
        check.addEventListener("change", () => {
          if (check.checked) selected.add(r.id); else selected.delete(r.id);
          updateCompare();
        });
        return el("tr", { dataset: { traceId: r.id }, className: r.errors ? "has-errors" : "" },
          el("td", { className: "select" }, check),
          el("td", { className: "trace" },
            el("a", { href, className: "trace-link" },
              r.rootService ? el("span", { className: "swatch", style: { background: serviceColor(r.rootService) } }) : null,
              r.rootService ? el("span", { className: "root-service" }, r.rootService) : el("span", { className: "warning" }, "(root span missing)"),
              r.rootService ? ": " : null,
              r.rootService ? el("span", { className: "root-op" }, r.rootOperation) : null),
            el("span", { className: "trace-id mono muted", title: r.id }, r.id.slice(0, 8))),
          el("td", { className: "start" }, el("time", { dateTime: new Date(r.start / 1000).toISOString() }, timestamp(r.start))),
          el("td", { className: "col-duration" },
            el("span", { className: "dur-text" }, duration(r.duration)),
            el("span", { className: "dur-bar", "aria-hidden": "true" },
              el("span", { style: { width: `${Math.max((r.duration / maxDur) * 100, 0.5)}%` } }))),
          el("td", { className: "num spans" }, String(r.spans)),
          el("td", { className: "services" }, ...r.services.map((s) =>
            el("span", { className: "svc", title: `${s.name}: ${s.spanCount} span${s.spanCount === 1 ? "" : "s"}${s.errorSpanCount ? `, ${s.errorSpanCount} with errors` : ""}` },
              el("span", { className: "swatch", style: { background: serviceColor(s.name) } }),
              s.name, " ", el("span", { className: "svc-count muted" }, String(s.spanCount))))),
          el("td", { className: "errors" }, r.errors
            ? el("span", { className: "badge error" }, `${r.errors} error${r.errors === 1 ? "" : "s"}`)
            : el("span", { className: "muted" }, "–")),
          el("td", { className: "actions" }, median
            ? el("a", { href: `/compare?a=${encodeURIComponent(r.id)}&search=${encodeURIComponent(median)}`,
              "aria-label": `Compare ${rootName} ${r.id.slice(0, 8)} against the median of these results` }, "vs. median")
            : null));
      }));
    }

    plot = scatterPlot(rows.map((r) => ({
      id: r.id, x: r.start, y: r.duration, error: r.errors > 0,
      label: r.rootService ? `${r.rootService}: ${r.rootOperation}` : `${r.id.slice(0, 8)} (root span missing)`,
    })), { onOpen: (id) => navigate(`/trace/${encodeURIComponent(id)}`) });
    plot.element.append(el("figcaption", { className: "muted" },
      "Trace duration over start time; red points have errors. Click a point to open the trace " +
      "(keyboard: Tab to the plot, arrow keys between points, Enter opens)."));
    resultArea.replaceChildren(plot.element, toolbar, el("div", { className: "table-scroll" }, table));
    fillTable();
    updateCompare();
  }

  // -- events
  serviceSel.addEventListener("change", () => loadOperations(serviceSel.value, ""));
  lookbackSel.addEventListener("change", () => {
    const custom = lookbackSel.value === "custom";
    if (custom && !fromInput.value && !toInput.value) {
      const now = Date.now();
      toInput.value = localInput(Math.ceil(now / 6e4) * 6e4);
      fromInput.value = localInput(Math.ceil(now / 6e4) * 6e4 - 3.6e6);
    }
    customBox.hidden = !custom;
  });
  tagsInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const p = formParams();
    clearErrors();
    try {
      queryFromParams(p);
    } catch (err) {
      if (!(err instanceof SearchInputError)) throw err;
      for (const [name, message] of Object.entries(err.fields)) showError(name, message);
      const first = Object.keys(FIELD_CONTROLS).find((k) => err.fields[k]);
      if (first) FIELD_CONTROLS[first].focus();
      return;
    }
    replaceParams(p, { push: true });
    runSearch(p);
  });

  // -- initial state: the operations and the search start now, in parallel with the services
  // and the stylesheet; the page appears when its stylesheet applies
  fillForm(params);
  if (runNow) runSearch(params);
  await css;
  if (ctx.signal.aborted) return;
  main.replaceChildren(el("h1", { className: "visually-hidden" }, "Search traces"), form, results);
  serviceSel.focus({ preventScroll: true });
  servicesPromise.then((names) => {
    if (ctx.signal.aborted) return;
    const keep = serviceSel.value;
    serviceSel.replaceChildren(el("option", { value: "" }, "All services"), ...names.map((n) => el("option", { value: n }, n)));
    ensureOption(serviceSel, keep);
  }, (err) => {
    if (ctx.signal.aborted || err.name === "AbortError") return;
    formAlert.textContent = `Could not load the services: ${err.message}`;
    formAlert.hidden = false;
  });

  return () => { for (const fn of cleanups) fn(); if (searchController) searchController.abort(); };
}
