// Comparing traces node by node.  A node is a span's place in its trace: its path of
// service:operation pairs from the root (model.pathKey), where repeated siblings with the same
// service and operation are told apart by their order among those siblings (by start time),
// so the second "db: SELECT" under a request matches the second one in the other trace.
//
//   profile(trace)            -> Profile: the trace's nodes by key
//   medianProfile(traces)     -> Profile: per key the median duration and self time over the
//                                traces, keeping the nodes found in at least half of them
//   compare(base, other)      -> {rows (tree order), byKey, summary}; differences are
//                                other − base (B − A for two traces; A − median)
//
// Durations are microseconds.

import { pathKey } from "./model.js";

/** The median of numbers (the mean of the middle two for an even count); NaN for none. */
export function median(values) {
  if (!values.length) return NaN;
  const v = [...values].sort((x, y) => x - y);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * A trace as a profile: {nodes: Map<key, node>, order: [key] (tree order), duration, spanCount,
 * label}.  node = {key, path, service, name, parentKey, depth, duration, self, error, span, count}.
 */
export function profile(trace, label = "") {
  const nodes = new Map(), order = [];
  const keyOf = new Map();
  const place = (list, parentKey) => {
    const seen = new Map();
    for (const s of list) {
      const seg = `${s.service}:${s.name}`;
      const n = seen.get(seg) || 0;
      seen.set(seg, n + 1);
      const key = `${parentKey === null ? "" : `${parentKey}/`}${seg}#${n}`;
      keyOf.set(s, key);
      nodes.set(key, {
        key, path: pathKey(s), service: s.service, name: s.name, parentKey, depth: s.depth,
        duration: s.duration, self: s.selfTime, error: s.error, span: s, count: 1,
      });
    }
  };
  // trace.spans is in tree order (depth first, children by start), so parents come first.
  place(trace.roots, null);
  for (const s of trace.spans) {
    order.push(keyOf.get(s));
    if (s.children.length) place(s.children, keyOf.get(s));
  }
  return { nodes, order, duration: trace.duration, spanCount: trace.spans.length, label, traces: 1 };
}

/** The median profile of several traces: a node is kept when at least half of the traces have
 *  it; its duration and self time are the medians over the traces that have it (`count`). */
export function medianProfile(traces, label = "") {
  const profiles = traces.map((t) => profile(t));
  const acc = new Map(), order = [];
  for (const p of profiles) {
    for (const key of p.order) {
      const n = p.nodes.get(key);
      let a = acc.get(key);
      if (!a) {
        acc.set(key, (a = { ...n, span: null, durations: [], selves: [], errors: 0 }));
        order.push(key);
      }
      a.durations.push(n.duration);
      a.selves.push(n.self);
      if (n.error) a.errors++;
    }
  }
  const need = Math.ceil(profiles.length / 2);
  const nodes = new Map();
  for (const key of order) {
    const a = acc.get(key);
    if (a.durations.length < need) continue;
    nodes.set(key, {
      key, path: a.path, service: a.service, name: a.name, parentKey: a.parentKey, depth: a.depth,
      duration: median(a.durations), self: median(a.selves), error: a.errors > a.durations.length / 2,
      span: null, count: a.durations.length,
    });
  }
  // Tree order over the merged keys: parents before children, children in first-seen order.
  const children = new Map();
  const roots = [];
  for (const key of order) {
    if (!nodes.has(key)) continue;
    const parent = nodes.get(key).parentKey;
    if (parent === null) roots.push(key);
    else (children.get(parent) || children.set(parent, []).get(parent)).push(key);
  }
  const treeOrder = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const k = stack.pop();
    treeOrder.push(k);
    for (const c of [...(children.get(k) || [])].reverse()) stack.push(c);
  }
  return {
    nodes, order: treeOrder, label, traces: profiles.length,
    duration: median(profiles.map((p) => p.duration)),
    spanCount: median(profiles.map((p) => p.spanCount)),
  };
}

/** Is a change worth pointing at?  At least 10% of the node's own time and 2% of the trace. */
export function significant(diff, base, total) {
  if (!Number.isFinite(diff) || diff === 0) return false;
  if (Math.abs(diff) < 0.02 * total) return false;
  return !(base > 0) || Math.abs(diff) / base >= 0.1;
}

/**
 * Both profiles on one tree; `a` is the base, `b` the other.  rows (tree order: the base's
 * order, nodes only in b inserted after their earlier siblings): {key, service, name, path,
 * depth, parentKey, children: [key], a, b (nodes or null), only: "a"|"b"|null, diff (b − a
 * duration; NaN when on one side), pct (diff / a, %), selfDiff, change: "slower"|"faster"|null}.
 * summary: {a: {duration, spanCount}, b: {…}, diff, pct, matched, onlyA, onlyB, most (the row
 * whose self time changed most — where the time went, not its ancestors that merely contain
 * it)}.
 */
export function compare(a, b) {
  const byKey = new Map();
  const rows = [];
  const total = Math.max(a.duration || 0, b.duration || 0);
  const make = (key, node) => ({
    key, service: node.service, name: node.name, path: node.path, depth: node.depth, parentKey: node.parentKey,
    children: [], a: null, b: null, only: null, diff: NaN, pct: NaN, selfDiff: NaN, change: null,
  });
  for (const key of a.order) {
    const row = make(key, a.nodes.get(key));
    row.a = a.nodes.get(key);
    byKey.set(key, row);
  }
  for (const key of b.order) {
    let row = byKey.get(key);
    if (!row) byKey.set(key, (row = make(key, b.nodes.get(key))));
    row.b = b.nodes.get(key);
  }
  // Children lists: A's order first, then B-only keys after the sibling that precedes them in B.
  const roots = [];
  // after: undefined → at the end; null → first; a key → right after that sibling.
  const attach = (key, after) => {
    const row = byKey.get(key);
    const list = row.parentKey === null ? roots : byKey.get(row.parentKey).children;
    if (list.includes(key)) return;
    if (after === undefined) list.push(key);
    else list.splice(after === null ? 0 : list.indexOf(after) + 1, 0, key);
  };
  for (const key of a.order) attach(key);
  const lastInB = new Map(); // parentKey → the last sibling seen in B
  for (const key of b.order) {
    const parent = byKey.get(key).parentKey;
    const prev = lastInB.get(parent);
    attach(key, prev === undefined ? null : prev);
    lastInB.set(parent, key);
  }
  const stack = [...roots].reverse();
  while (stack.length) {
    const row = byKey.get(stack.pop());
    rows.push(row);
    for (let i = row.children.length - 1; i >= 0; i--) stack.push(row.children[i]);
  }
  let most = null, onlyA = 0, onlyB = 0, matched = 0;
  for (const row of rows) {
    if (row.a && row.b) {
      matched++;
      row.diff = row.b.duration - row.a.duration;
      row.pct = row.a.duration > 0 ? (100 * row.diff) / row.a.duration : (row.diff ? Infinity : 0);
      row.selfDiff = row.b.self - row.a.self;
      if (significant(row.diff, row.a.duration, total)) row.change = row.diff > 0 ? "slower" : "faster";
    } else {
      row.only = row.a ? "a" : "b";
      if (row.a) onlyA++; else onlyB++;
      row.selfDiff = row.a ? -row.a.self : row.b.self;
    }
    if (!most || Math.abs(row.selfDiff) > Math.abs(most.selfDiff)) most = row;
  }
  if (most && !(Math.abs(most.selfDiff) > 0)) most = null;
  const diff = b.duration - a.duration;
  return {
    rows, byKey, roots,
    summary: {
      a: { duration: a.duration, spanCount: a.spanCount, label: a.label },
      b: { duration: b.duration, spanCount: b.spanCount, label: b.label, traces: b.traces },
      diff, pct: a.duration > 0 ? (100 * diff) / a.duration : NaN, matched, onlyA, onlyB, most, total,
    },
  };
}
