// The compare page: `/compare?a=<traceId>&b=<traceId>` puts two traces on one tree, matched by
// service/operation path (lib/compare.js), with each node's duration in A and B and the
// difference; `/compare?a=<traceId>&search=<search-page query string>` compares trace A with
// the median of the traces that search finds (up to 20, A itself left out).  View options live
// in the URL too: `order=diff` (largest differences first) and `changed=1` (changed nodes only).
import { trace as fetchTrace, traceSummaries, ApiError } from "../lib/api.js";
import { compare, medianProfile, profile } from "../lib/compare.js";
import { duration, el, serviceColor, stylesheet } from "../lib/format.js";
import { parseOTLP } from "../lib/model.js";
import { navigate, replaceParams } from "../lib/nav.js";
import { queryFromParams } from "./search.js";

export const MEDIAN_TRACES = 20;
const MAX_ROWS = 3000;

async function loadTrace(id, signal) {
  let doc;
  try {
    doc = await fetchTrace(id, { signal });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw new Error(`Trace ${id} was not found.`);
    throw err;
  }
  const traces = parseOTLP(doc);
  const want = id.toLowerCase().replace(/^0+/, "");
  return traces.find((t) => t.traceId.replace(/^0+/, "") === want) || traces[0];
}

/** Run `fn` over `items`, `width` at a time. */
async function pool(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }));
  return out;
}

/** The search text a user typed: a query string, with or without "?", or a search page URL. */
export function searchString(text) {
  const s = String(text || "").trim();
  const q = s.indexOf("?");
  return q >= 0 ? s.slice(q + 1) : s;
}

const signed = (us) => (us > 0 ? "+" : us < 0 ? "−" : "±") + duration(Math.abs(us));
const signedPct = (p) => {
  if (!Number.isFinite(p)) return p > 0 ? "new" : "–";
  const a = Math.abs(p);
  return (p > 0 ? "+" : p < 0 ? "−" : "±") + (a >= 10 ? Math.round(a) : +a.toFixed(1)) + "%";
};
const shortId = (id) => (id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);

function pickForm(params) {
  const mode = params.has("search") && !params.has("b") ? "median" : "trace";
  const a = el("input", { id: "cmp-a", name: "a", className: "mono", value: params.get("a") || "", autocomplete: "off",
    spellcheck: "false", placeholder: "trace ID", required: true });
  const b = el("input", { id: "cmp-b", name: "b", className: "mono", value: params.get("b") || "", autocomplete: "off",
    spellcheck: "false", placeholder: "trace ID" });
  const search = el("input", { id: "cmp-search", name: "search", value: params.get("search") || "", autocomplete: "off",
    spellcheck: "false", placeholder: "service=frontend&lookback=1h, or a search page address" });
  const radio = (value, label) => el("label", { className: "check" },
    el("input", { type: "radio", name: "mode", value, checked: mode === value }), ` ${label}`);
  const bBox = el("div", { className: "cmp-field", hidden: mode !== "trace" }, el("label", { htmlFor: "cmp-b" }, "Trace B"), b);
  const sBox = el("div", { className: "cmp-field cmp-search", hidden: mode !== "median" },
    el("label", { htmlFor: "cmp-search" }, "Search (the search page's query)"), search);
  const problem = el("p", { className: "error", role: "alert" });
  const form = el("form", { className: "cmp-form", "aria-label": "Traces to compare" },
    el("div", { className: "cmp-field" }, el("label", { htmlFor: "cmp-a" }, "Trace A"), a),
    el("fieldset", { className: "cmp-mode" }, el("legend", null, "Compare A with"),
      radio("trace", "another trace"), radio("median", `the median of a search's traces (up to ${MEDIAN_TRACES})`)),
    bBox, sBox, el("div", { className: "cmp-field" }, el("button", { type: "submit", className: "primary" }, "Compare")), problem);
  form.addEventListener("change", (e) => {
    if (e.target.name !== "mode") return;
    bBox.hidden = e.target.value !== "trace";
    sBox.hidden = e.target.value !== "median";
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const median = form.elements.mode.value === "median";
    const q = new URLSearchParams({ a: a.value.trim() });
    if (!q.get("a")) { problem.textContent = "Enter the ID of trace A."; a.focus(); return; }
    if (median) {
      const s = searchString(search.value);
      if (!s) { problem.textContent = "Enter a search (e.g. service=frontend&lookback=1h)."; search.focus(); return; }
      q.set("search", s);
    } else {
      if (!b.value.trim()) { problem.textContent = "Enter the ID of trace B."; b.focus(); return; }
      q.set("b", b.value.trim());
    }
    navigate(`/compare?${q}`);
  });
  return form;
}

export async function render(main, ctx) {
  stylesheet("/ui/pages/compare.css");
  const params = ctx.params;
  main.append(el("h1", null, "Compare traces"), pickForm(params));
  const idA = (params.get("a") || "").trim(), idB = (params.get("b") || "").trim();
  const search = params.has("b") ? null : params.get("search");
  if (!idA || (!idB && !search)) {
    main.append(el("p", { className: "muted" },
      "Compare two traces node by node — spans are matched by their service and operation path from the root — ",
      "or one trace against the median of the traces a search finds."));
    return;
  }
  const status = el("p", { className: "loading", role: "status" }, "Loading the traces…");
  main.append(status);
  const fail = (msg) => {
    status.className = "error";
    status.setAttribute("role", "alert");
    status.textContent = msg;
  };
  let traceA, side;
  try {
    if (search) {
      let found;
      try {
        found = queryFromParams(new URLSearchParams(search));
      } catch (err) {
        fail(`The search does not parse: ${err.message}`);
        return;
      }
      const query = { ...found.query, searchDepth: Math.min(found.limit, MAX_TRACES_ASKED) };
      const [a, summaries] = await Promise.all([loadTrace(idA, ctx.signal), traceSummaries(query, { signal: ctx.signal })]);
      traceA = a;
      const ids = summaries.map((s) => s.traceId).filter((id) => id.replace(/^0+/, "") !== a.traceId.replace(/^0+/, ""))
        .slice(0, MEDIAN_TRACES);
      if (!ids.length) { fail("The search found no other traces to compare with: widen it (a longer time range, fewer conditions)."); return; }
      status.textContent = `Loading ${ids.length} traces for the median…`;
      const traces = await pool(ids, 4, (id) => loadTrace(id, ctx.signal).catch((err) => {
        if (err.name === "AbortError") throw err;
        return null; // a trace gone since the search: left out
      }));
      const loaded = traces.filter(Boolean);
      if (!loaded.length) { fail("None of the traces the search found could be loaded."); return; }
      side = { profile: medianProfile(loaded, `median of ${loaded.length} trace${loaded.length > 1 ? "s" : ""}`), median: true,
        href: `/search?${search}`, count: loaded.length };
    } else {
      const [a, b] = await Promise.all([loadTrace(idA, ctx.signal), loadTrace(idB, ctx.signal)]);
      traceA = a;
      side = { profile: profile(b, "B"), median: false, trace: b, href: `/trace/${encodeURIComponent(b.traceId)}` };
    }
  } catch (err) {
    if (err.name === "AbortError") return;
    fail(err.message || String(err));
    return;
  }
  status.remove();
  const profA = profile(traceA, "A");
  const result = side.median ? compare(side.profile, profA) : compare(profA, side.profile);
  showComparison(main, ctx, traceA, side, result);
}

const MAX_TRACES_ASKED = 21; // the median's 20 and trace A, should the search find it

function showComparison(main, ctx, traceA, side, result) {
  // compare(base, other) measures other − base.  Two traces: base A, other B ("B is slower").
  // Against the median: base the median, other A ("A is slower than the median").
  const median = side.median;
  const colA = (row) => (median ? row.b : row.a);
  const colB = (row) => (median ? row.a : row.b);
  const onlyIn = (row) => (row.only === null ? null : (row.only === "a") === !median ? "a" : "b"); // by column
  const otherName = median ? "the median" : "B";
  const { summary } = result;
  const sumA = median ? summary.b : summary.a, sumB = median ? summary.a : summary.b;
  const url = new URLSearchParams(ctx.params);
  const state = { order: url.get("order") === "diff" ? "diff" : "tree", changed: url.get("changed") === "1", collapsed: new Set() };
  const rootLabel = (t) => { const r = t.roots[0]; return r ? `${r.service}: ${r.name}` : ""; };
  const most = summary.most;
  const slowerText = median ? "slower than median" : "slower in B", fasterText = median ? "faster than median" : "faster in B";
  const onlyText = (o) => (o === "a" ? "only in A" : median ? "only in median" : "only in B");
  const diffWords = (d) => (d === 0 ? "" : median ? `A is ${d > 0 ? "slower" : "faster"} than the median`
    : `B is ${d > 0 ? "slower" : "faster"}`);
  const spans = (n) => `${Number.isInteger(n) ? n : n.toFixed(1)} spans`;
  const onlyCount = (o) => result.rows.filter((r) => onlyIn(r) === o).length;

  const rowFor = new Map();
  const focusRow = (key) => {
    if (state.changed && !rowVisibleWhenFiltered(key)) { state.changed = false; changedBox.checked = false; }
    for (let k = result.byKey.get(key).parentKey; k !== null; k = result.byKey.get(k).parentKey) state.collapsed.delete(k);
    draw();
    const tr = rowFor.get(key);
    if (tr) { tr.scrollIntoView({ block: "center" }); tr.focus(); }
  };

  const summaryBox = el("section", { className: "cmp-summary", "aria-label": "Summary", "data-testid": "compare-summary" },
    el("dl", null,
      el("div", null, el("dt", null, "A"), el("dd", null,
        el("a", { href: `/trace/${encodeURIComponent(traceA.traceId)}`, className: "mono" }, shortId(traceA.traceId)), " ",
        el("span", { className: "muted" }, rootLabel(traceA)), " — ",
        el("strong", null, duration(sumA.duration)), `, ${spans(sumA.spanCount)}`)),
      el("div", null, el("dt", null, median ? "Median" : "B"), el("dd", null,
        median
          ? el("a", { href: side.href, "data-testid": "compare-b-label" }, side.profile.label)
          : el("a", { href: side.href, className: "mono", "data-testid": "compare-b-label" }, shortId(side.trace.traceId)),
        " ", median ? "" : el("span", { className: "muted" }, `${rootLabel(side.trace)} `),
        "— ", el("strong", null, duration(sumB.duration)), `, ${spans(sumB.spanCount)}`,
        median ? el("span", { className: "muted" }, " (medians of the trace durations and span counts)") : "")),
      el("div", null, el("dt", null, "Difference"), el("dd", {
        className: summary.diff > 0 ? "slower" : summary.diff < 0 ? "faster" : "", "data-testid": "compare-total-diff" },
      `${signed(summary.diff)} (${signedPct(summary.pct)}) ${diffWords(summary.diff)}`)),
      el("div", null, el("dt", null, "Nodes"), el("dd", null,
        `${summary.matched} in both, ${onlyCount("a")} only in A, ${onlyCount("b")} only in ${otherName}`)),
      most ? el("div", null, el("dt", null, "Changed most"), el("dd", { "data-testid": "compare-most" },
        el("button", { type: "button", className: "linkish", onclick: () => focusRow(most.key) }, `${most.service}: ${most.name}`),
        ` — self time ${signed(most.selfDiff)}`,
        most.only ? ` (${onlyText(onlyIn(most))})` : `, duration ${signed(most.diff)} (${signedPct(most.pct)})`)) : ""));

  const orderSel = el("select", { id: "cmp-order" },
    el("option", { value: "tree", selected: state.order === "tree" }, "Tree (by start)"),
    el("option", { value: "diff", selected: state.order === "diff" }, "Largest difference first"));
  const changedBox = el("input", { type: "checkbox", id: "cmp-changed", checked: state.changed });
  const shown = el("span", { className: "muted", role: "status" });
  const controls = el("div", { className: "cmp-controls" },
    el("label", { htmlFor: "cmp-order" }, "Order"), orderSel,
    el("label", { className: "check" }, changedBox, " Only changed nodes"), shown);
  const writeState = () => {
    const p = new URLSearchParams(ctx.params);
    p.delete("order"); p.delete("changed");
    if (state.order === "diff") p.set("order", "diff");
    if (state.changed) p.set("changed", "1");
    replaceParams(p);
  };
  orderSel.addEventListener("change", () => { state.order = orderSel.value; writeState(); draw(); });
  changedBox.addEventListener("change", () => { state.changed = changedBox.checked; writeState(); draw(); });

  const marked = (row) => row.change !== null || row.only !== null;
  // In the tree, "changed only" keeps the ancestors of changed nodes for context.
  const keep = new Set();
  for (const row of result.rows) {
    if (!marked(row)) continue;
    for (let k = row.key; k !== null && !keep.has(k); k = result.byKey.get(k).parentKey) keep.add(k);
  }
  const rowVisibleWhenFiltered = (key) => keep.has(key);

  const tbody = el("tbody");
  const table = el("table", { className: "cmp-table", "aria-label": "Span comparison" },
    el("thead", null, el("tr", null,
      el("th", { scope: "col" }, "Service: operation"),
      el("th", { scope: "col", className: "num" }, "A"),
      el("th", { scope: "col", className: "num" }, side.median ? "Median" : "B"),
      el("th", { scope: "col", className: "num" }, "Difference"),
      el("th", { scope: "col", className: "num" }, "%"),
      el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Marks")))),
    tbody);
  const scale = Math.max(1, ...result.rows.map((r) => (Number.isFinite(r.diff) ? Math.abs(r.diff) : 0)));

  const spanLink = (t, node) => node && node.span
    ? el("a", { href: `/trace/${encodeURIComponent(t.traceId)}?span=${encodeURIComponent(node.span.spanId)}` }, duration(node.duration))
    : node ? duration(node.duration) : el("span", { className: "muted" }, "–");

  function rowEl(row, treeMode) {
    const occ = Number(row.key.slice(row.key.lastIndexOf("#") + 1));
    const hasKids = treeMode && row.children.length > 0;
    const open = !state.collapsed.has(row.key);
    const toggle = hasKids
      ? el("button", { type: "button", className: "cmp-toggle", "aria-expanded": String(open),
        "aria-label": `${open ? "Collapse" : "Expand"} ${row.service}: ${row.name}`,
        onclick: () => { if (open) state.collapsed.add(row.key); else state.collapsed.delete(row.key); draw(); } }, open ? "▾" : "▸")
      : el("span", { className: "cmp-toggle-space" });
    const marks = [];
    const only = onlyIn(row), a = colA(row), b = colB(row);
    if (only) marks.push(el("span", { className: `badge only-${only}` }, onlyText(only)));
    if (row.change === "slower") marks.push(el("span", { className: "badge slower" }, slowerText));
    if (row.change === "faster") marks.push(el("span", { className: "badge faster" }, fasterText));
    if (most && row.key === most.key) marks.push(el("span", { className: "badge most" }, "changed most"));
    if ((a && a.error) || (b && b.error)) {
      marks.push(el("span", { className: "badge error" }, a && a.error && b && b.error ? "error in both"
        : a && a.error ? "error in A" : median ? "error in most" : "error in B"));
    }
    const intensity = Number.isFinite(row.diff) ? Math.min(1, Math.abs(row.diff) / scale) : 0;
    const bCell = median && b && b.count < side.count
      ? [duration(b.duration), el("span", { className: "muted" }, ` (${b.count} of ${side.count})`)]
      : [median ? (b ? duration(b.duration) : el("span", { className: "muted" }, "–")) : spanLink(side.trace, b)];
    const tr = el("tr", {
      className: ["cmp-row", row.change, only ? `only-${only}` : ""].filter(Boolean).join(" "),
      "data-testid": "compare-row", "data-path": row.path, "data-key": row.key, tabindex: "-1",
      "aria-level": treeMode ? String(row.depth + 1) : undefined,
      style: { "--cmp-intensity": String(intensity) },
    },
    el("th", { scope: "row", className: "cmp-name", style: { paddingLeft: `${(treeMode ? row.depth : 0) * 1.1 + 0.3}rem` } },
      toggle, el("span", { className: "swatch", style: { background: serviceColor(row.service) } }),
      el("span", { className: "cmp-svc" }, row.service), ": ", row.name,
      occ > 0 ? el("span", { className: "muted" }, ` #${occ + 1}`) : "",
      !treeMode && row.parentKey !== null ? el("div", { className: "cmp-path muted" }, row.path.split("/").slice(0, -1).join(" › ")) : ""),
    el("td", { className: "num" }, spanLink(traceA, a)),
    el("td", { className: "num" }, ...bCell),
    el("td", { className: "num cmp-diff" }, Number.isFinite(row.diff) ? signed(row.diff) : ""),
    el("td", { className: "num" }, Number.isFinite(row.diff) ? signedPct(row.pct) : ""),
    el("td", { className: "cmp-marks" }, ...marks));
    rowFor.set(row.key, tr);
    return tr;
  }

  function draw() {
    rowFor.clear();
    let list;
    const treeMode = state.order === "tree";
    if (treeMode) {
      list = [];
      const stack = [...result.roots].reverse();
      while (stack.length) {
        const row = result.byKey.get(stack.pop());
        if (state.changed && !keep.has(row.key)) continue;
        list.push(row);
        if (state.collapsed.has(row.key)) continue;
        for (let i = row.children.length - 1; i >= 0; i--) stack.push(row.children[i]);
      }
    } else {
      const size = (r) => (Number.isFinite(r.diff) ? Math.abs(r.diff) : (r.a || r.b).duration);
      list = result.rows.filter((r) => !state.changed || marked(r)).sort((x, y) => size(y) - size(x));
    }
    const total = list.length;
    if (list.length > MAX_ROWS) list = list.slice(0, MAX_ROWS);
    tbody.replaceChildren(...list.map((r) => rowEl(r, treeMode)));
    shown.textContent = `${total} of ${result.rows.length} nodes shown${total > MAX_ROWS ? ` (the first ${MAX_ROWS} listed)` : ""}`;
  }
  draw();
  main.append(summaryBox, controls, el("div", { className: "cmp-table-wrap" }, table));
}
