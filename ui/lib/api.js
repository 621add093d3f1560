// The query APIs the UI reads — the same public routes any client uses (docs/api-jaeger.md).
// Every call rejects with an ApiError whose message is the server's own explanation.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function getJSON(path, params, { signal } = {}) {
  const url = new URL(path, location.origin);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
  }
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`The server did not answer (${url.pathname}): ${err.message}`, 0);
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: handled below */ }
  if (!response.ok) {
    const message = (body && body.error && body.error.message)
      || (body && Array.isArray(body.errors) && body.errors.map((e) => e.msg).join("; "))
      || `${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status);
  }
  return body;
}

/** Service names, sorted. */
export async function services(opts) {
  return (await getJSON("/api/v3/services", null, opts)).services;
}

/** [{name, spanKind}] of one service. */
export async function operations(service, opts) {
  return (await getJSON("/api/v3/operations", { service }, opts)).operations;
}

/** Trace summaries (docs/api-jaeger.md, /api/v3/trace-summaries): `query` holds the
 *  `query.*` parameters without their prefix (serviceName, operationName, attributes (object),
 *  startTimeMin/Max (Date or RFC 3339), durationMin/Max (Go durations), searchDepth). */
export async function traceSummaries(query, opts) {
  const params = {};
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    if (k === "attributes") {
      if (Object.keys(v).length) params["query.attributes"] = JSON.stringify(v);
    } else params[`query.${k}`] = v instanceof Date ? v.toISOString() : v;
  }
  return (await getJSON("/api/v3/trace-summaries", params, opts)).summaries;
}

/** One trace as OTLP/JSON TracesData ({resourceSpans: [...]}). */
export async function trace(traceId, opts) {
  return (await getJSON(`/api/v3/traces/${encodeURIComponent(traceId)}`, null, opts)).result;
}

/** Dependency links [{parent, child, callCount, errorCount}] for spans that started in
 *  [endMs − lookbackMs, endMs]. */
export async function dependencies(endMs, lookbackMs, opts) {
  return (await getJSON("/api/dependencies", { endTs: Math.round(endMs), lookback: Math.round(lookbackMs) }, opts)).data;
}
