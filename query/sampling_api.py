"""Query stage: the sampling routes of the query port.

* ``GET /api/sampling?service=NAME`` — the service's Jaeger remote-sampling strategy, as Jaeger's
  collector serves it at ``/api/sampling`` (protobuf JSON, enum by name): the same strategies as
  ``sampling.remote_port`` (5778) and gRPC ``SamplingManager``. Every fetch counts as a poll.
  A missing or repeated ``service`` is 400 in plain text, as Jaeger answers.

Registered by ``query.app`` only when the server has a ``Sampling`` object. See
docs/sampling-remote.md.
"""
from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from collector.errors import SamplingError
from collector.sampling.strategies import proto_json
from query.params import BadRequest, go_duration_ns, native_error as _error


MISSING_SERVICE = ("the 'service' query parameter must be given once, naming the service whose "
                   "sampling strategy to fetch, e.g. /api/sampling?service=frontend")


def _plain(status: int, message: str) -> Response:
    return Response(message, status=status, content_type="text/plain; charset=utf-8")


def blueprint(config, sampling) -> Blueprint:
    bp = Blueprint("sampling", __name__)

    # -- Jaeger remote sampling (what SDKs poll) -------------------------------------------------

    @bp.get("/api/sampling")
    async def jaeger_strategy():
        """The Jaeger sampling strategy of ``service`` (Jaeger's ``/api/sampling``)."""
        services = request.args.getlist("service")
        if len(services) != 1 or not services[0]:
            return _plain(400, MISSING_SERVICE)
        service = services[0]
        sampling.note_poll(service)
        return jsonify(proto_json(sampling.strategy_for(service)))

    # -- native settings and statistics (/api/v1/sampling) ---------------------------------------

    @bp.get("/api/v1/sampling")
    async def get_settings():
        """The sampling settings in force: head strategies, tail settings and policies, adaptive."""
        return jsonify(sampling.settings_json())

    @bp.put("/api/v1/sampling")
    async def put_settings():
        """Change the settings (any of head, tail, adaptive; validated whole, saved, logged)."""
        try:
            change = await request.get_json(force=True, silent=False)
        except Exception:
            change = None
        if change is None:
            return _error(400, "body: expected a JSON object with any of head, tail, adaptive")
        try:
            return jsonify(sampling.update(change))
        except SamplingError as exc:
            return _error(400, str(exc))

    @bp.get("/api/v1/sampling/stats")
    async def stats():
        """Received, kept and dropped per service over a window, with targets and pending traces."""
        try:
            window = request.args.get("window")
            window_s = go_duration_ns("window", window) / 1e9 if window else None
        except BadRequest as exc:
            return _error(400, str(exc))
        if window_s is not None and window_s <= 0:
            return _error(400, "window: must be a positive duration, e.g. 5m")
        return jsonify(sampling.report(window_s, request.args.get("service") or None))

    return bp
