// The open-file page, /open: drop (or choose) an OTLP, Jaeger or Zipkin JSON file and view it
// with the trace page's view.  The file is read and parsed in the browser; nothing is sent to
// the server or stored.
import { duration, timestamp, el, stylesheet } from "../lib/format.js";
import { parseAny } from "../lib/model.js";
import { renderTrace } from "./trace.js";

const FORMATS = { otlp: "OTLP JSON", jaeger: "Jaeger JSON", zipkin: "Zipkin v2 JSON" };

export async function render(main, ctx) {
  await Promise.all([stylesheet("/ui/pages/open.css"), stylesheet("/ui/pages/trace.css")]);
  let cleanup = null;
  const input = el("input", { type: "file", accept: ".json,application/json", id: "open-file", className: "open-input" });
  const status = el("p", { className: "open-status muted", role: "status", "aria-live": "polite" });
  const error = el("div", { className: "open-error", role: "alert", "data-testid": "open-error", hidden: true });
  const result = el("div", { className: "open-result" });
  const zone = el("div", { className: "open-zone", "data-testid": "drop-zone" },
    el("p", { className: "open-zone-title" }, "Drop a trace file here"),
    el("p", null, el("label", { htmlFor: "open-file" }, "or choose a file: "), input),
    el("p", { className: "muted" }, "OTLP JSON (TracesData / ExportTraceServiceRequest), Jaeger JSON (the /api/traces answer, one trace, or a list of traces) or Zipkin v2 JSON (a list of spans). ",
      "The file is read in this browser only: it is not sent to the server and not stored."));
  const intro = el("section", { className: "open-intro" }, el("h1", null, "Open a trace file"), zone, status, error);
  main.append(intro, result);

  function clearView() {
    if (typeof cleanup === "function") cleanup();
    cleanup = null;
    result.replaceChildren();
  }

  function showError(name, message) {
    clearView();
    status.textContent = "";
    error.hidden = false;
    error.replaceChildren(el("strong", null, `${name} could not be opened: `), message);
  }

  function show(trace, traces, name) {
    clearView();
    if (traces.length > 1) {
      result.append(el("p", null, el("button", { type: "button", onclick: () => list(traces, name) }, `← All ${traces.length} traces in ${name}`)));
    }
    const view = el("div");
    result.append(view);
    cleanup = renderTrace(view, trace, {});
  }

  function list(traces, name) {
    clearView();
    const sorted = [...traces].sort((a, b) => a.start - b.start);
    result.append(
      el("h2", null, `${traces.length} traces in ${name}`),
      el("table", { className: "open-list", "aria-label": "Traces in the file" },
        el("thead", null, el("tr", null, ["Trace", "Root", "Start", "Duration", "Spans", "Services", "Errors"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", null, sorted.map((t) => {
          const root = t.roots.find((r) => !r.missingParent) || t.roots[0];
          return el("tr", null,
            el("td", null, el("button", { type: "button", className: "linklike mono", onclick: () => show(t, traces, name) }, t.traceId)),
            el("td", null, root ? `${root.service}: ${root.name || "(no name)"}` : ""),
            el("td", null, timestamp(t.start)), el("td", { className: "num" }, duration(t.duration)),
            el("td", { className: "num" }, String(t.spans.length)), el("td", null, t.services.map((s) => s.name).join(", ")),
            el("td", { className: t.errorCount ? "num error" : "num" }, String(t.errorCount)));
        }))));
  }

  async function open(file) {
    error.hidden = true;
    clearView();
    status.textContent = `Reading ${file.name}…`;
    const t0 = performance.now();
    let text;
    try {
      text = await file.text();
    } catch (err) {
      showError(file.name, `the file could not be read (${err.message}).`);
      return;
    }
    if (ctx.signal.aborted) return;
    let json;
    try {
      json = JSON.parse(text);
    } catch (err) {
      showError(file.name, `it is not valid JSON (${err.message}).`);
      return;
    }
    let traces;
    try {
      traces = parseAny(json);
    } catch (err) {
      showError(file.name, `${err.message}.`.replace(/\.\.$/, "."));
      return;
    }
    const spans = traces.reduce((n, t) => n + t.spans.length, 0);
    const format = FORMATS[traces[0].format] || traces[0].format;
    if (traces.length === 1) show(traces[0], traces, file.name);
    else list(traces, file.name);
    const ms = Math.round(performance.now() - t0);
    status.textContent = `${file.name}: ${format}, ${traces.length} trace${traces.length > 1 ? "s" : ""}, ${spans} span${spans === 1 ? "" : "s"} (read and drawn in ${ms} ms).`;
  }

  input.addEventListener("change", () => { if (input.files && input.files[0]) open(input.files[0]); });
  const over = (e) => { e.preventDefault(); zone.classList.add("is-over"); };
  const leave = () => zone.classList.remove("is-over");
  const drop = (e) => {
    e.preventDefault(); leave();
    const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (file) open(file);
  };
  // The whole page accepts a drop, so a missed target does not make the browser open the file.
  main.addEventListener("dragover", over);
  main.addEventListener("dragleave", leave);
  main.addEventListener("drop", drop);
  return () => {
    if (typeof cleanup === "function") cleanup();
    main.removeEventListener("dragover", over);
    main.removeEventListener("dragleave", leave);
    main.removeEventListener("drop", drop);
  };
}
