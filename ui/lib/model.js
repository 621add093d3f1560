// The trace model every page works on: one shape for OTLP/JSON, Jaeger JSON and Zipkin v2 JSON.
// Times are microseconds since the epoch (Numbers; nanoseconds do not fit a double), IDs are
// lower-case hex.  A Trace holds its spans in tree order (depth first, children by start) with
// the derived facts the views need: missing parents, clock skew, self time, critical path.
//
//   parseAny(json) -> Trace[]          parseOTLP / parseJaeger / parseZipkin -> Trace[]
//   criticalPath(trace) -> [{span, start, end}]   traceStats(trace) -> rows
//   toOTLP(trace) -> TracesData        pathKey(span) -> "svc:op/svc:op/..."

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUS = ["unset", "ok", "error"];
const UNKNOWN_SERVICE = "unknown_service";

// ------------------------------------------------------------------------------ small helpers

class FormatError extends Error {}

const HEX = /^[0-9a-f]*$/i;
const B64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function base64ToBytes(s) {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** An ID as lower-case hex: hex in any case is taken as it is, base64 (proto3 JSON's
 *  encoding of bytes, which OTLP/JSON also allows for IDs) is decoded.  All zeros = no ID. */
export function normalizeId(v) {
  if (v === undefined || v === null || v === "") return "";
  let s = String(v);
  if (!HEX.test(s)) {
    if (!B64.test(s)) throw new FormatError(`"${s}" is neither a hex nor a base64 ID`);
    let bytes;
    try { bytes = base64ToBytes(s); } catch { throw new FormatError(`"${s}" is neither a hex nor a base64 ID`); }
    s = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  } else {
    s = s.toLowerCase();
  }
  return /^0*$/.test(s) ? "" : s;
}

/** Epoch nanoseconds (decimal string or number) as epoch microseconds. */
function nanosToMicros(v) {
  if (v === undefined || v === null || v === "") return NaN;
  if (typeof v === "number") return v / 1000;
  const s = String(v).trim();
  if (!/^\d+$/.test(s)) return Number(s) / 1000;
  if (s.length <= 3) return Number(s) / 1000;
  return Number(s.slice(0, -3)) + Number(s.slice(-3)) / 1000;
}

/** A Jaeger time: µs number, or an RFC 3339 string (the api_v2 protobuf-JSON rendering). */
function jaegerTime(v) {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || v === "") return NaN;
  if (/^\d+$/.test(v)) return Number(v);
  const m = v.match(/^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)$/);
  if (!m) return NaN;
  const ms = Date.parse(m[1] + m[3]);
  if (!Number.isFinite(ms)) return NaN;
  const frac = (m[2] || "").padEnd(6, "0").slice(0, 6);
  return ms * 1000 + Number(frac);
}

/** A Jaeger duration: µs number, or a protobuf-JSON Duration ("0.100s") / Go duration ("100000ns"). */
function jaegerDuration(v) {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || v === "") return NaN;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const units = { ns: 1e-3, us: 1, "µs": 1, ms: 1e3, s: 1e6, m: 6e7, h: 3.6e9 };
  let total = 0, matched = false;
  for (const [, n, u] of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(n) * units[u]; matched = true;
  }
  return matched ? total : NaN;
}

// ------------------------------------------------------------------------------ attributes

/** An OTLP AnyValue as {value, type}: value is a plain JS value (int64 beyond 2^53 stays a
 *  decimal string), type one of string int double bool bytes array map. */
function fromAnyValue(v) {
  if (!v || typeof v !== "object") return { value: v ?? "", type: "string" };
  if ("stringValue" in v) return { value: String(v.stringValue), type: "string" };
  if ("boolValue" in v) return { value: v.boolValue === true || v.boolValue === "true", type: "bool" };
  if ("intValue" in v) {
    const n = Number(v.intValue);
    return { value: Number.isSafeInteger(n) ? n : String(v.intValue), type: "int" };
  }
  if ("doubleValue" in v) return { value: Number(v.doubleValue), type: "double" };
  if ("bytesValue" in v) return { value: String(v.bytesValue), type: "bytes" };
  if ("arrayValue" in v) {
    return { value: ((v.arrayValue && v.arrayValue.values) || []).map((x) => fromAnyValue(x).value), type: "array" };
  }
  if ("kvlistValue" in v) {
    const out = {};
    for (const kv of (v.kvlistValue && v.kvlistValue.values) || []) out[kv.key] = fromAnyValue(kv.value).value;
    return { value: out, type: "map" };
  }
  return { value: "", type: "string" };
}

function otlpAttributes(list) {
  const out = [];
  for (const kv of list || []) {
    if (!kv || typeof kv.key !== "string") continue;
    const { value, type } = fromAnyValue(kv.value);
    out.push({ key: kv.key, value, type });
  }
  return out;
}

function plainToAny(v) {
  if (v === null || v === undefined) return { stringValue: "" };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "number") return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(plainToAny) } };
  if (typeof v === "object") return { kvlistValue: { values: Object.entries(v).map(([key, x]) => ({ key, value: plainToAny(x) })) } };
  return { stringValue: String(v) };
}

function toAnyValue(value, type) {
  switch (type) {
    case "bool": return { boolValue: value === true || value === "true" };
    case "int": return { intValue: String(value) };
    case "double": return { doubleValue: Number(value) };
    case "bytes": return { bytesValue: String(value) };
    case "array": return { arrayValue: { values: (value || []).map(plainToAny) } };
    case "map": return plainToAny(value || {});
    default: return { stringValue: String(value) };
  }
}

function toOTLPAttributes(attrs) {
  return (attrs || []).map((a) => ({ key: a.key, value: toAnyValue(a.value, a.type) }));
}

const JAEGER_TYPES = { string: "string", bool: "bool", int64: "int", float64: "double", binary: "bytes" };

function jaegerTags(list) {
  const out = [];
  for (const t of list || []) {
    if (!t || typeof t.key !== "string") continue;
    const type = JAEGER_TYPES[String(t.type || t.vType || "string").toLowerCase()] || "string";
    let value = t.value;
    if (value === undefined) value = t.vStr ?? t.vBool ?? t.vInt64 ?? t.vFloat64 ?? t.vBinary ?? "";
    if (type === "bool") value = value === true || value === "true";
    else if (type === "int") { const n = Number(value); value = Number.isSafeInteger(n) ? n : String(value); }
    else if (type === "double") value = Number(value);
    else value = String(value);
    out.push({ key: t.key, value, type });
  }
  return out;
}

function attr(attrs, key) {
  for (const a of attrs) if (a.key === key) return a.value;
  return undefined;
}

// ------------------------------------------------------------------------------ spans

function newSpan(fields) {
  return {
    traceId: "", spanId: "", parentSpanId: "", name: "", kind: "unspecified", service: UNKNOWN_SERVICE,
    start: NaN, end: NaN, duration: 0, status: { code: "unset", message: "" }, error: false,
    attributes: [], resource: { attributes: [] }, scope: { name: "", version: "", attributes: [] },
    events: [], links: [], parent: null, children: [], depth: 0, missingParent: false, skew: 0,
    selfTime: 0, critical: false, noTimestamp: false,
    ...fields,
  };
}

// ------------------------------------------------------------------------------ OTLP

function otlpEnum(v, names, prefix) {
  if (typeof v === "number") return names[v] || names[0];
  if (typeof v === "string") {
    if (/^\d+$/.test(v)) return names[Number(v)] || names[0];
    const s = v.toLowerCase().replace(prefix, "");
    return names.includes(s) ? s : names[0];
  }
  return names[0];
}

/** OTLP/JSON TracesData or ExportTraceServiceRequest ({resourceSpans}); also the /api/v3
 *  answer ({result: TracesData}) and Tempo's {batches}. */
export function parseOTLP(doc) {
  if (doc && doc.result && typeof doc.result === "object") doc = doc.result;
  const resourceSpans = doc && (doc.resourceSpans || doc.batches);
  if (!Array.isArray(resourceSpans)) throw new FormatError("an OTLP document needs a resourceSpans list");
  const spans = [];
  resourceSpans.forEach((rs, ri) => {
    const where = `resourceSpans[${ri}]`;
    if (!rs || typeof rs !== "object") throw new FormatError(`${where} is not an object`);
    const resAttrs = otlpAttributes(rs.resource && rs.resource.attributes);
    const service = attr(resAttrs, "service.name");
    const resource = { attributes: resAttrs };
    const scopeSpans = rs.scopeSpans || rs.instrumentationLibrarySpans || [];
    if (!Array.isArray(scopeSpans)) throw new FormatError(`${where}.scopeSpans is not a list`);
    scopeSpans.forEach((ss, si) => {
      const sc = (ss && (ss.scope || ss.instrumentationLibrary)) || {};
      const scope = { name: sc.name || "", version: sc.version || "", attributes: otlpAttributes(sc.attributes) };
      const list = (ss && ss.spans) || [];
      if (!Array.isArray(list)) throw new FormatError(`${where}.scopeSpans[${si}].spans is not a list`);
      list.forEach((s, i) => {
        const at = `${where}.scopeSpans[${si}].spans[${i}]`;
        if (!s || typeof s !== "object") throw new FormatError(`${at} is not an object`);
        let traceId, spanId, parentSpanId;
        try {
          traceId = normalizeId(s.traceId); spanId = normalizeId(s.spanId); parentSpanId = normalizeId(s.parentSpanId);
        } catch (e) { throw new FormatError(`${at}: ${e.message}`); }
        if (!traceId) throw new FormatError(`${at} has no traceId`);
        if (!spanId) throw new FormatError(`${at} has no spanId`);
        const start = nanosToMicros(s.startTimeUnixNano);
        const end = nanosToMicros(s.endTimeUnixNano);
        // An omitted start time is proto3's zero: unknown (placed at the parent's start).
        const timed = Number.isFinite(start) && start > 0;
        const st = s.status || {};
        const code = otlpEnum(st.code, STATUS, "status_code_");
        const links = [];
        for (const l of s.links || []) {
          try {
            links.push({ traceId: normalizeId(l.traceId), spanId: normalizeId(l.spanId), attributes: otlpAttributes(l.attributes) });
          } catch (e) { throw new FormatError(`${at}.links: ${e.message}`); }
        }
        spans.push(newSpan({
          traceId, spanId, parentSpanId, name: s.name || "", kind: otlpEnum(s.kind, KINDS, "span_kind_"),
          service: typeof service === "string" && service ? service : UNKNOWN_SERVICE,
          start: timed ? start : NaN, end: !timed ? NaN : Number.isFinite(end) && end > 0 ? Math.max(end, start) : start,
          noTimestamp: !timed,
          status: { code, message: st.message || "" }, error: code === "error",
          attributes: otlpAttributes(s.attributes), resource, scope,
          events: (s.events || []).map((e) => ({ time: nanosToMicros(e.timeUnixNano), name: e.name || "", attributes: otlpAttributes(e.attributes) })),
          links, _raw: s, _rs: rs, _ss: ss,
        }));
      });
    });
  });
  return groupTraces(spans, "otlp", doc);
}

// ------------------------------------------------------------------------------ Jaeger

function jaegerTraceList(doc) {
  if (Array.isArray(doc)) return doc;
  if (doc && Array.isArray(doc.data)) return doc.data;
  if (doc && Array.isArray(doc.spans)) return [doc];
  throw new FormatError("a Jaeger document needs {data: [traces]}, a trace {spans, processes} or a list of traces");
}

/** Jaeger JSON: the HTTP API's {data: [trace]}, one trace {traceID, spans, processes}, a list
 *  of traces, or the api_v2 protobuf-JSON model ({spans} with inline processes, base64 IDs). */
export function parseJaeger(doc) {
  const traces = jaegerTraceList(doc);
  const spans = [];
  traces.forEach((t, ti) => {
    if (!t || !Array.isArray(t.spans)) throw new FormatError(`trace ${ti} has no spans list`);
    const processes = t.processes || {};
    t.spans.forEach((s, i) => {
      const at = `trace ${ti}, span ${i}`;
      if (!s || typeof s !== "object") throw new FormatError(`${at} is not an object`);
      let traceId, spanId;
      try { traceId = normalizeId(s.traceID ?? s.traceId ?? t.traceID); spanId = normalizeId(s.spanID ?? s.spanId); } catch (e) { throw new FormatError(`${at}: ${e.message}`); }
      if (!traceId) throw new FormatError(`${at} has no traceID`);
      if (!spanId) throw new FormatError(`${at} has no spanID`);
      const start = jaegerTime(s.startTime);
      if (s.startTime !== undefined && s.startTime !== 0 && !Number.isFinite(start)) throw new FormatError(`${at}: startTime ${JSON.stringify(s.startTime)} is not a time`);
      const timed = Number.isFinite(start) && start > 0;
      const dur = jaegerDuration(s.duration);
      const process = s.process || processes[s.processID] || {};
      const processTags = jaegerTags(process.tags);
      // The parent is the first CHILD_OF reference inside the trace (else FOLLOWS_FROM); every
      // other reference is a link.
      const refs = [];
      for (const r of s.references || []) {
        try {
          refs.push({ type: String(r.refType || "CHILD_OF").toLowerCase(), traceId: normalizeId(r.traceID ?? r.traceId), spanId: normalizeId(r.spanID ?? r.spanId) });
        } catch (e) { throw new FormatError(`${at}.references: ${e.message}`); }
      }
      let parentRef = refs.find((r) => r.type === "child_of" && r.traceId === traceId)
        || refs.find((r) => r.type === "follows_from" && r.traceId === traceId) || null;
      let parentSpanId = parentRef ? parentRef.spanId : "";
      if (!parentRef && s.parentSpanID) { try { parentSpanId = normalizeId(s.parentSpanID); } catch { /* ignored */ } }
      const links = refs.filter((r) => r !== parentRef).map((r) => ({
        traceId: r.traceId, spanId: r.spanId, attributes: [{ key: "opentracing.ref_type", value: r.type, type: "string" }],
      }));
      const tags = jaegerTags(s.tags);
      const kindTag = attr(tags, "span.kind");
      const statusTag = String(attr(tags, "otel.status_code") ?? "").toUpperCase();
      const errorTag = attr(tags, "error");
      const error = statusTag === "ERROR" || errorTag === true || errorTag === "true";
      const code = error ? "error" : statusTag === "OK" ? "ok" : "unset";
      const scopeName = attr(tags, "otel.scope.name") ?? attr(tags, "otel.library.name");
      const scopeVersion = attr(tags, "otel.scope.version") ?? attr(tags, "otel.library.version");
      const service = process.serviceName || UNKNOWN_SERVICE;
      spans.push(newSpan({
        traceId, spanId, parentSpanId, name: s.operationName || "",
        kind: KINDS.includes(String(kindTag).toLowerCase()) ? String(kindTag).toLowerCase() : "unspecified",
        service, start: timed ? start : NaN, end: timed ? start + (Number.isFinite(dur) && dur > 0 ? dur : 0) : NaN,
        duration: Number.isFinite(dur) && dur > 0 ? dur : 0, noTimestamp: !timed,
        status: { code, message: String(attr(tags, "otel.status_description") ?? "") }, error,
        attributes: tags,
        resource: { attributes: [{ key: "service.name", value: service, type: "string" }, ...processTags.filter((a) => a.key !== "service.name")] },
        scope: { name: scopeName ? String(scopeName) : "", version: scopeVersion ? String(scopeVersion) : "", attributes: [] },
        events: (s.logs || []).map((l) => {
          const fields = jaegerTags(l.fields);
          const name = attr(fields, "event") ?? attr(fields, "message") ?? "";
          return { time: jaegerTime(l.timestamp), name: String(name), attributes: fields };
        }),
        links,
      }));
    });
  });
  return groupTraces(spans, "jaeger", doc);
}

// ------------------------------------------------------------------------------ Zipkin

function endpointAttrs(ep, prefix) {
  const out = [];
  if (!ep) return out;
  if (ep.ipv4) out.push({ key: `${prefix}.ip`, value: ep.ipv4, type: "string" });
  if (ep.ipv6) out.push({ key: `${prefix}.ip`, value: ep.ipv6, type: "string" });
  if (ep.port) out.push({ key: `${prefix}.port`, value: Number(ep.port), type: "int" });
  return out;
}

/** Zipkin v2 JSON: a list of spans (any traces).  A server span that shares its ID with the
 *  client span that called it ("shared": true) becomes that client span's child. */
export function parseZipkin(list) {
  if (!Array.isArray(list)) list = [list];
  // Parts of one span reported separately (same trace, ID, side and local endpoint, or one part
  // without an endpoint) are merged first; other spans reusing an ID stay separate.
  const merged = new Map();
  const sameEndpoint = (a, b) => !a || !b || (a.serviceName === b.serviceName && a.ipv4 === b.ipv4 && a.ipv6 === b.ipv6 && a.port === b.port);
  const all = [];
  list.forEach((s, i) => {
    if (!s || typeof s !== "object") throw new FormatError(`span ${i} is not an object`);
    let traceId, spanId, parentSpanId;
    try { traceId = normalizeId(s.traceId); spanId = normalizeId(s.id); parentSpanId = normalizeId(s.parentId); } catch (e) { throw new FormatError(`span ${i}: ${e.message}`); }
    if (!traceId) throw new FormatError(`span ${i} has no traceId`);
    if (!spanId) throw new FormatError(`span ${i} has no id`);
    if (traceId.length > 16 && /^0+$/.test(traceId.slice(0, traceId.length - 16))) traceId = traceId.slice(-16);
    const key = `${traceId}/${spanId}/${s.shared ? "s" : ""}`;
    let group = merged.get(key);
    if (!group) merged.set(key, (group = []));
    const prev = group.find((p) => sameEndpoint(p.localEndpoint, s.localEndpoint)
      && (p.timestamp === undefined || s.timestamp === undefined || p.kind === undefined || s.kind === undefined || p.kind === s.kind)
      && !(p.timestamp !== undefined && s.timestamp !== undefined && p.timestamp !== s.timestamp));
    if (!prev) {
      const m = { ...s, traceId, id: spanId, parentId: parentSpanId, tags: { ...(s.tags || {}) }, annotations: [...(s.annotations || [])] };
      group.push(m); all.push(m); return;
    }
    for (const k of ["name", "kind", "timestamp", "duration", "localEndpoint", "remoteEndpoint"]) if (prev[k] === undefined && s[k] !== undefined) prev[k] = s[k];
    if (!prev.parentId && parentSpanId) prev.parentId = parentSpanId;
    if (s.duration > (prev.duration || 0)) prev.duration = s.duration;
    Object.assign(prev.tags, s.tags || {});
    prev.annotations.push(...(s.annotations || []));
  });
  const clients = new Set(), servers = new Map();
  for (const s of all) if (!s.shared) clients.add(`${s.traceId}/${s.id}`);
  for (const s of all) if (s.shared && clients.has(`${s.traceId}/${s.id}`)) servers.set(`${s.traceId}/${s.id}`, derivedId(s.id, "shared"));
  const spans = [];
  for (const s of all) {
    const tags = Object.entries(s.tags).map(([key, value]) => ({ key, value: String(value), type: "string" }));
    const service = (s.localEndpoint && s.localEndpoint.serviceName) || UNKNOWN_SERVICE;
    const remote = s.remoteEndpoint || null;
    if (remote && remote.serviceName) tags.push({ key: "peer.service", value: remote.serviceName, type: "string" });
    tags.push(...endpointAttrs(remote, "net.peer"));
    const hasError = Object.prototype.hasOwnProperty.call(s.tags, "error");
    const errMsg = hasError ? String(s.tags.error) : "";
    let spanId = s.id, parentSpanId = s.parentId || "";
    let shared = false;
    if (s.shared && servers.has(`${s.traceId}/${s.id}`)) {
      // The server half of a shared span: its own (derived) ID, under the client half.
      parentSpanId = s.id; spanId = servers.get(`${s.traceId}/${s.id}`); shared = true;
    } else if (parentSpanId && servers.has(`${s.traceId}/${parentSpanId}`)) {
      // A child of a shared ID was made by the server side.
      parentSpanId = servers.get(`${s.traceId}/${parentSpanId}`);
    }
    const start = typeof s.timestamp === "number" ? s.timestamp : Number(s.timestamp);
    const dur = Number(s.duration) || 0;
    spans.push(newSpan({
      traceId: s.traceId, spanId, parentSpanId, name: s.name || "",
      kind: s.kind ? String(s.kind).toLowerCase() : "unspecified", service,
      start: Number.isFinite(start) && start > 0 ? start : NaN, end: NaN, duration: dur,
      status: { code: hasError ? "error" : "unset", message: errMsg === "true" ? "" : errMsg }, error: hasError,
      attributes: tags,
      resource: { attributes: [{ key: "service.name", value: service, type: "string" }, ...endpointAttrs(s.localEndpoint, "net.host")] },
      events: (s.annotations || []).map((a) => ({ time: Number(a.timestamp), name: String(a.value ?? ""), attributes: [] })),
      shared, zipkinId: s.id,
    }));
  }
  for (const sp of spans) {
    if (Number.isFinite(sp.start)) sp.end = sp.start + sp.duration;
    else sp.noTimestamp = true;
  }
  return groupTraces(spans, "zipkin", list);
}

/** A 16-hex ID derived from another (FNV-1a 64 over the ID and a salt), for spans that need
 *  an ID of their own. */
function derivedId(id, salt) {
  let h1 = 0x811c9dc5, h2 = 0x01000193 ^ 0x9e3779b9;
  const s = `${id}/${salt}`;
  for (let i = 0; i < s.length; i++) {
    h1 = Math.imul(h1 ^ s.charCodeAt(i), 16777619);
    h2 = Math.imul(h2 ^ s.charCodeAt(i), 2246822519);
  }
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}

// ------------------------------------------------------------------------------ the tree

function groupTraces(spans, format, raw) {
  if (!spans.length) throw new FormatError("the file holds no spans");
  const byTrace = new Map();
  for (const s of spans) {
    let list = byTrace.get(s.traceId);
    if (!list) byTrace.set(s.traceId, (list = []));
    list.push(s);
  }
  return [...byTrace.entries()].map(([traceId, list]) => buildTrace(traceId, list, format, raw));
}

/** Link spans into a tree and derive everything the views need. */
export function buildTrace(traceId, spans, format, raw) {
  const warnings = [];
  const byId = new Map();
  let duplicates = 0;
  for (const s of spans) {
    if (byId.has(s.spanId)) {
      duplicates++;
      let n = 2;
      while (byId.has(`${s.spanId}~${n}`)) n++;
      s.spanId = `${s.spanId}~${n}`;
    }
    byId.set(s.spanId, s);
  }
  if (duplicates) warnings.push(`${duplicates} span${duplicates > 1 ? "s share their IDs" : " shares its ID"} with another span; shown as separate spans.`);

  // Parents; spans whose parent is not here become roots marked missingParent.
  const roots = [];
  let missing = 0;
  for (const s of spans) {
    s.parent = null; s.children = []; s.missingParent = false;
  }
  for (const s of spans) {
    const p = s.parentSpanId ? byId.get(s.parentSpanId) : null;
    if (p && p !== s) { s.parent = p; p.children.push(s); }
    else if (s.parentSpanId && !p) { s.missingParent = true; missing++; }
  }
  // Cycles (a span its own ancestor) are broken at the span found in one.
  for (const s of spans) if (!s.parent) roots.push(s);
  const seen = new Set();
  const walk = (rootList) => {
    const stack = [...rootList];
    while (stack.length) {
      const s = stack.pop();
      if (seen.has(s)) continue;
      seen.add(s);
      for (const c of s.children) stack.push(c);
    }
  };
  walk(roots);
  if (seen.size < spans.length) {
    let broken = 0;
    for (const s of spans) {
      if (seen.has(s)) continue;
      const p = s.parent;
      p.children.splice(p.children.indexOf(s), 1);
      s.parent = null; s.missingParent = true; roots.push(s); broken++;
      walk([s]);
    }
    warnings.push(`${broken} span${broken > 1 ? "s are" : " is"} part of a parent cycle; shown as roots.`);
  }

  // Spans without a start time (partial Zipkin data) are placed at their parent's start.
  const timed = spans.filter((s) => Number.isFinite(s.start));
  let tStart = Infinity;
  for (const s of timed) if (s.start < tStart) tStart = s.start;
  if (!timed.length) tStart = 0;
  const untimed = spans.filter((s) => !Number.isFinite(s.start));
  if (untimed.length) {
    const place = (s) => {
      if (Number.isFinite(s.start)) return s.start;
      s.start = s.parent ? place(s.parent) : tStart;
      s.end = s.start + s.duration;
      return s.start;
    };
    for (const s of untimed) place(s);
    warnings.push(`${untimed.length} span${untimed.length > 1 ? "s have" : " has"} no start time; placed at the parent's start.`);
  }
  let tEnd = -Infinity;
  tStart = Infinity;
  for (const s of spans) {
    if (!Number.isFinite(s.end) || s.end < s.start) s.end = s.start;
    s.duration = s.end - s.start;
    if (s.start < tStart) tStart = s.start;
    if (s.end > tEnd) tEnd = s.end;
  }
  if (missing) warnings.push(`${missing} span${missing > 1 ? "s refer to parents" : " refers to a parent"} missing from the trace; shown at the top level.`);

  // Tree order: depth first, children by start.
  const byStart = (a, b) => a.start - b.start || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  roots.sort((a, b) => (a.missingParent - b.missingParent) || byStart(a, b));
  const ordered = [];
  const stack = [];
  for (let i = roots.length - 1; i >= 0; i--) { roots[i].depth = 0; stack.push(roots[i]); }
  while (stack.length) {
    const s = stack.pop();
    ordered.push(s);
    s.children.sort(byStart);
    for (let i = s.children.length - 1; i >= 0; i--) { s.children[i].depth = s.depth + 1; stack.push(s.children[i]); }
  }

  // Skew: how far a span's start lies outside its parent (before its start or after its end).
  // A child that only ends after its parent is asynchronous work, not skew.
  let skewed = 0;
  for (const s of ordered) {
    const p = s.parent;
    s.skew = 0;
    if (p) {
      if (s.start < p.start) s.skew = p.start - s.start;
      else if (s.start > p.end && p.duration > 0) s.skew = s.start - p.end;
      if (s.skew > 0) skewed++;
    }
    s.selfTime = selfTime(s);
  }
  if (skewed) warnings.push(skewed > 1 ? `${skewed} spans start outside their parents (clock skew?); shown where they were reported.`
    : "1 span starts outside its parent (clock skew?); shown where it was reported.");

  const services = new Map();
  let errorCount = 0;
  for (const s of ordered) {
    let svc = services.get(s.service);
    if (!svc) services.set(s.service, (svc = { name: s.service, spanCount: 0, errorCount: 0 }));
    svc.spanCount++;
    if (s.error) { svc.errorCount++; errorCount++; }
  }
  const trace = {
    traceId, spans: ordered, roots, byId, start: tStart, end: tEnd, duration: tEnd - tStart,
    services: [...services.values()], errorCount, warnings, format, raw,
  };
  criticalPath(trace);
  return trace;
}

/** A span's duration not covered by any child (children clipped to the span). */
function selfTime(s) {
  let covered = 0, curStart = -Infinity, curEnd = -Infinity;
  for (const c of s.children) { // sorted by start
    const a = Math.max(c.start, s.start), b = Math.min(c.end, s.end);
    if (b <= a) continue;
    if (a > curEnd) {
      if (curEnd > curStart) covered += curEnd - curStart;
      curStart = a; curEnd = b;
    } else if (b > curEnd) curEnd = b;
  }
  if (curEnd > curStart) covered += curEnd - curStart;
  return Math.max(0, s.duration - covered);
}

/** The main root: the earliest true root (no parent ID), else the longest top-level span. */
export function mainRoot(trace) {
  const real = trace.roots.filter((r) => !r.missingParent);
  const pool = real.length ? real : trace.roots;
  let best = null;
  for (const r of pool) if (!best || r.duration > best.duration) best = r;
  return best;
}

/** The critical path: from the end of the main root walk back through the last-finishing
 *  child that ends before the current point, recursively (children clipped to their parent);
 *  the time in between belongs to the parent.  Returns the segments in time order and sets
 *  span.critical on every span on the path. */
export function criticalPath(trace) {
  for (const s of trace.spans) s.critical = false;
  const root = mainRoot(trace);
  if (!root) return [];
  const segs = [];
  const clippedChildren = (span, lo, hi) => {
    const out = [];
    for (const c of span.children) {
      const a = Math.max(c.start, lo), b = Math.min(c.end, hi);
      if (b > a) out.push({ span: c, start: a, end: b });
    }
    out.sort((x, y) => y.end - x.end);
    return out;
  };
  const stack = [{ span: root, lo: root.start, cursor: root.end, list: clippedChildren(root, root.start, root.end), i: 0 }];
  root.critical = true;
  while (stack.length) {
    const f = stack[stack.length - 1];
    while (f.i < f.list.length && f.list[f.i].end > f.cursor) f.i++;
    if (f.i < f.list.length) {
      const c = f.list[f.i++];
      if (c.end < f.cursor) segs.push({ span: f.span, start: c.end, end: f.cursor });
      f.cursor = c.start;
      c.span.critical = true;
      stack.push({ span: c.span, lo: c.start, cursor: c.end, list: clippedChildren(c.span, c.start, c.end), i: 0 });
    } else {
      if (f.cursor > f.lo) segs.push({ span: f.span, start: f.lo, end: f.cursor });
      stack.pop();
    }
  }
  if (!segs.length) segs.push({ span: root, start: root.start, end: root.end });
  segs.reverse();
  trace.criticalPath = segs;
  return segs;
}

/** Time per service and operation: [{service, name, count, total, self, max}], most total first. */
export function traceStats(trace) {
  const rows = new Map();
  for (const s of trace.spans) {
    const k = `${s.service}\u0000${s.name}`;
    let r = rows.get(k);
    if (!r) rows.set(k, (r = { service: s.service, name: s.name, count: 0, total: 0, self: 0, max: 0, errors: 0 }));
    r.count++; r.total += s.duration; r.self += s.selfTime;
    if (s.duration > r.max) r.max = s.duration;
    if (s.error) r.errors++;
  }
  return [...rows.values()].sort((a, b) => b.total - a.total || (a.service + a.name).localeCompare(b.service + b.name));
}

/** "svc:op/svc:op/..." from the span's root down to the span. */
export function pathKey(span) {
  const parts = [];
  for (let s = span; s; s = s.parent) parts.push(`${s.service}:${s.name}`);
  return parts.reverse().join("/");
}

// ------------------------------------------------------------------------------ export

function hexId(id, len) {
  const base = String(id || "").split("~")[0];
  let h = HEX.test(base) && base ? base : derivedId(base, "id");
  if (id && id.includes("~")) h = derivedId(id, "dup");
  if (h.length < len) h = h.padStart(len, "0");
  if (h.length > len) h = h.slice(-len);
  return h;
}

function microsToNanos(us) {
  const whole = Math.floor(us);
  const frac = Math.round((us - whole) * 1000);
  return `${whole}${String(frac).padStart(3, "0")}`;
}

/** The trace as OTLP/JSON TracesData.  An OTLP input gives back its own span, resource and
 *  scope objects (IDs written as hex); other formats are converted. */
export function toOTLP(trace) {
  const resources = new Map(); // key -> {resource, scopes: Map}
  for (const s of trace.spans) {
    let rKey, resource, scopeKey, scope, span;
    if (trace.format === "otlp" && s._raw) {
      rKey = s._rs; resource = s._rs.resource || {};
      scopeKey = s._ss; scope = (s._ss && (s._ss.scope || s._ss.instrumentationLibrary)) || {};
      span = {
        ...s._raw, traceId: hexId(s.traceId, 32), spanId: hexId(s.spanId, 16),
        parentSpanId: s._raw.parentSpanId ? hexId(s.parentSpanId, 16) : undefined,
        links: s._raw.links ? s._raw.links.map((l, i) => ({ ...l, traceId: hexId(s.links[i].traceId, 32), spanId: hexId(s.links[i].spanId, 16) })) : undefined,
      };
      if (span.parentSpanId === undefined) delete span.parentSpanId;
      if (span.links === undefined) delete span.links;
    } else {
      rKey = `${s.service}\u0000${JSON.stringify(s.resource.attributes)}`;
      resource = { attributes: toOTLPAttributes(s.resource.attributes) };
      scopeKey = `${s.scope.name}\u0000${s.scope.version}`;
      scope = { name: s.scope.name, version: s.scope.version };
      const kind = Math.max(0, KINDS.indexOf(s.kind));
      span = {
        traceId: hexId(s.traceId, 32), spanId: hexId(s.spanId, 16),
        ...(s.parentSpanId ? { parentSpanId: hexId(s.parentSpanId, 16) } : {}),
        name: s.name, kind, startTimeUnixNano: microsToNanos(s.start), endTimeUnixNano: microsToNanos(s.end),
        attributes: toOTLPAttributes(s.attributes),
        events: s.events.map((e) => ({ timeUnixNano: microsToNanos(e.time), name: e.name, attributes: toOTLPAttributes(e.attributes) })),
        links: s.links.map((l) => ({ traceId: hexId(l.traceId, 32), spanId: hexId(l.spanId, 16), attributes: toOTLPAttributes(l.attributes) })),
        status: s.status.code === "unset" ? {} : { code: STATUS.indexOf(s.status.code), ...(s.status.message ? { message: s.status.message } : {}) },
      };
    }
    let r = resources.get(rKey);
    if (!r) resources.set(rKey, (r = { resource, scopes: new Map() }));
    let sc = r.scopes.get(scopeKey);
    if (!sc) r.scopes.set(scopeKey, (sc = { scope, spans: [] }));
    sc.spans.push(span);
  }
  return {
    resourceSpans: [...resources.values()].map((r) => ({
      resource: r.resource,
      scopeSpans: [...r.scopes.values()].map((sc) => ({ scope: sc.scope, spans: sc.spans })),
    })),
  };
}

// ------------------------------------------------------------------------------ detection

function keysOf(o) {
  const k = Object.keys(o).slice(0, 6);
  return k.length ? k.join(", ") : "no keys";
}

/** Any of the three formats, detected from its shape.  Throws an Error naming what is wrong. */
export function parseAny(json) {
  if (typeof json === "string") {
    try { json = JSON.parse(json); } catch (e) { throw new FormatError(`not JSON: ${e.message}`); }
  }
  if (json === null || typeof json !== "object") throw new FormatError(`expected a JSON object or list, found ${json === null ? "null" : typeof json}`);
  if (Array.isArray(json)) {
    if (!json.length) throw new FormatError("the file is an empty list: no spans");
    const first = json.find((x) => x && typeof x === "object");
    if (!first) throw new FormatError("a list of spans or traces was expected; the list holds no objects");
    if (Array.isArray(first.spans)) return parseJaeger(json);
    if (first.resourceSpans) return json.flatMap((d) => parseOTLP(d));
    if ("traceId" in first && "id" in first) return parseZipkin(json);
    throw new FormatError(`a list of Zipkin v2 spans (traceId, id) or Jaeger traces (spans) was expected; its first element has ${keysOf(first)}`);
  }
  if (json.resourceSpans || json.batches || (json.result && json.result.resourceSpans)) return parseOTLP(json);
  if (Array.isArray(json.data) || Array.isArray(json.spans)) {
    if (Array.isArray(json.data) && !json.data.length) throw new FormatError("the Jaeger document's data list is empty: no traces");
    return parseJaeger(json);
  }
  if ("traceId" in json && "id" in json) return parseZipkin([json]);
  if (json.errors && Array.isArray(json.errors)) throw new FormatError(`the file is an error answer: ${json.errors.map((e) => e.msg || e.message).join("; ")}`);
  throw new FormatError(`not a trace file: expected OTLP JSON (resourceSpans), Jaeger JSON (data or spans) or Zipkin v2 JSON (a list of spans); found an object with ${keysOf(json)}`);
}

export { FormatError, KINDS };

/** The span where the trace failed first: among error spans with no error below them (where
 *  an error chain starts), the one that ended first.  null when no span failed. */
export function firstFailure(trace) {
  const errs = trace.spans.filter((s) => s.error);
  if (!errs.length) return null;
  const hasErrorBelow = new Set();
  for (const s of errs) for (let p = s.parent; p; p = p.parent) { if (hasErrorBelow.has(p)) break; hasErrorBelow.add(p); }
  const origins = errs.filter((s) => !hasErrorBelow.has(s));
  origins.sort((a, b) => a.end - b.end || b.depth - a.depth || a.start - b.start);
  return origins[0];
}
