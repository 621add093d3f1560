"""Query stage: ``GET /api/v1/traces/{id}/links`` — the configured link templates rendered for one
trace and its spans, and the incidents that list the trace (docs/correlation.md).

The answer::

    {"traceId": "…", "start": "<ns>", "end": "<ns>",
     "trace": [{"name", "url"}], "spans": {"<spanId>": [{"name", "url"}]}, "spansTruncated": false,
     "incidents": [{"id", "title", "link", "created"}]}

Spans without a rendered link are not listed.  ``?spanId=`` renders the span templates for that
span only (the UI asks for one span when ``spansTruncated`` left it out).  Errors are
``{"error": {"httpCode", "message"}}`` with a message naming the parameter.
"""
from __future__ import annotations

import re

from opentelemetry.proto.trace.v1 import trace_pb2
from quart import Blueprint, jsonify, request

from collector.correlation import NO_SERVICE, SpanView, TraceView, render_links
from collector.errors import StoreClosed
from query.anyvalue import as_string
from query.ids import BadTraceId, parse_trace_id
from query.reading import call, traces_data_bytes
from query.params import native_error as _error

SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


def trace_view(trace_id: str, data) -> TraceView:
    """The templates' view of an OTLP ``TracesData`` message (attribute values as text)."""
    spans = []
    for rs in data.resource_spans:
        resource = {kv.key: as_string(kv.value) for kv in rs.resource.attributes}
        service = resource.get("service.name") or NO_SERVICE
        for ss in rs.scope_spans:
            for sp in ss.spans:
                spans.append(SpanView(
                    span_id=sp.span_id.hex(), parent_id=sp.parent_span_id.hex(), service=service,
                    name=sp.name, start=sp.start_time_unix_nano, end=sp.end_time_unix_nano,
                    attrs={kv.key: as_string(kv.value) for kv in sp.attributes}, resource=resource))
    return TraceView(trace_id, spans)


def incidents_of(pins, trace_hex: str) -> list[dict]:
    """The incidents listing the trace, oldest first (call from a worker thread)."""
    found = pins.incident_list(trace_hex)
    found.sort(key=lambda i: (i["created"], i["id"]))
    return [{"id": i["id"], "title": i["title"], "link": i.get("link"), "created": i["created"]}
            for i in found]


def blueprint(config, reader, lifecycle=None) -> Blueprint:
    bp = Blueprint("correlation", __name__)
    settings = config.correlation
    templates = settings.links

    @bp.errorhandler(StoreClosed)
    async def closing(exc):
        return _error(503, str(exc))

    @bp.get("/api/v1/traces/<trace_id>/links")
    async def trace_links(trace_id: str):
        """The link templates rendered for one trace and its spans, and the trace's incidents."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            return _error(400, f"traceId: {exc}")
        span_id = request.args.get("spanId")
        if span_id is not None and not SPAN_ID.fullmatch(span_id):
            return _error(400, f"spanId: {span_id[:40]!r} is not a span ID (16 hex digits)")
        answer = await call(_answer, reader, lifecycle, tid, span_id.lower() if span_id else None)
        if answer is None:
            return _error(404, f"trace {tid.hex()} not found")
        return jsonify(answer)

    def _answer(reader, lifecycle, tid: bytes, span_id: str | None) -> dict | None:
        """The whole answer, or None for an unknown trace (call from a worker thread)."""
        raw = traces_data_bytes(reader, tid)
        if raw is None:
            return None
        view = trace_view(tid.hex(), trace_pb2.TracesData.FromString(raw))
        rendered = render_links(templates, view, span_id=span_id, max_span_links=settings.max_span_links,
                                max_url_length=settings.max_url_length)
        incidents = incidents_of(lifecycle.pins, tid.hex()) if lifecycle is not None else []
        return {"traceId": tid.hex(), "start": str(view.start), "end": str(view.end),
                "trace": rendered["trace"], "spans": rendered["spans"],
                "spansTruncated": rendered["spansTruncated"], "incidents": incidents}

    return bp
