"""Query stage: alert rules, their current state and history (docs/alerting.md).

* ``GET /api/v1/alerts/rules`` / ``POST /api/v1/alerts/rules`` — list the rules, add one (201; 409
  when its ``id`` is taken).
* ``GET|PUT|DELETE /api/v1/alerts/rules/{rule_id}`` — one rule: read, replace, remove.
* ``GET /api/v1/alerts`` — the state of every rule: inactive, pending or firing, since when, the
  value last seen, example trace IDs.
* ``GET /api/v1/alerts/history`` — transitions, rule changes and notification attempts, newest first.

Rules are checked by ``collector.analytics.alerts.parse_rule``; a bad one is answered 400 with a
message naming the field.  Errors are ``{"error": {"httpCode", "message"}}``.  Without alerting
(``analytics.enabled`` or ``alerting.enabled`` false) every route answers 503.
"""
from __future__ import annotations

from quart import Blueprint, jsonify, request

from collector.analytics.alerts import RuleError
from query.params import ApiError, BadRequest, integer, native_error as _error, text
from query.reading import call

DEFAULT_HISTORY = 100  # entries a history listing returns when no limit is asked


def blueprint(config, alerting=None) -> Blueprint:
    """The routes; ``alerting`` is the server's ``Alerting`` (None: alerting is off, 503)."""
    bp = Blueprint("alerts", __name__)
    settings = getattr(config, "alerting", None)
    max_history = int(getattr(settings, "max_history", 10_000))

    @bp.errorhandler(ApiError)
    async def api_error(exc: ApiError):
        return _error(exc.status, exc.message)

    @bp.errorhandler(BadRequest)
    @bp.errorhandler(RuleError)
    async def bad_request(exc):
        return _error(400, str(exc))

    def need():
        if alerting is None:
            raise ApiError(503, "alerting is off (analytics.enabled or alerting.enabled is false)")
        return alerting

    async def body():
        try:
            return await request.get_json(force=True, silent=False)
        except Exception:
            raise BadRequest("body: expected a JSON object (a rule)") from None

    @bp.get("/api/v1/alerts/rules")
    async def list_rules():
        """Every alert rule, in the order they were added."""
        return jsonify({"rules": await call(need().list_rules)})

    @bp.post("/api/v1/alerts/rules")
    async def create_rule():
        """Add a rule (201); 409 when a rule of that ``id`` exists."""
        a = need()
        try:
            rule = await call(a.create_rule, await body())
        except KeyError as exc:
            raise ApiError(409, f"id: a rule {exc.args[0]!r} exists; PUT /api/v1/alerts/rules/"
                                f"{exc.args[0]} replaces it") from None
        return jsonify(rule), 201

    @bp.get("/api/v1/alerts/rules/<rule_id>")
    async def get_rule(rule_id: str):
        """One rule."""
        rule = await call(need().get_rule, rule_id)
        if rule is None:
            raise ApiError(404, f"no alert rule {rule_id[:128]!r}")
        return jsonify(rule)

    @bp.put("/api/v1/alerts/rules/<rule_id>")
    async def replace_rule(rule_id: str):
        """Replace a rule (given whole); its state carries over when its condition is unchanged."""
        a = need()
        payload = await body()
        rule = await call(a.replace_rule, rule_id, payload)
        if rule is None:
            raise ApiError(404, f"no alert rule {rule_id[:128]!r} (POST /api/v1/alerts/rules adds one)")
        return jsonify(rule)

    @bp.delete("/api/v1/alerts/rules/<rule_id>")
    async def delete_rule(rule_id: str):
        """Remove a rule; a firing alert of it is notified as resolved."""
        rule = await call(need().delete_rule, rule_id)
        if rule is None:
            raise ApiError(404, f"no alert rule {rule_id[:128]!r}")
        return jsonify(rule)

    @bp.get("/api/v1/alerts")
    async def alerts():
        """The state of every rule: inactive, pending or firing, with the value last evaluated."""
        return jsonify({"alerts": await call(need().alerts)})

    @bp.get("/api/v1/alerts/history")
    async def history():
        """Transitions, rule changes and notification attempts, newest first."""
        args = request.args
        limit = (integer("limit", args["limit"], minimum=1, maximum=max_history) if args.get("limit")
                 else min(DEFAULT_HISTORY, max_history))
        rule_id = text("ruleId", args.get("ruleId"), max_len=128)
        return jsonify({"entries": await call(need().history_entries, limit, rule_id)})

    return bp
