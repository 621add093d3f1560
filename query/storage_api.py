"""Query stage: the native storage routes of the query port (docs/api-storage.md).

* ``GET /api/v1/storage`` — bytes and spans per tier and partition, budget use, damaged files,
  lifecycle counters (``Lifecycle.report``).
* Incidents and pins: ``/api/v1/incidents[/{id}]``, ``/api/v1/traces/{id}/pin``,
  ``/api/v1/pins``.  A pinned trace is kept past retention and the disk budget.
* Deletion (compliance): ``DELETE /api/v1/traces/{id}`` and ``POST /api/v1/deletions`` (trace
  IDs or a TraceQL query).  Hot partitions are compacted on the writer thread, then cold files
  are rewritten in a worker thread, so the deleted bytes are gone from every file.
* ``GET /api/v1/audit`` — the audit log (deletions, pins, incidents), newest first.

Errors are ``{"error": {"httpCode", "message"}}`` with a message naming what is wrong.
Registered by ``query.app`` only when the server has a ``Lifecycle`` (not for a null sink).
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from urllib.parse import urlsplit

from quart import Blueprint, jsonify, request

from collector.errors import StoreClosed
from collector.store.criteria import CriteriaError, TraceQuery
from query.ids import BadTraceId, parse_trace_id
from query.params import ApiError, BadRequest, integer, native_error as _error
from query.reading import call
from query.traceql import TraceQLError, parse

MAX_INCIDENT_TRACES = 1000  # trace IDs one incident may list
MAX_DELETE_TRACES = 100_000  # traces one deletion request may remove
MAX_QUERY = 16 * 1024  # characters of a deletion's TraceQL query
MAX_TEXT = 1024  # characters of a title, link, reason or user name
MAX_AUDIT = 10_000  # entries one audit listing may return
DEFAULT_AUDIT = 100
SINGLE_PIN = "pin"  # how the reason "" (a pin of its own, not an incident's) is shown
SECOND = 1_000_000_000
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

log = logging.getLogger("clew.query.storage")


def blueprint(config, reader, lifecycle, writer) -> Blueprint:
    bp = Blueprint("storage", __name__)

    @bp.errorhandler(ApiError)
    async def api_error(exc: ApiError):
        return _error(exc.status, exc.message)

    @bp.errorhandler(BadRequest)
    async def bad_request(exc):
        return _error(400, str(exc))

    @bp.errorhandler(StoreClosed)
    async def closing(exc):
        return _error(503, str(exc))

    # -- report ----------------------------------------------------------------------------------

    @bp.get("/api/v1/storage")
    async def storage():
        """Bytes and spans per tier and partition, oldest data, budget use, damaged files, counters."""
        return jsonify(await call(lifecycle.report))

    # -- incidents -------------------------------------------------------------------------------

    @bp.get("/api/v1/incidents")
    async def list_incidents():
        """Every incident, each with its traces and whether each is still stored."""
        incidents = sorted(await call(lifecycle.pins.incident_list), key=lambda i: (i["created"], i["id"]))
        stored = await call(_stored, reader, {t for i in incidents for t in i["trace_ids"]})
        return jsonify({"incidents": [_incident_json(i, stored) for i in incidents]})

    @bp.post("/api/v1/incidents")
    async def create_incident():
        """Create an incident (201) or replace the one of the same ``id`` (200); its traces are pinned."""
        body = await _json_object(("id", "title", "link", "traceIds"))
        incident_id = body.get("id")
        if incident_id is None:
            incident_id = f"inc-{secrets.token_hex(6)}"
        elif not isinstance(incident_id, str) or not INCIDENT_ID.fullmatch(incident_id):
            raise BadRequest(f"id: {_show(incident_id)} must be 1 to 128 letters, digits, '.', '_', ':' "
                             "or '-', starting with a letter or digit")
        elif incident_id == SINGLE_PIN:
            raise BadRequest(f"id: {SINGLE_PIN!r} is reserved (it names a pin of its own)")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise BadRequest("title: required, a non-empty string")
        if len(title) > MAX_TEXT:
            raise BadRequest(f"title: longer than {MAX_TEXT} characters")
        link = body.get("link")
        if link is not None:
            _check_link(link)
        ids = _trace_id_list("traceIds", body.get("traceIds"), MAX_INCIDENT_TRACES)
        existed = lifecycle.pins.incident(incident_id) is not None
        incident = {"id": incident_id, "title": title, "link": link, "created": _now_iso(),
                    "trace_ids": [t.hex() for t in ids]}
        incident = await call(lifecycle.pins.add_incident, incident)
        await call(lifecycle.audit.record, "incident_update" if existed else "incident_create",
                   incident=incident_id, title=title, link=link, trace_ids=list(incident["trace_ids"]),
                   by=_user())
        return jsonify(_incident_json(incident)), 200 if existed else 201

    @bp.get("/api/v1/incidents/<incident_id>")
    async def get_incident(incident_id: str):
        """One incident, with its traces and whether each is still stored."""
        incident = await call(_incident_or_404, lifecycle.pins, incident_id)
        stored = await call(_stored, reader, set(incident["trace_ids"]))
        return jsonify(_incident_json(incident, stored))

    @bp.delete("/api/v1/incidents/<incident_id>")
    async def delete_incident(incident_id: str):
        """Remove an incident; its traces are unpinned (unless something else pins them)."""
        await call(_incident_or_404, lifecycle.pins, incident_id)
        incident = await call(lifecycle.pins.remove_incident, incident_id)
        if incident is None:  # removed by another request meanwhile
            raise ApiError(404, f"incident {incident_id[:140]!r} not found")
        await call(lifecycle.audit.record, "incident_delete", incident=incident_id,
                   title=incident["title"], trace_ids=list(incident["trace_ids"]), by=_user())
        return jsonify(_incident_json(incident))

    # -- pins ------------------------------------------------------------------------------------

    @bp.put("/api/v1/traces/<trace_id>/pin")
    async def pin(trace_id: str):
        """Pin one trace, on its own or (body ``{"incident": id}``) as part of an incident."""
        tid = _trace_id("traceId", trace_id)
        body = await _json_object(("incident",), optional=True)
        incident_id = body.get("incident")
        if incident_id is None:
            incident_id = ""
        elif not isinstance(incident_id, str) or not incident_id:
            raise BadRequest(f"incident: {_show(incident_id)} is not an incident ID (a non-empty string)")
        else:
            listed = (await call(_incident_or_404, lifecycle.pins, incident_id))["trace_ids"]
            if len(listed) >= MAX_INCIDENT_TRACES and tid.hex() not in listed:
                raise BadRequest(f"incident: {incident_id!r} already lists {MAX_INCIDENT_TRACES} traces")
        try:
            reasons = await call(lifecycle.pins.pin, tid.hex(), incident_id)
        except KeyError:  # the incident was removed meanwhile
            raise ApiError(404, f"incident {incident_id[:140]!r} not found") from None
        await call(lifecycle.audit.record, "pin", trace_ids=[tid.hex()], incident=incident_id or None,
                   by=_user())
        stored = await call(_stored, reader, {tid.hex()})
        return jsonify(_pin_json(tid.hex(), reasons, stored))

    @bp.delete("/api/v1/traces/<trace_id>/pin")
    async def unpin(trace_id: str):
        """Drop the trace's own pin, or (``?incident=ID``) take it out of that incident."""
        tid = _trace_id("traceId", trace_id)
        incident_id = request.args.get("incident") or ""
        if incident_id:
            await call(_incident_or_404, lifecycle.pins, incident_id)
        reasons = await call(lifecycle.pins.reasons, tid.hex())
        if incident_id not in reasons:
            what = f"incident {incident_id!r}" if incident_id else "a pin of its own"
            raise ApiError(404, f"trace {tid.hex()} is not pinned by {what}; pinned by: "
                                f"{', '.join(_reason(r) for r in reasons) or 'nothing'}")
        reasons = await call(lifecycle.pins.unpin, tid.hex(), incident_id)
        await call(lifecycle.audit.record, "unpin", trace_ids=[tid.hex()], incident=incident_id or None,
                   by=_user())
        stored = await call(_stored, reader, {tid.hex()})
        return jsonify(_pin_json(tid.hex(), reasons, stored))

    @bp.get("/api/v1/pins")
    async def list_pins():
        """Every pinned trace with what pins it."""
        pinned = await call(lifecycle.pins.pinned_reasons)
        stored = await call(_stored, reader, set(pinned))
        return jsonify({"pins": [_pin_json(t, pinned[t], stored) for t in sorted(pinned)]})

    # -- deletion --------------------------------------------------------------------------------

    @bp.delete("/api/v1/traces/<trace_id>")
    async def delete_trace(trace_id: str):
        """Delete one trace from both tiers (``?force=true`` also for a pinned trace)."""
        tid = _trace_id("traceId", trace_id)
        force = _bool_arg("force")
        reason = _reason_text(request.args.get("reason"))
        return await _delete([tid], force=force, reason=reason, query=None, window=None)

    @bp.post("/api/v1/deletions")
    async def deletions():
        """Delete the listed traces, or every trace a TraceQL query matches, from both tiers."""
        body = await _json_object(("traceIds", "q", "start", "end", "reason", "force"))
        if ("traceIds" in body) == ("q" in body):
            raise BadRequest("traceIds, q: give one of them, traceIds (a list of trace IDs) or q "
                             "(a TraceQL query)")
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise BadRequest(f"force: {_show(force)} is not true or false")
        reason = _reason_text(body.get("reason"), "reason")
        if "traceIds" in body:
            for name in ("start", "end"):
                if name in body:
                    raise BadRequest(f"{name}: only with q (a listed trace is deleted whole)")
            ids = _trace_id_list("traceIds", body["traceIds"], MAX_DELETE_TRACES)
            return await _delete(ids, force=force, reason=reason, query=None, window=None)
        q = body["q"]
        if not isinstance(q, str) or not q.strip():
            raise BadRequest("q: must be a non-empty TraceQL query, e.g. { resource.service.name = \"x\" }")
        if len(q) > MAX_QUERY:
            raise BadRequest(f"q: longer than {MAX_QUERY} characters")
        start = _unix_s(body, "start")
        end = _unix_s(body, "end")
        if start is not None and end is not None and end <= start:
            raise BadRequest(f"end: must be after start (start={start}, end={end})")
        try:
            sel = parse(q)
        except TraceQLError as exc:
            raise BadRequest(f"q: invalid TraceQL query: {exc}") from None
        fields = sel.query_fields()
        if start is None and end is None and all(v is None for v in fields.values()):
            raise BadRequest(f"q: {q[:80]!r} matches every trace; name what to delete (a condition, "
                             "or a start/end window)")
        try:
            query = TraceQuery(start_min_ns=start * SECOND if start is not None else None,
                               start_max_ns=(end + 1) * SECOND - 1 if end is not None else None,
                               limit=MAX_DELETE_TRACES + 1, **fields)
        except CriteriaError as exc:
            raise BadRequest(f"q: {exc}") from None
        found = await call(reader.find_traces, query)
        if len(found) > MAX_DELETE_TRACES:
            raise BadRequest(f"q: more than {MAX_DELETE_TRACES} traces match; one request deletes at "
                             "most that many — narrow the query or the start/end window and repeat")
        return await _delete([s.trace_id for s in found], force=force, reason=reason, query=q,
                             window={"start": start, "end": end}, known=True)

    async def _delete(ids: list[bytes], *, force: bool, reason: str | None, query: str | None,
                      window: dict | None, known: bool = False):
        doomed = set(ids)
        pinned = sorted(t.hex() for t in doomed & await call(lifecycle.pins.pinned))
        if pinned and not force:
            shown = ", ".join(pinned[:20]) + (f" and {len(pinned) - 20} more" if len(pinned) > 20 else "")
            raise ApiError(409, f"{len(pinned)} of the traces are pinned ({shown}); unpin them, or "
                                "delete with force: true to unpin and delete them")
        user = _user()
        present = len(doomed) if known else len(await call(_present, lifecycle.store, doomed))
        hot = cold = None
        try:
            hot = await writer.run(lambda: lifecycle.delete_hot(doomed))
            loop = asyncio.get_running_loop()
            cold = await loop.run_in_executor(None, lifecycle.delete_cold, doomed)
        except StoreClosed:
            raise
        except Exception as exc:  # recorded with what was done; the request may be repeated
            tier = "hot" if hot is None else "cold"
            log.exception("deleting %d traces failed in the %s tier", len(doomed), tier)
            await call(lifecycle.audit.record, "delete_failed", trace_ids=[t.hex() for t in ids],
                       query=query, reason=reason, by=user, error=f"{tier} tier: {exc}",
                       hot_partitions=hot["hot_partitions"] if hot else [])
            raise ApiError(500, f"deleting from the {tier} tier failed ({exc}); "
                                f"{'the hot tier was done; ' if hot else ''}repeat the request") from None
        spans = hot["spans"] + cold["spans"]
        for t in pinned:
            await call(lifecycle.pins.unpin, t, None)
        if pinned:
            await call(lifecycle.audit.record, "unpin", trace_ids=pinned, incident=None, by=user,
                       reason="deleted (force)")
        fields = {"query": query, **(window or {})} if query is not None else {"query": None}
        entry = await call(lifecycle.audit.record, "delete", trace_ids=[t.hex() for t in ids],
                           **fields, reason=reason, by=user, traces=present, spans=spans,
                           hot_partitions=hot["hot_partitions"], cold_files=cold["cold_files"])
        return jsonify({"deleted": {"traces": present, "spans": spans},
                        "hotPartitions": hot["hot_partitions"], "coldFiles": cold["cold_files"],
                        "unpinned": pinned, "audit": entry})

    # -- audit -----------------------------------------------------------------------------------

    @bp.get("/api/v1/audit")
    async def audit_log():
        """Audit entries (deletions, pins, incidents), newest first."""
        raw = request.args.get("limit")
        limit = integer("limit", raw, minimum=1, maximum=MAX_AUDIT) if raw else DEFAULT_AUDIT
        action = request.args.get("action") or None
        if action is not None and len(action) > 64:
            raise BadRequest("action: longer than 64 characters")
        return jsonify({"entries": await call(lifecycle.audit.entries, limit, action)})

    return bp


# --------------------------------------------------------------------------- request parts


async def _json_object(fields: tuple[str, ...], optional: bool = False) -> dict:
    """The request body as a JSON object with only ``fields``; ``optional``: an empty body is ``{}``."""
    raw = await request.get_data()
    if optional and not raw.strip():
        return {}
    try:
        body = await request.get_json(force=True, silent=False)
    except Exception:
        body = None
    if not isinstance(body, dict):
        raise BadRequest(f"body: expected a JSON object with {', '.join(fields)}")
    unknown = [k for k in body if k not in fields]
    if unknown:
        raise BadRequest(f"{unknown[0][:40]}: unknown field; the body takes {', '.join(fields)}")
    return body


def _trace_id(name: str, raw) -> bytes:
    if not isinstance(raw, str):
        raise BadRequest(f"{name}: {_show(raw)} is not a trace ID (1 to 32 hex digits)")
    try:
        return parse_trace_id(raw)
    except BadTraceId as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _trace_id_list(name: str, raw, most: int) -> list[bytes]:
    """A list of 1 to ``most`` trace IDs, duplicates dropped, order kept."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest(f"{name}: required, a list of 1 to {most} trace IDs (hex)")
    if len(raw) > most:
        raise BadRequest(f"{name}: {len(raw)} trace IDs; at most {most} per request")
    ids = [_trace_id(f"{name}[{i}]", v) for i, v in enumerate(raw)]
    return list(dict.fromkeys(ids))


def _check_link(link) -> None:
    if not isinstance(link, str) or len(link) > MAX_TEXT:
        raise BadRequest(f"link: {_show(link)} is not a URL of at most {MAX_TEXT} characters")
    try:
        parts = urlsplit(link)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"link: {link[:80]!r} is not an http or https URL")


def _reason_text(raw, name: str = "reason") -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadRequest(f"{name}: {_show(raw)} is not a string")
    if len(raw) > MAX_TEXT:
        raise BadRequest(f"{name}: longer than {MAX_TEXT} characters")
    return raw


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return False
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BadRequest(f"{name}: {raw[:40]!r} is not true or false")


def _unix_s(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**32 - 1:
        raise BadRequest(f"{name}: {_show(value)} is not a time in unix seconds (an integer)")
    return value


def _user() -> str:
    """Who asked: the ``X-Clew-User`` header, else the client's address."""
    who = request.headers.get("X-Clew-User") or request.remote_addr or "unknown"
    return who[:MAX_TEXT]


def _show(value) -> str:
    return repr(value)[:60]


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- store parts


def _stored(reader, trace_hex: set[str]) -> set[str]:
    """Which of the traces are still stored (call from a worker thread)."""
    return {t for t in trace_hex if reader.get_trace(bytes.fromhex(t)) is not None}


def _present(store, trace_ids: set[bytes]) -> set[bytes]:
    """Which of the traces a partition of either tier indexes (call from a worker thread)."""
    store._await_index()
    parts = store._readable()
    return {t for t in trace_ids if any(p.holds(t) for p in parts)}


def _incident_or_404(pins, incident_id: str) -> dict:
    incident = pins.incident(incident_id)
    if incident is None:
        raise ApiError(404, f"incident {incident_id[:140]!r} not found")
    return incident


# --------------------------------------------------------------------------- answers


def _reason(why: str) -> str:
    return why or SINGLE_PIN


def _incident_json(incident: dict, stored: set[str] | None = None) -> dict:
    out = {"id": incident["id"], "title": incident["title"], "link": incident.get("link"),
           "created": incident["created"], "traceIds": list(incident["trace_ids"])}
    if stored is not None:
        out["traces"] = [{"traceId": t, "stored": t in stored} for t in incident["trace_ids"]]
    return out


def _pin_json(trace_hex: str, reasons: list[str], stored: set[str]) -> dict:
    return {"traceId": trace_hex, "pinnedBy": [_reason(r) for r in reasons], "stored": trace_hex in stored}
