"""Query stage: ``create_app`` builds the Quart app on the store's public reader API.

Each API is a blueprint in its own module: Jaeger v1 and api_v3 (``jaeger_api``), Zipkin v2
(``zipkin_api``), Tempo (``tempo_api``), sampling (``sampling_api``) and storage
(``storage_api``: incidents, pins, deletion, the audit log).  Here: health, readiness,
metrics, the OpenAPI document and the static UI.  Reads run in worker threads so a large trace
never stalls the loop.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import orjson
from quart import Quart, Response, jsonify, send_from_directory
from quart.json.provider import DefaultJSONProvider

from collector.config import Config
from collector.metrics import Metrics
from query import (alerts_api, analytics_api, correlation_api, jaeger_api, metrics_api, openapi, sampling_api,
                   storage_api, tempo_api, zipkin_api)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"


class FastJSON(DefaultJSONProvider):
    """JSON bodies through orjson: search answers carry hundreds of spans, and the stdlib
    encoder was a third of a search's time.  Key order is kept (each API's documented order)."""

    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj, default=self.default,
                            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS).decode()

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(
            orjson.dumps(obj, default=self.default, option=orjson.OPT_NON_STR_KEYS),
            mimetype=self.mimetype)


def create_app(config: Config, reader, metrics: Metrics,
               ready: Callable[[], bool] = lambda: True, sampling=None, lifecycle=None,
               writer=None, analytics=None, alerts=None) -> Quart:
    app = Quart("clew", static_folder=None)
    app.json = FastJSON(app)
    app.json.sort_keys = False  # keep each API's documented field order
    ui_dir = Path(config.query.ui_dir) if config.query.ui_dir else UI_DIR

    app.register_blueprint(jaeger_api.blueprint(config, reader))
    app.register_blueprint(zipkin_api.blueprint(config, reader))
    app.register_blueprint(tempo_api.blueprint(config, reader))
    app.register_blueprint(analytics_api.blueprint(config, reader, analytics))
    app.register_blueprint(alerts_api.blueprint(config, alerts))
    app.register_blueprint(metrics_api.blueprint(config, reader, analytics))
    app.register_blueprint(correlation_api.blueprint(config, reader, lifecycle))
    app.register_blueprint(openapi.blueprint(config, reader, sampling=sampling is not None,
                                             storage=lifecycle is not None))
    if sampling is not None:
        app.register_blueprint(sampling_api.blueprint(config, sampling))
    if lifecycle is not None:
        app.register_blueprint(storage_api.blueprint(config, reader, lifecycle, writer))

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
    @app.get("/search")
    @app.get("/trace/<trace_id>")
    @app.get("/compare")
    @app.get("/graph")
    @app.get("/open")
    @app.get("/performance")
    @app.get("/alerts")
    async def index(trace_id: str | None = None):
        """The web UI: one page; the browser's router shows the view the path names."""
        response = await send_from_directory(ui_dir, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/ui/<path:name>")
    async def ui_file(name: str):
        """The UI's modules, styles and vendored libraries (static files under ``ui/``)."""
        try:
            response = await send_from_directory(ui_dir, name)
        except (OSError, ValueError):  # a name no file system holds (too long, NUL…): no such file
            return jsonify({"error": {"httpCode": 404, "message": "no such file"}}), 404
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.errorhandler(404)
    async def not_found(_err):
        return jsonify({"error": {"httpCode": 404, "message": "no such route"}}), 404

    return app
