"""Query stage: the Jaeger HTTP APIs — classic v1 (``/api/...``, the Jaeger UI model) and api_v3 (OTLP/JSON)."""
from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from collector.codec.otlp_json import traces_to_json
from query.ids import BadTraceId, parse_trace_id
from query.jaeger import envelope, to_jaeger_trace
from query.reading import call, traces_data, traces_data_bytes

PROTOBUF = "application/protobuf"


def blueprint(config, reader) -> Blueprint:
    bp = Blueprint("jaeger", __name__)

    @bp.get("/api/traces/<trace_id>")
    async def jaeger_trace(trace_id: str):
        """One trace in the Jaeger UI JSON model, inside the Jaeger API envelope.

        Tempo's clients (Grafana) ask the same path with ``Accept: application/protobuf``; they
        get the OTLP ``TracesData`` protobuf, as Tempo answers."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            return jsonify(envelope(None, [{"code": 400, "msg": str(exc)}])), 400
        if request.accept_mimetypes.best_match(["application/json", PROTOBUF]) == PROTOBUF:
            raw = await call(traces_data_bytes, reader, tid)
            if raw is None:
                return Response(b"trace not found", 404, content_type="text/plain")
            return Response(raw, content_type=PROTOBUF)
        data = await traces_data(reader, tid)
        if data is None:
            return jsonify(envelope(None, [{"code": 404, "msg": "trace not found"}])), 404
        return jsonify(envelope([to_jaeger_trace(data)]))

    @bp.get("/api/v3/traces/<trace_id>")
    async def v3_trace(trace_id: str):
        """One trace as OTLP/JSON, as Jaeger's api_v3 HTTP gateway answers."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            return jsonify({"error": {"httpCode": 400, "message": str(exc)}}), 400
        data = await traces_data(reader, tid)
        if data is None:
            return jsonify({"error": {"httpCode": 404, "message": "trace not found"}}), 404
        return jsonify({"result": traces_to_json(data)})

    return bp
