"""Query stage: OTLP spans → Zipkin v2 span JSON (what ``/api/v2/trace*`` and ``/api/v2/traces`` serve).

The reverse of the ingest mapping in ``collector/codec/zipkin.py``, following the OpenTelemetry
Collector's ``zipkinv2`` exporter translation (semconv 1.6.1 names), so that a Zipkin span sent to
Clew comes back as it was sent, and an OTLP span looks as the Collector would export it:

* ``traceId``: 16 hex digits when the high 64 bits are zero, else 32; ``id``/``parentId``: 16
  (``parentId`` absent on a root).  Lower-case.
* ``kind``: SERVER/CLIENT/PRODUCER/CONSUMER; absent for INTERNAL and UNSPECIFIED, an INTERNAL
  span getting the tag ``span.kind`` = ``internal`` (Collector).
* ``name`` absent when empty.  ``timestamp`` = start in µs (truncated), absent when the start is
  0 or the ingest marked it absent (``otel.zipkin.absentField.startTime``); ``duration`` = end −
  start in µs, less than 1 µs rounded up to 1 (Zipkin), absent when end ≤ start.
* ``localEndpoint``: ``serviceName`` from the resource's ``service.name`` (else ``faas.name``,
  ``k8s.deployment.name`` or ``process.executable.name``, named by the tag
  ``otlp.service.name.source``, as the Collector does), ``ipv4``/``ipv6`` from ``net.host.ip``,
  ``port`` from ``net.host.port``.  ``remoteEndpoint``: ``peer.service``, ``net.peer.ip``,
  ``net.peer.port``.  An IPv4-mapped IPv6 address is written as ``ipv4``; a value that is not an
  IP address, or a port outside 1..65535, stays a tag.  An endpoint is written when any of its
  fields is known.  Deviation: a span without any service name gets no ``serviceName`` (the
  Collector writes ``OTLPResourceNoServiceName``; Zipkin says "leave absent if unknown").
* ``annotations``: events, ``timestamp`` µs and ``value`` = the event name, or the Collector's
  ``name|{json attributes}|droppedCount`` when the event has attributes or dropped some;
  sorted by (timestamp, value) as Zipkin stores them.
* ``tags`` (sorted by key, as Zipkin writes them): resource attributes except the service name,
  then ``otel.scope.name``/``otel.scope.version`` of the scope, then span attributes (a span
  attribute wins over a resource attribute of the same key), each in its string form (pdata's
  ``AsString``: numbers as JSON numbers, booleans ``true``/``false``, bytes base64, arrays and
  maps compact JSON); ``w3c.tracestate``; links as ``otlp.link.N`` =
  ``traceId|spanId|traceState|{json attributes}|droppedCount`` (Collector).
* Status (the Collector's rules, tuned so Zipkin input round-trips): ERROR → tag ``error`` =
  the span's own ``error`` attribute when it has one (Zipkin's convention: the value is the
  message), else ``"true"``; any other status removes an ``error`` attribute (Zipkin treats any
  ``error`` tag as a failure).  OK → ``otel.status_code`` = ``STATUS_CODE_OK``.  ERROR adds
  ``otel.status_code`` = ``STATUS_CODE_ERROR`` and ``otel.status_description`` only when the
  status carries a message that the ``error`` tag does not already hold.  Deviation: the
  Collector always writes ``otel.status_code`` for ERROR and overwrites ``error`` with ``true``;
  Clew's ingest turns ``error=<message>`` into exactly that status, so writing it back as the
  tag alone loses nothing and gives Zipkin clients back what they sent.
* ``shared``/``debug`` = true from the bool attributes ``zipkin.shared``/``zipkin.debug`` that
  the ingest writes (the Collector drops both).

Scope tags are written with the current names ``otel.scope.name``/``otel.scope.version`` (the
Collector still writes ``otel.library.*``; Clew's ingest reads both).
"""
from __future__ import annotations

import base64
import ipaddress
import re

from query.anyvalue import as_raw, as_string, go_json  # pdata's AsString / AsRaw rendering

__all__ = ["to_zipkin_spans", "to_zipkin_traces", "trace_hex", "micros_duration", "NO_SERVICE_NAMES"]

KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
INTERNAL = 1
STATUS_OK, STATUS_ERROR = 1, 2
SERVICE_NAME_KEYS = ("service.name", "faas.name", "k8s.deployment.name", "process.executable.name")
SERVICE_NAME_SOURCE = "otlp.service.name.source"
START_ABSENT = "otel.zipkin.absentField.startTime"
SHARED, DEBUG = "zipkin.shared", "zipkin.debug"
LOCAL_KEYS = ("net.host.ip", "net.host.port")
REMOTE_KEYS = ("net.peer.ip", "net.peer.port")
NO_SERVICE_NAMES = frozenset({"", "OTLP_ResourceNoServiceName", "OTLPResourceNoServiceName"})
"""Placeholders other models use for "no service name"; Zipkin leaves the name absent."""

_ZERO8 = bytes(8)
_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")


def trace_hex(trace_id: bytes) -> str:
    """A trace ID as Zipkin writes it: 16 hex digits when the high 64 bits are zero, else 32."""
    key = trace_id.rjust(16, b"\0")
    return key[8:].hex() if key[:8] == _ZERO8 else key.hex()


def micros_duration(nanos: int) -> int:
    """A duration in whole µs as Zipkin writes it: 0 when not positive, at least 1 otherwise."""
    if nanos <= 0:
        return 0
    return max(1, nanos // 1000)


def to_zipkin_spans(traces) -> list[dict]:
    """Zipkin v2 span dicts of every span in ``traces`` (a ``TracesData`` or anything with
    ``resource_spans``), in message order."""
    out = []
    for rs in traces.resource_spans:
        service, resource_tags = _resource(rs.resource)
        for ss in rs.scope_spans:
            base = dict(resource_tags)
            if ss.scope.name:
                base["otel.scope.name"] = ss.scope.name
            if ss.scope.version:
                base["otel.scope.version"] = ss.scope.version
            for span in ss.spans:
                out.append(_span(span, service, base))
    return out


def to_zipkin_traces(traces) -> list[list[dict]]:
    """Spans grouped per trace ID, traces in order of first appearance."""
    groups: dict[str, list] = {}
    for span in to_zipkin_spans(traces):
        groups.setdefault(span["traceId"], []).append(span)
    return list(groups.values())


# --------------------------------------------------------------------------- pieces


def _resource(resource) -> tuple[str, dict]:
    """(service name or "", tags from the other resource attributes)."""
    tags = {kv.key: _text(kv.value) for kv in resource.attributes}
    for n, key in enumerate(SERVICE_NAME_KEYS):
        if key in tags:
            service = tags.pop(key)
            if n:  # not service.name: say where the name came from (Collector)
                tags[SERVICE_NAME_SOURCE] = key
            return service, tags
    return "", tags


def _span(span, service: str, base: dict) -> dict:
    tags = dict(base)
    flags = {}
    typed = {}  # attributes kept as AnyValue where the endpoint needs the type
    for kv in span.attributes:
        key = kv.key
        if key in (START_ABSENT, SHARED, DEBUG):
            flags[key] = kv.value.WhichOneof("value") == "bool_value" and kv.value.bool_value
            continue
        tags[key] = _text(kv.value)
        typed[key] = kv.value

    out = {"traceId": trace_hex(span.trace_id)}
    parent = span.parent_span_id
    if parent and any(parent):
        out["parentId"] = parent.rjust(8, b"\0").hex()
    out["id"] = span.span_id.rjust(8, b"\0").hex()
    kind = KINDS.get(span.kind)
    if kind:
        out["kind"] = kind
    elif span.kind == INTERNAL:
        tags["span.kind"] = "internal"
    if span.name:
        out["name"] = span.name
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start // 1000 and not flags.get(START_ABSENT):
        out["timestamp"] = start // 1000
    duration = micros_duration(end - start)
    if duration:
        out["duration"] = duration

    local = _endpoint(tags, service, *LOCAL_KEYS)
    if local:
        out["localEndpoint"] = local
    remote_service = tags.pop("peer.service", "")
    remote = _endpoint(tags, remote_service, *REMOTE_KEYS)
    if remote:
        out["remoteEndpoint"] = remote

    if span.trace_state:
        tags["w3c.tracestate"] = span.trace_state
    _status(span.status, tags)
    for n, link in enumerate(span.links):
        attrs = {kv.key: as_raw(kv.value) for kv in link.attributes}
        tags[f"otlp.link.{n}"] = "|".join((
            link.trace_id.hex() if any(link.trace_id) else "",
            link.span_id.hex() if any(link.span_id) else "",
            link.trace_state, go_json(attrs), str(link.dropped_attributes_count)))

    if span.events:
        annotations = []
        for event in span.events:
            value = event.name
            if event.attributes or event.dropped_attributes_count:
                attrs = {kv.key: as_raw(kv.value) for kv in event.attributes}
                value = f"{event.name}|{go_json(attrs)}|{event.dropped_attributes_count}"
            annotations.append((event.time_unix_nano // 1000, value))
        out["annotations"] = [{"timestamp": t, "value": v} for t, v in sorted(annotations)]
    if tags:
        out["tags"] = {k: tags[k] for k in sorted(tags)}
    if flags.get(DEBUG):
        out["debug"] = True
    if flags.get(SHARED):
        out["shared"] = True
    return out


def _text(value) -> str:
    """pdata's ``AsString``: bytes as bare base64, the rest as ``query.jaeger`` renders it."""
    if value.WhichOneof("value") == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return as_string(value)


def _endpoint(tags: dict, service: str, ip_key: str, port_key: str) -> dict | None:
    """An endpoint of the service name and the IP/port tags, which it takes out of ``tags``."""
    ep = {}
    if service:
        ep["serviceName"] = service
    ip = tags.get(ip_key)
    if ip is not None:
        family, text = _ip(ip)
        if family:
            ep[family] = text
            del tags[ip_key]
    port = tags.get(port_key)
    if port is not None and port.isascii() and port.isdigit() and 0 < int(port) < 65536:
        ep["port"] = int(port)
        del tags[port_key]
    return ep or None


def _ip(text: str) -> tuple[str, str]:
    """("ipv4" or "ipv6", canonical text) of an address, ("", "") when it is not one.

    A dotted quad with leading zeros (``10.0.0.04``, in Zipkin's own test data) is an IPv4
    address written as sent: Zipkin accepts it, Python's parser and Go's refuse it."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if _QUAD.match(text) and all(int(part) < 256 for part in text.split(".")):
            return "ipv4", text
        return "", ""
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return "ipv4", str(addr.ipv4_mapped)
        return "ipv6", str(addr)
    return "ipv4", str(addr)


def _status(status, tags: dict) -> None:
    code, message = status.code, status.message
    if code != STATUS_ERROR:
        tags.pop("error", None)
        if code == STATUS_OK:
            tags["otel.status_code"] = "STATUS_CODE_OK"
            if message:
                tags["otel.status_description"] = message
        return
    error = tags.get("error")
    if error is None:
        tags["error"] = error = "true"
    if message and message != error:
        tags["otel.status_code"] = "STATUS_CODE_ERROR"
        tags["otel.status_description"] = message
