// Alerts (`/alerts`): the alert rules with their current state (`/api/v1/alerts/rules`,
// `/api/v1/alerts`; docs/alerting.md), a form to add or change a rule of any type, and the
// history of transitions, notifications and rule changes (`/api/v1/alerts/history`), newest
// first.  The lists refresh every few seconds while the page is open; the form is left alone.
// A rule the API refuses is answered with its 400 message, shown next to the form with the
// field it names marked.
import { getJSON, ApiError, services as fetchServices, operations as fetchOperations } from "../lib/api.js";
import { duration, el, stylesheet, timestamp } from "../lib/format.js";

export const REFRESH_MS = 5000;
const TYPES = [
  ["error_rate", "Error rate above a threshold"],
  ["latency", "Latency quantile above a threshold"],
  ["latency_spike", "Latency quantile above k × its baseline"],
  ["throughput_drop", "Throughput below a rate or a share of its baseline"],
  ["missing", "No spans at all (missing traffic)"],
];
const KINDS = ["server", "client", "producer", "consumer", "internal", "unspecified"];
/** The type-specific fields each rule type takes. */
const TYPE_FIELDS = {
  error_rate: ["threshold", "minCalls"],
  latency: ["threshold", "quantile", "minCalls"],
  latency_spike: ["factor", "quantile", "baseline", "baselineWindow", "minCalls"],
  throughput_drop: ["threshold", "fraction", "baseline", "baselineWindow", "minCalls"],
  missing: [],
};
const SPECIFIC = ["threshold", "quantile", "factor", "fraction", "baseline", "baselineWindow", "minCalls"];
const THRESHOLD_LABEL = {
  error_rate: ["Error-rate threshold", "a ratio from 0 to 1: 0.05 fires above 5 % of calls failing"],
  latency: ["Latency threshold (ms)", "fires when the quantile is above this many milliseconds"],
  throughput_drop: ["Calls per second below", "either this or the fraction of the baseline's rate"],
};
const NUMBERS = new Set(["threshold", "quantile", "factor", "fraction", "minCalls"]);

async function send(method, path, body) {
  let response;
  try {
    response = await fetch(path, { method, headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(`The server did not answer (${path}): ${err.message}`, 0);
  }
  let answer = null;
  try { answer = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    throw new ApiError((answer && answer.error && answer.error.message) || `${response.status} ${response.statusText}`, response.status);
  }
  return answer;
}

// ------------------------------------------------------------------------------- formatting

const pct = (v) => `${+(v * 100).toFixed(v * 100 >= 10 ? 1 : 2)}%`;

/** A value in the unit the API names (ratio, ms, calls/s, calls). */
export function formatValue(v, unit) {
  if (v == null) return "–";
  if (unit === "ratio") return pct(v);
  if (unit === "ms") return duration(v * 1000);
  if (unit === "calls/s") return `${+v.toPrecision(3)} calls/s`;
  return `${v.toLocaleString("en")} ${v === 1 ? "call" : "calls"}`;
}

const when = (iso) => (iso ? timestamp(Date.parse(iso) * 1000) : "–");
const q = (quantile) => `p${+(quantile * 100).toFixed(2)}`;
const baselineText = (r) => (r.baseline === "previous" || !r.baseline ? `the ${r.baselineWindow || "1h"} before` : `${r.baseline} earlier`);

/** The rule's condition in words: "error rate > 5% over 5m, for 1m". */
export function describeRule(r) {
  let cond;
  switch (r.type) {
    case "error_rate": cond = `error rate > ${pct(r.threshold)}`; break;
    case "latency": cond = `${q(r.quantile)} > ${duration(r.threshold * 1000)}`; break;
    case "latency_spike": cond = `${q(r.quantile)} > ${r.factor}× its value ${baselineText(r)}`; break;
    case "throughput_drop": cond = r.threshold != null ? `calls/s < ${r.threshold}`
      : `calls/s < ${pct(r.fraction)} of the rate ${baselineText(r)}`; break;
    case "missing": cond = "no spans"; break;
    default: cond = r.type;
  }
  const forText = r.for && r.for !== "0" ? `, for ${r.for}` : "";
  const min = r.minCalls > 1 ? ` (at least ${r.minCalls} calls)` : "";
  return `${cond} over ${r.window}${forText}${min}`;
}

const scope = (r) => [r.service, r.operation, r.kind && `${r.kind} spans`].filter(Boolean).join(" · ");

// ------------------------------------------------------------------------------------- form

/** "key=value" lines → object; throws naming the field and the line. */
function parseMap(name, text) {
  const out = {};
  text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const at = line.indexOf("=");
    if (at <= 0) throw new ApiError(`${name}: line ${i + 1} (“${line.slice(0, 40)}”) is not key=value`, 400);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return out;
}

const mapText = (m) => Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join("\n");

function ruleForm({ rule, serviceNames, onSaved, onCancel }) {
  const editing = !!rule;
  const r = rule || { type: "error_rate", window: "5m", for: "0", enabled: true };
  const ids = (n) => `alert-${n}`;
  const problems = el("p", { className: "error alert-form-error", id: "alert-form-error", role: "alert" });
  const inputs = {};
  const hints = {};
  const field = (name, label, control, hint) => {
    control.id = ids(name);
    control.name = name;
    inputs[name] = control;
    hints[name] = hint !== undefined ? el("span", { className: "hint muted" }, hint) : null;
    return el("div", { className: `alert-field field-${name}`, dataset: { field: name } },
      el("label", { htmlFor: control.id }, label), control, hints[name]);
  };
  const text = (value, props = {}) => el("input", { type: "text", autocomplete: "off", spellcheck: "false", value: value ?? "", ...props });
  const number = (value) => el("input", { type: "number", step: "any", value: value ?? "" });
  const services = el("datalist", { id: "alert-services" }, serviceNames.map((n) => el("option", { value: n })));
  const operations = el("datalist", { id: "alert-operations" });
  const type = el("select", null, TYPES.map(([v, label]) => el("option", { value: v, selected: v === r.type }, `${v} — ${label}`)));
  const kind = el("select", null, el("option", { value: "" }, "any kind"), KINDS.map((k) => el("option", { value: k, selected: k === r.kind }, k)));
  const enabled = el("input", { type: "checkbox", id: ids("enabled"), name: "enabled", checked: r.enabled !== false });
  inputs.enabled = enabled;
  const thresholdLabel = el("span");

  const specific = {
    threshold: field("threshold", thresholdLabel, number(r.threshold), ""),
    quantile: field("quantile", "Quantile", number(r.quantile), "0 < q ≤ 1; default 0.95 (p95)"),
    factor: field("factor", "Factor (× baseline)", number(r.factor), "at least 1; 2 fires at twice the baseline"),
    fraction: field("fraction", "Fraction of the baseline's rate", number(r.fraction), "0 < f < 1; or give calls per second"),
    baseline: field("baseline", "Baseline", text(r.baseline), "previous (the window before) or an offset: 1d, 7d"),
    baselineWindow: field("baselineWindow", "Baseline window", text(r.baselineWindow), "with previous; default 1h"),
    minCalls: field("minCalls", "Minimum calls", number(r.minCalls), "fewer calls in the window: no alert (default 1)"),
  };
  const showType = () => {
    const t = type.value;
    for (const [name, node] of Object.entries(specific)) node.hidden = !TYPE_FIELDS[t].includes(name);
    const [label, hint] = THRESHOLD_LABEL[t] || ["Threshold", ""];
    thresholdLabel.textContent = label;
    hints.threshold.textContent = hint;
  };
  type.addEventListener("change", showType);

  const service = text(r.service, { list: "alert-services" });
  const loadOperations = async () => {
    operations.replaceChildren();
    if (!service.value.trim()) return;
    try {
      const ops = await fetchOperations(service.value.trim());
      operations.replaceChildren(...[...new Set(ops.map((o) => o.name))].map((n) => el("option", { value: n })));
    } catch { /* suggestions only */ }
  };
  service.addEventListener("change", loadOperations);
  if (r.service) loadOperations();

  const submit = el("button", { type: "submit", className: "primary" }, editing ? "Save rule" : "Add rule");
  const form = el("form", { className: "alert-form", "aria-labelledby": "alert-form-title", novalidate: true },
    el("h2", { id: "alert-form-title" }, editing ? `Edit rule ${r.name}` : "New rule"),
    services, operations,
    el("div", { className: "alert-grid" },
      editing ? null : field("id", "Rule ID (optional)", text(""), "letters, digits . _ : -; made up when left empty"),
      field("name", "Name", text(r.name)),
      field("type", "Type", type),
      field("service", "Service", service),
      field("operation", "Operation (optional)", text(r.operation, { list: "alert-operations" })),
      field("kind", "Span kind", kind),
      field("window", "Window", text(r.window), "e.g. 30s, 5m, 1h"),
      field("for", "For", text(r.for), "how long it must hold before firing; 0 fires at once"),
      ...Object.values(specific),
      field("labels", "Labels", el("textarea", { rows: 2, placeholder: "severity=page" }, mapText(r.labels)), "key=value, one a line"),
      field("annotations", "Annotations", el("textarea", { rows: 2, placeholder: "runbook=https://…" }, mapText(r.annotations)), "key=value, one a line"),
      field("webhooks", "Webhooks", el("textarea", { rows: 2, placeholder: "https://relay.example/hook" }, (r.webhooks || []).join("\n")),
        "one URL a line; none: alerting.default_webhook"),
      el("div", { className: "alert-field field-enabled" }, el("label", { className: "check" }, enabled, " Enabled"))),
    problems,
    el("div", { className: "alert-buttons" }, submit,
      el("button", { type: "button", onclick: () => onCancel() }, "Cancel")));
  showType();

  const clearMarks = () => {
    problems.textContent = "";
    for (const node of Object.values(inputs)) { node.removeAttribute("aria-invalid"); node.removeAttribute("aria-describedby"); }
  };
  const body = () => {
    const out = {};
    const t = type.value;
    for (const [name, node] of Object.entries(inputs)) {
      if (name === "enabled" || name === "labels" || name === "annotations" || name === "webhooks") continue;
      if (SPECIFIC.includes(name) && !TYPE_FIELDS[t].includes(name)) continue;
      const v = node.value.trim();
      if (!v) continue;
      out[name] = NUMBERS.has(name) && v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
    }
    out.labels = parseMap("labels", inputs.labels.value);
    out.annotations = parseMap("annotations", inputs.annotations.value);
    out.webhooks = inputs.webhooks.value.split("\n").map((l) => l.trim()).filter(Boolean);
    out.enabled = enabled.checked;
    return out;
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearMarks();
    submit.disabled = true;
    try {
      const b = body();
      const saved = editing
        ? await send("PUT", `/api/v1/alerts/rules/${encodeURIComponent(r.id)}`, b)
        : await send("POST", "/api/v1/alerts/rules", b);
      onSaved(saved, editing);
    } catch (err) {
      problems.textContent = err.message;
      const name = /^([A-Za-z]+)/.exec(err.message)?.[1];
      const node = inputs[name];
      if (node) {
        node.setAttribute("aria-invalid", "true");
        node.setAttribute("aria-describedby", "alert-form-error");
        node.focus();
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// ------------------------------------------------------------------------------------ views

function stateBadge(a, rule) {
  const state = rule && !rule.enabled ? "disabled" : a ? a.state : "inactive";
  return el("span", { className: `badge state state-${state}`, "data-testid": "alert-state" }, state);
}

function examples(ids) {
  if (!ids || !ids.length) return null;
  return el("span", { className: "alert-examples" }, ids.map((id) =>
    el("a", { href: `/trace/${encodeURIComponent(id)}`, className: "mono", title: id, "aria-label": `example trace ${id}` }, id.slice(0, 8))));
}

function rulesTable(rules, alerts, actions) {
  const byId = new Map(alerts.map((a) => [a.ruleId, a]));
  return el("table", { className: "alert-rules", "aria-label": "Alert rules" },
    el("thead", null, el("tr", null, ["State", "Rule", "Condition", "Value", "Since", "Example traces", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, rules.map((r) => {
      const a = byId.get(r.id);
      const confirm = el("span", { className: "alert-confirm", hidden: true }, `Delete “${r.name}”? `,
        el("button", { type: "button", className: "danger", onclick: () => actions.remove(r) }, "Yes, delete"), " ",
        el("button", { type: "button", onclick: (e) => { confirm.hidden = true; buttons.hidden = false; buttons.querySelector("button").focus(); } }, "Keep"));
      const buttons = el("span", { className: "alert-actions" },
        el("button", { type: "button", onclick: () => actions.edit(r) }, "Edit"), " ",
        el("button", { type: "button", onclick: () => actions.toggle(r) }, r.enabled ? "Disable" : "Enable"), " ",
        el("button", { type: "button", onclick: () => { buttons.hidden = true; confirm.hidden = false; confirm.querySelector("button").focus(); } }, "Delete"));
      return el("tr", { dataset: { ruleId: r.id }, className: a && r.enabled ? `row-${a.state}` : undefined },
        el("td", null, stateBadge(a, r)),
        el("td", null, el("strong", null, r.name), el("br"), el("span", { className: "muted" }, scope(r)), el("br"),
          el("span", { className: "mono muted small" }, r.id)),
        el("td", null, `${r.type}: ${describeRule(r)}`),
        el("td", { className: "num" }, a ? formatValue(a.value, a.unit) : "–",
          a && a.threshold != null && r.type !== "missing" ? el("span", { className: "muted small" }, ` (limit ${formatValue(a.threshold, a.unit)})`) : null,
          a && a.lastError ? el("span", { className: "error small block" }, a.lastError) : null),
        el("td", null, a && a.state !== "inactive" ? when(a.since) : "–"),
        el("td", null, examples(a && a.exampleTraceIds) || "–"),
        el("td", null, buttons, confirm));
    })));
}

function historyDetails(e, units) {
  if (e.event === "transition") {
    // Values in the rule's unit while the rule exists; as numbers once it is gone.
    const unit = units.get(e.ruleId);
    const fmt = (v) => (unit ? formatValue(v, unit) : String(+Number(v).toPrecision(4)));
    return [`${e.from} → ${e.to}`, e.value != null ? ` (value ${fmt(e.value)}` : "",
      e.value != null && e.threshold != null ? `, limit ${fmt(e.threshold)})` : e.value != null ? ")" : "",
      e.reason ? `: ${e.reason}` : "", e.exampleTraceIds && e.exampleTraceIds.length ? [" — examples ", examples(e.exampleTraceIds)] : null];
  }
  if (e.event === "notification") {
    return [`${e.status || ""}${e.repeat ? " (repeated)" : ""} to ${e.webhook}: attempt ${e.attempt}, ${e.outcome}`,
      e.httpStatus ? ` (HTTP ${e.httpStatus})` : "", e.error ? ` — ${e.error}` : "", e.retryInS ? `, next try in ${e.retryInS}s` : ""];
  }
  if (e.event === "rule") return [`rule ${e.action === "create" ? "added" : e.action === "delete" ? "deleted" : "changed"}`];
  return [JSON.stringify(e)];
}

function historyTable(entries, units) {
  if (!entries.length) return el("p", { className: "muted" }, "Nothing has happened yet.");
  return el("table", { className: "alert-history", "aria-label": "Alert history" },
    el("thead", null, el("tr", null, ["Time", "Rule", "Event", "Details"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, entries.map((e) => el("tr", { className: `event-${e.event}${e.to ? ` to-${e.to}` : ""}${e.outcome ? ` outcome-${e.outcome}` : ""}` },
      el("td", { className: "nowrap" }, when(e.time)),
      el("td", null, e.name || e.ruleId || "–"),
      el("td", null, e.event),
      el("td", null, ...historyDetails(e, units).flat())))));
}

// ------------------------------------------------------------------------------------ page

const FOCUSABLE = "a[href], button, input, select, textarea";

/** Re-render `slot` (by `redraw`) without losing the keyboard's place: the focused control of
 *  a row (and an open delete confirmation) is found again in the row with the same key. */
function keepFocus(slot, redraw) {
  const rowKey = (tr) => tr.dataset.ruleId ?? [...tr.parentNode.children].indexOf(tr);
  const active = document.activeElement;
  const tr = active && slot.contains(active) ? active.closest("tr") : null;
  const at = tr ? [...tr.querySelectorAll(FOCUSABLE)].indexOf(active) : -1;
  const key = tr ? rowKey(tr) : null;
  const confirming = [...slot.querySelectorAll(".alert-confirm:not([hidden])")].map((c) => rowKey(c.closest("tr")));
  redraw();
  for (const row of slot.querySelectorAll("tbody tr")) {
    const k = rowKey(row);
    if (confirming.includes(k)) {
      row.querySelector(".alert-actions").hidden = true;
      row.querySelector(".alert-confirm").hidden = false;
    }
    if (tr && k === key) row.querySelectorAll(FOCUSABLE)[at]?.focus();
  }
}

export async function render(main, ctx) {
  stylesheet("/ui/pages/alerts.css");
  const opts = { signal: ctx.signal };
  const newButton = el("button", { type: "button", className: "primary" }, "New rule");
  const formSlot = el("div", { className: "alert-form-slot" });
  const status = el("p", { className: "loading", role: "status", "data-testid": "alerts-status" }, "Loading the alert rules…");
  const rulesSlot = el("div");
  const historySlot = el("div");
  const problem = el("p", { className: "error", role: "alert", hidden: true });
  main.append(el("div", { className: "alert-head" }, el("h1", null, "Alerts"), newButton),
    el("p", { className: "muted" }, "Rules evaluated on the RED metrics counted at ingest, before sampling. The lists refresh every few seconds."),
    problem, formSlot, el("h2", null, "Rules"), status, rulesSlot, el("h2", null, "History"), historySlot);
  let serviceNames = [];
  fetchServices(opts).then((s) => { serviceNames = s; }).catch(() => {});
  let rules = [];
  let timer = null;
  const shown = { rules: null, history: null };

  const toast = (message) => {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = message;
    t.hidden = false;
    clearTimeout(t._timer);
    t._timer = setTimeout(() => { t.hidden = true; }, 3000);
  };
  const showError = (err) => {
    problem.hidden = false;
    problem.textContent = err.message;
  };

  async function refresh() {
    clearTimeout(timer);
    try {
      const [r, a, h] = await Promise.all([getJSON("/api/v1/alerts/rules", null, opts), getJSON("/api/v1/alerts", null, opts),
        getJSON("/api/v1/alerts/history", { limit: 100 }, opts)]);
      if (ctx.signal.aborted) return;
      rules = r.rules;
      problem.hidden = true;
      const firing = a.alerts.filter((x) => x.enabled && x.state === "firing").length;
      const pending = a.alerts.filter((x) => x.enabled && x.state === "pending").length;
      status.className = "muted";
      status.textContent = rules.length
        ? `${rules.length} ${rules.length === 1 ? "rule" : "rules"}: ${firing} firing, ${pending} pending.`
        : "No alert rules yet. Add one with “New rule”.";
      const alertsKey = JSON.stringify([rules, a.alerts.map(({ lastEvaluation, ...rest }) => rest)]);
      if (alertsKey !== shown.rules) {
        shown.rules = alertsKey;
        keepFocus(rulesSlot, () => rulesSlot.replaceChildren(rules.length ? rulesTable(rules, a.alerts, actions) : ""));
      }
      const units = new Map(a.alerts.map((x) => [x.ruleId, x.unit]));
      const historyKey = JSON.stringify([h.entries, [...units]]);
      if (historyKey !== shown.history) {
        shown.history = historyKey;
        keepFocus(historySlot, () => historySlot.replaceChildren(historyTable(h.entries, units)));
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      if (!rules.length) {
        status.className = "error";
        status.textContent = `Could not load the alert rules: ${err.message}`;
      } else showError(err);
    }
    if (!ctx.signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  }

  const closeForm = () => { formSlot.replaceChildren(); newButton.disabled = false; };
  const openForm = (rule) => {
    newButton.disabled = true;
    const form = ruleForm({
      rule, serviceNames,
      onSaved: (saved, edited) => { closeForm(); toast(`Rule “${saved.name}” ${edited ? "saved" : "added"}.`); refresh(); newButton.focus(); },
      onCancel: () => { closeForm(); newButton.focus(); },
    });
    formSlot.replaceChildren(form);
    form.querySelector("input, select").focus();
  };
  const actions = {
    edit: (r) => openForm(r),
    toggle: async (r) => {
      try {
        await send("PUT", `/api/v1/alerts/rules/${encodeURIComponent(r.id)}`, { ...r, enabled: !r.enabled });
        toast(`Rule “${r.name}” ${r.enabled ? "disabled" : "enabled"}.`);
      } catch (err) { showError(err); }
      refresh();
    },
    remove: async (r) => {
      try {
        await send("DELETE", `/api/v1/alerts/rules/${encodeURIComponent(r.id)}`);
        toast(`Rule “${r.name}” deleted.`);
      } catch (err) { showError(err); }
      refresh();
    },
  };
  newButton.addEventListener("click", () => openForm(null));
  await refresh();
  return () => clearTimeout(timer);
}
