"""Query stage: ``create_app`` builds the Quart app on the store's public reader API.

Routes here: trace by ID (Jaeger HTTP API and Jaeger api_v3), health, readiness, metrics and the
static UI.  Reads run in worker threads so a large trace never stalls the event loop.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from opentelemetry.proto.trace.v1 import trace_pb2
from quart import Quart, Response, jsonify, send_from_directory

from collector.codec.otlp_json import traces_to_json
from collector.config import Config
from collector.metrics import Metrics
from collector.store.contract import SpanReader
from query.ids import BadTraceId, parse_trace_id
from query.jaeger import envelope, to_jaeger_trace

UI_DIR = Path(__file__).resolve().parent.parent / "ui"


def create_app(config: Config, reader: SpanReader, metrics: Metrics,
               ready: Callable[[], bool] = lambda: True) -> Quart:
    app = Quart("clew", static_folder=None)
    ui_dir = Path(config.query.ui_dir) if config.query.ui_dir else UI_DIR

    async def load(trace_id: bytes):
        loop = asyncio.get_running_loop()
        trace = await loop.run_in_executor(None, reader.get_trace, trace_id)
        if trace is None:
            return None
        return trace_pb2.TracesData.FromString(trace.to_traces_data())

    @app.get("/api/traces/<trace_id>")
    async def jaeger_trace(trace_id: str):
        """One trace in the Jaeger UI JSON model, inside the Jaeger API envelope."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            return jsonify(envelope(None, [{"code": 400, "msg": str(exc)}])), 400
        data = await load(tid)
        if data is None:
            return jsonify(envelope(None, [{"code": 404, "msg": "trace not found"}])), 404
        return jsonify(envelope([to_jaeger_trace(data)]))

    @app.get("/api/v3/traces/<trace_id>")
    async def v3_trace(trace_id: str):
        """One trace as OTLP/JSON, as Jaeger's api_v3 HTTP gateway answers."""
        try:
            tid = parse_trace_id(trace_id)
        except BadTraceId as exc:
            return jsonify({"error": {"httpCode": 400, "message": str(exc)}}), 400
        data = await load(tid)
        if data is None:
            return jsonify({"error": {"httpCode": 404, "message": "trace not found"}}), 404
        return jsonify({"result": traces_to_json(data)})

    @app.get("/healthz")
    async def healthz():
        """The process is up."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    async def readyz():
        """Every receiver is listening and the store is open."""
        if ready():
            return jsonify({"status": "ready"})
        return jsonify({"status": "starting"}), 503

    @app.get("/metrics")
    async def prometheus():
        """Prometheus text exposition of the server's own metrics."""
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.render)
        return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/")
    async def index():
        return await send_from_directory(ui_dir, "index.html")

    @app.errorhandler(404)
    async def not_found(_err):
        return jsonify({"error": {"httpCode": 404, "message": "no such route"}}), 404

    return app
