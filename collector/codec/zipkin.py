"""Decode stage, pure-Python reference: Zipkin v2 JSON / proto3 and v1 JSON spans → OTLP request bytes.

The compiled twin is ``_ext/_zipkin.pyx``: same public API, same output bytes, same
``DecodeError`` messages.  Public functions (each returns ``ExportTraceServiceRequest`` bytes,
which then take the ordinary OTLP path):

* ``v2_json_to_otlp(body)``   ``POST /api/v2/spans`` JSON, an array of v2 spans;
* ``v2_proto_to_otlp(body)``  ``POST /api/v2/spans`` proto3 ``zipkin.proto3.ListOfSpans``, walked
  at wire level (no generated classes);
* ``v1_json_to_otlp(body)``   ``POST /api/v1/spans`` JSON, an array of v1 spans;
* ``v1_spans_to_otlp(spans)`` already parsed v1 spans in the v1 JSON shape (the Thrift reader's
  output), converted exactly like v1 JSON.

Whole-request refusal
---------------------
A bad span refuses the whole request with ``DecodeError`` (the receiver answers 400 and stores
nothing): the body is not JSON or not an array (a bare span object is refused too, as Zipkin does);
a span is not an object; ``traceId``/``id`` missing, not hex, of the wrong length or all zeros; a
field of the wrong type (``name``, ``kind``, ``serviceName``, ``ipv4``/``ipv6`` not strings,
``port`` not an integer, ``debug``/``shared`` not booleans, ``tags`` not an object, ``annotations``
not an array of objects); a time that is not a number of microseconds (a JSON integer, a float, or a
string of decimal digits) or does not fit (``(timestamp + duration) * 1000`` must fit uint64).  The
message names the span index and field, e.g. ``span[3].traceId: 'xyz' is not 16 or 32 hex digits``.
For proto3 the wire errors are those of the OTLP reader (``Span: truncated varint at offset 12``),
strings must be valid UTF-8 (as protobuf requires), and field names are the proto's
(``span[0].trace_id: 5 bytes, expected 8 or 16``).

IDs
---
``traceId`` is 16 or 32 hex digits (either case); a 64-bit trace ID is left-padded with zeros to
16 bytes.  ``id`` and ``parentId`` are 16 hex digits.  Deviation from Zipkin, which left-pads
shorter IDs: shorter or longer IDs are refused.  A ``parentId`` that is empty, all zeros or equal
to ``id`` is dropped (Zipkin normalises zeros to absent; the Collector drops self-parents).  In
proto3, ``trace_id`` is 8 or 16 bytes and ``id``/``parent_id`` 8 bytes.

v2 → OTLP mapping (the OpenTelemetry Collector's ``zipkinv2`` translator, semconv 1.6.1 names)
------------------------------------------------------------------------------------------------
* Resource: ``service.name`` = ``localEndpoint.serviceName``; when absent or empty the resource
  has no ``service.name`` (the Collector's "OTLPResourceNoServiceName" case).  A tag
  ``otlp.service.name.source`` renames the key that holds the service name.  Tags whose keys are
  resource semantic-convention names (``host.name``, ``k8s.pod.name``, ``service.version``, … see
  ``RESOURCE_KEYS``) and ``opencensus.starttime``/``opencensus.exporterversion``/
  ``opencensus.resourcetype`` move to the resource.  One ResourceSpans per distinct resource, in
  order of first appearance.  Deviations: the Collector sorts by service name and takes the
  resource tags of the first span of a service only (dropping other spans' resource tags, and
  all of them when there is no service name); here spans whose resource tags differ get distinct
  resources, so nothing is dropped, and input order is kept.
* Scope: ``otel.scope.name``/``otel.scope.version`` (current names) or ``otel.library.name``/
  ``otel.library.version`` (the Collector's) → InstrumentationScope; the tags are removed.  One
  ScopeSpans per distinct scope within a resource, in order of first appearance.
* Kind: CLIENT→3, SERVER→2, PRODUCER→4, CONSUMER→5 (JSON matched case-insensitively; unknown
  names → unspecified).  Absent kind → UNSPECIFIED (0), or INTERNAL (1) when a ``span.kind`` tag
  says ``internal``; that tag is removed only when kind is absent (Collector).
* Name as sent (Zipkin lower-cases names when it stores them; we keep the case, as the
  Collector does — the Zipkin query API must match case-insensitively).
* Times: start = ``timestamp`` µs × 1000, end = (``timestamp`` + ``duration``) × 1000.  Absent
  ``timestamp`` → start 0, end = duration × 1000, and a bool attribute
  ``otel.zipkin.absentField.startTime`` = true (Collector).  Absent duration → end = start.
* ``w3c.tracestate`` tag → ``trace_state`` (removed).
* Status: ``otel.status_code`` tag (``STATUS_CODE_UNSET|OK|ERROR`` as the Collector reads it,
  and also ``UNSET|OK|ERROR`` as the OTel Zipkin exporter spec writes it; other values → unset)
  → code, with ``otel.status_description`` → message (both removed).  Then the ``error`` tag:
  ``"true"`` → ERROR and the tag is removed (Collector).  Deviation (DESIGN: "status from
  ``error`` tags"; Zipkin marks a span as failed by the tag's presence, its value being the
  message): any other value except ``"false"`` also sets ERROR, its value (if not empty) becomes
  the message unless one is already set, and the tag is kept as an attribute (the Collector keeps
  it, without setting the status).
* Links: tags ``otlp.link.0``, ``otlp.link.1``, … (until the first missing number) in the
  Collector's form ``traceId|spanId|traceState|{json attributes}|droppedCount`` → links (removed).
  Deviation: a malformed value stays an ordinary attribute (the Collector fails the request).
* Attributes: every other tag as a string attribute, in tag order, then from the local endpoint
  ``net.host.ip`` (ipv6 wins over ipv4, as the Collector's overwrite does) and ``net.host.port``
  (int, when > 0); from the remote endpoint ``peer.service``, ``net.peer.ip`` (ipv6 wins),
  ``net.peer.port`` (int, when > 0).  A tag of the same key is overwritten in place.  IPs are
  printed canonically (IPv4-mapped IPv6 as dotted IPv4, as Go does); JSON text that is not an IP
  address is kept as sent (the Collector would refuse the request).  Ports outside 1..65535 are
  ignored.  JSON tag values that are numbers or booleans are written as their JSON text
  (``true``/``false``); ``null`` values are skipped.
* Deviation, so the Zipkin query API can round-trip them (the Collector drops both): ``shared``
  → bool attribute ``zipkin.shared`` = true, ``debug`` → ``zipkin.debug`` = true.  Shared spans
  are kept as separate spans: a client and a server span with one span ID are both emitted.
* Annotations → events in order (time = timestamp × 1000, name = value).  A value in the
  Collector's form ``name|{json attributes}|droppedCount`` becomes a named event with
  attributes (strings, booleans, integers, doubles) and a dropped count; any other value, even
  with ``|`` in it, is the whole name (deviation: the Collector cuts the name at the first ``|``
  and fails the request on bad JSON).
* Tags' resource semantic-convention keys are never span attributes.  The Collector's
  ``ParseStringTags`` option (typing ``"123"`` as int) is not offered: tags stay strings.

Duplicate keys: JSON objects keep the last value (``json`` semantics); proto3 map entries too.

v1 → v2 (Zipkin's own ``V1SpanConverter`` rules, re-implemented)
-----------------------------------------------------------------
Core annotations with an endpoint set kind and times: ``cs``/``cr`` CLIENT, ``sr``/``ss``
SERVER, ``ms`` PRODUCER, ``mr`` CONSUMER (``ws``/``wr`` wire send/receive refine messaging times);
other annotations become v2 annotations of the span of their endpoint's service.  Spans are
split by endpoint service name: a v1 span with both ``cs`` and ``sr`` becomes a CLIENT span and a
``shared`` SERVER span (timestamp ``sr``, duration ``ss - sr``), and likewise ``ms`` + ``mr``.  The
client owns the v1 span's timestamp/duration; otherwise times come from the annotation pairs.  A
server-only span without a v1 ``timestamp`` is marked ``shared``.  Binary annotations ``ca``/
``sa``/``ma`` with value true are addresses → remote endpoints (``sa`` of a client, ``ca`` of a
server — without its service name when it equals the server's —, ``ma`` of producer/consumer; with
no core annotations, ``ca`` + ``sa`` make a client-less remote, ``ca`` alone a SERVER span).  Other
binary annotations are tags on the span of their endpoint (``lc`` = "" skipped); non-string
values become text (bool ``true``/``false``, numbers, bytes base64; Thrift-typed raw bytes per
``type``).  Annotations of each output span are sorted by (timestamp, value), duplicates dropped.
Deviation: service names are compared as sent (Zipkin lower-cases them first).
"""
from __future__ import annotations

import base64
import json
import math
import re
import socket
import struct
from functools import lru_cache

from collector.codec import otlp_writer as w
from collector.codec.otlp import _expect, _field
from collector.errors import DecodeError, json_kind

MAX_US = 0xFFFFFFFFFFFFFFFF // 1000
"""Largest microsecond time whose nanoseconds fit OTLP's fixed64."""

# Zipkin kind (proto3 enum numbering) → OTLP Span.Kind.
KIND_OTLP = (0, 3, 2, 4, 5)
KIND_BY_NAME = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}

STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
                "UNSET": 0, "OK": 1, "ERROR": 2}

# Resource semantic-convention keys of semconv 1.6.1 (what the Collector's translator moves).
RESOURCE_KEYS = frozenset("""
cloud.provider cloud.account.id cloud.region cloud.availability_zone cloud.platform
aws.ecs.container.arn aws.ecs.cluster.arn aws.ecs.launchtype aws.ecs.task.arn aws.ecs.task.family
aws.ecs.task.revision aws.eks.cluster.arn aws.log.group.names aws.log.group.arns
aws.log.stream.names aws.log.stream.arns container.name container.id container.runtime
container.image.name container.image.tag deployment.environment device.id device.model.identifier
device.model.name faas.name faas.id faas.version faas.instance faas.max_memory host.id host.name
host.type host.arch host.image.name host.image.id host.image.version k8s.cluster.name
k8s.node.name k8s.node.uid k8s.namespace.name k8s.pod.uid k8s.pod.name k8s.container.name
k8s.container.restart_count k8s.replicaset.uid k8s.replicaset.name k8s.deployment.uid
k8s.deployment.name k8s.statefulset.uid k8s.statefulset.name k8s.daemonset.uid k8s.daemonset.name
k8s.job.uid k8s.job.name k8s.cronjob.uid k8s.cronjob.name os.type os.description os.name
os.version process.pid process.executable.name process.executable.path process.command
process.command_line process.command_args process.owner process.runtime.name
process.runtime.version process.runtime.description service.name service.namespace
service.instance.id service.version telemetry.sdk.name telemetry.sdk.language
telemetry.sdk.version telemetry.auto.version webengine.name webengine.version
webengine.description opencensus.starttime opencensus.exporterversion opencensus.resourcetype
""".split())

SERVICE_NAME_SOURCE = "otlp.service.name.source"
SCOPE_KEYS = ("otel.scope.name", "otel.library.name", "otel.scope.version", "otel.library.version")
START_ABSENT = "otel.zipkin.absentField.startTime"
LINK_PREFIX = "otlp.link."
ENDPOINT_KEYS = ("net.host.ip", "net.host.port", "peer.service", "net.peer.ip", "net.peer.port",
                 START_ABSENT, "zipkin.shared", "zipkin.debug")

SPECIAL_TAGS = frozenset(RESOURCE_KEYS | {SERVICE_NAME_SOURCE, "w3c.tracestate", "span.kind",
                                          "otel.status_code", "otel.status_description"}
                         | set(SCOPE_KEYS) | set(ENDPOINT_KEYS))
"""Tag keys that need more than "write a string attribute" (plus ``otlp.link.*`` and ``error``).
The compiled twin writes spans without any of them directly and hands the others to
``tag_plan``."""

_HEX = re.compile(r"[0-9a-fA-F]*\Z")
_ANY_TRUE = w.any_bool(True)


# ------------------------------------------------------------------------------ small helpers

def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 48 else text[:45] + "..."


def _fail(msg: str):
    raise DecodeError(msg)


def load_json(body, what: str = "spans") -> list:
    """The JSON array of a request body; DecodeError if not JSON or not an array."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise DecodeError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise DecodeError(f"expected a JSON array of {what}, got {json_kind(doc)}")
    return doc


def hex_id(v, i: int, field: str, sizes: tuple) -> bytes:
    """Bytes of a hex ID of one of ``sizes`` hex digits; a 16-digit trace ID is left-padded."""
    if v is None:
        _fail(f"span[{i}].{field}: missing")
    if not isinstance(v, str) or len(v) not in sizes or not _HEX.match(v):
        want = " or ".join(str(s) for s in sizes)
        _fail(f"span[{i}].{field}: {_show(v)} is not {want} hex digits")
    raw = bytes.fromhex(v)
    if not any(raw):
        _fail(f"span[{i}].{field}: {_show(v)} is all zeros")
    return raw if len(raw) != 8 or field != "traceId" else bytes(8) + raw


def parent_id(v, i: int, span_id: bytes) -> bytes:
    if v is None or v == "":
        return b""
    if not isinstance(v, str) or len(v) != 16 or not _HEX.match(v):
        _fail(f"span[{i}].parentId: {_show(v)} is not 16 hex digits")
    raw = bytes.fromhex(v)
    return b"" if not any(raw) or raw == span_id else raw


def micros(v, where: str) -> int:
    """A JSON time in µs: an integer, a float (truncated) or a string of digits; None → 0."""
    if v is None:
        return 0
    t = type(v)
    if t is int:
        n = v
    elif t is float:
        if not math.isfinite(v):
            _fail(f"{where}: {_show(v)} is not a number of microseconds")
        n = int(v)
    elif t is str and v.isascii() and v.isdigit():
        n = int(v)
    else:
        _fail(f"{where}: {_show(v)} is not a number of microseconds")
    if n < 0 or n > MAX_US:
        _fail(f"{where}: {_show(v)} is out of range")
    return n


def check_end(ts: int, dur: int, i: int) -> None:
    if ts + dur > MAX_US:
        _fail(f"span[{i}].duration: timestamp + duration is out of range")


def opt_str(v, where: str) -> str:
    if v is None:
        return ""
    if type(v) is not str:
        _fail(f"{where}: expected a string, got {json_kind(v)}")
    return v


def opt_bool(v, where: str) -> bool:
    if v is None:
        return False
    if v is not True and v is not False:
        _fail(f"{where}: expected true or false, got {json_kind(v)}")
    return v


def tag_text(v, i: int, key: str):
    """A tag value as text: strings as they are, numbers/booleans as JSON text, null → None."""
    if type(v) is str:
        return v
    if v is None:
        return None
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        return json.dumps(v)
    _fail(f"span[{i}].tags[{_show(key)}]: expected a string, got {json_kind(v)}")


@lru_cache(maxsize=4096)
def ip_packed(raw: bytes):
    """Canonical text of a 4- or 16-byte address (IPv4-mapped IPv6 printed as IPv4, as Go does)."""
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        if raw[:12] == b"\0" * 10 + b"\xff\xff":
            return socket.inet_ntop(socket.AF_INET, raw[12:])
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


@lru_cache(maxsize=4096)
def ip_text(text: str) -> str:
    """Canonical form of an IP address given as text; text that is not an address is kept."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return ip_packed(socket.inet_pton(family, text))
        except (OSError, ValueError):
            pass
    return text


def json_endpoint(ep, i: int, field: str):
    """(serviceName or "", ip text or "", port or 0) of a JSON endpoint; None when absent."""
    if ep is None:
        return None
    if type(ep) is not dict:
        _fail(f"span[{i}].{field}: expected an object, got {json_kind(ep)}")
    svc = opt_str(ep.get("serviceName"), f"span[{i}].{field}.serviceName")
    ip4 = opt_str(ep.get("ipv4"), f"span[{i}].{field}.ipv4")
    ip6 = opt_str(ep.get("ipv6"), f"span[{i}].{field}.ipv6")
    port = ep.get("port")
    if port is None:
        port = 0
    elif type(port) is not int:
        _fail(f"span[{i}].{field}.port: expected an integer, got {json_kind(port)}")
    elif not 0 < port < 65536:
        port = 0
    ip = ip_text(ip6) if ip6 else (ip_text(ip4) if ip4 else "")
    return (svc, ip, port)


# ------------------------------------------------------------------------- the shared mapping

def _put(attrs: list, key: str, value: bytes) -> None:
    """Set attribute ``key``: overwrite in place when present (pdata ``Put``), else append."""
    for n, (k, _v) in enumerate(attrs):
        if k == key:
            attrs[n] = (key, value)
            return
    attrs.append((key, value))


def _json_attr(value):
    """AnyValue bytes of a JSON attribute value as the Collector types it, or None (skipped)."""
    if value is True or value is False:
        return w.any_bool(value)
    if type(value) is str:
        return w.any_string(value)
    if type(value) in (int, float):
        if type(value) is float and not math.isfinite(value):
            return None
        if value == int(value) and -(1 << 63) <= int(value) < (1 << 63):
            return w.any_int(int(value))
        return w.any_double(float(value))
    return None


def _structured(parts: list, first: int):
    """(attribute KeyValues, dropped count) of ``…|{json}|count`` parts, or None if malformed."""
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) or int(last) >= 1 << 32:
        return None
    try:
        obj = json.loads("|".join(parts[first:-1]))
    except (ValueError, RecursionError):
        return None
    if type(obj) is not dict:
        return None
    kvs = []
    for k, v in obj.items():
        value = _json_attr(v)
        if value is not None:
            kvs.append(w.key_value(k, value))
    return kvs, int(last)


def event_bytes(time_ns: int, value: str) -> bytes:
    """Span.Event of an annotation: 1 time, 2 name, 3 attributes, 4 dropped_attributes_count."""
    if "|" in value:
        parts = value.split("|")
        if len(parts) >= 3:
            got = _structured(parts, 1)
            if got is not None:
                return (w.f_fixed64(1, time_ns) + w.f_str(2, parts[0]) + w.attributes(3, got[0])
                        + w.f_varint(4, got[1]))
    return w.f_fixed64(1, time_ns) + w.f_str(2, value)


def _link_bytes(value: str):
    """Span.Link of an ``otlp.link.N`` tag (1 trace, 2 span, 3 state, 4 attrs, 5 dropped) or None."""
    parts = value.split("|")
    if len(parts) < 5:
        return None
    tid, sid = parts[0], parts[1]
    if len(tid) not in (0, 32) or len(sid) not in (0, 16) or not _HEX.match(tid) or not _HEX.match(sid):
        return None
    got = _structured(parts, 3)
    if got is None:
        return None
    return (w.f_bytes(1, bytes.fromhex(tid)) + w.f_bytes(2, bytes.fromhex(sid)) + w.f_str(3, parts[2])
            + w.attributes(4, got[0]) + w.f_varint(5, got[1]))


def tag_plan(tags: dict, kind: int, service: str):
    """Everything the tags decide for one span.

    Returns (resource items, scope (name, version), trace_state, OTLP kind, status code, status
    message, links, attributes) where resource items are (key, str) pairs and attributes are
    (key, AnyValue bytes) pairs.  ``tags`` is consumed.
    """
    resource = []
    source = tags.pop(SERVICE_NAME_SOURCE, "")
    if service:
        resource.append((source or "service.name", service))
    for key in [k for k in tags if k in RESOURCE_KEYS]:
        value = tags.pop(key)
        for n, (k, _v) in enumerate(resource):
            if k == key:
                resource[n] = (key, value)
                break
        else:
            resource.append((key, value))
    scope_name = tags.pop("otel.scope.name", None)
    library_name = tags.pop("otel.library.name", None)
    scope_version = tags.pop("otel.scope.version", None)
    library_version = tags.pop("otel.library.version", None)
    scope = (scope_name if scope_name is not None else library_name or "",
             scope_version if scope_version is not None else library_version or "")
    trace_state = tags.pop("w3c.tracestate", "")
    if kind:
        otlp_kind = KIND_OTLP[kind]
    else:
        otlp_kind = 1 if tags.pop("span.kind", None) == "internal" else 0
    code, message = 0, ""
    if "otel.status_code" in tags:
        code = STATUS_CODES.get(tags.pop("otel.status_code"), 0)
        if "otel.status_description" in tags:
            message = tags.pop("otel.status_description")
    error = tags.get("error")
    if error is not None:
        if error == "true":
            code = 2
            del tags["error"]
        elif error != "false":
            code = 2
            if not message:
                message = error
    links = []
    for n in range(128):
        key = f"{LINK_PREFIX}{n}"
        value = tags.get(key)
        if value is None:
            break
        link = _link_bytes(value)
        if link is not None:
            links.append(link)
            del tags[key]
    attrs = [(k, w.any_string(v)) for k, v in tags.items()]
    return tuple(resource), scope, trace_state, otlp_kind, code, message, links, attrs


def span_bytes(z, i: int):
    """(resource items, scope, OTLP Span bytes) of one normalised span ``z``.

    ``z`` = (trace_id, span_id, parent_id, kind, name, ts, dur, local, remote, annotations, tags,
    debug, shared); endpoints are (service, ip, port) or None, annotations (µs, value) pairs.
    """
    trace_id, span_id, parent, kind, name, ts, dur, local, remote, annotations, tags, debug, shared = z
    service = local[0] if local else ""
    resource, scope, trace_state, otlp_kind, code, message, links, attrs = tag_plan(tags, kind, service)
    if local:
        if local[1]:
            _put(attrs, "net.host.ip", w.any_string(local[1]))
        if local[2]:
            _put(attrs, "net.host.port", w.any_int(local[2]))
    if remote:
        if remote[0]:
            _put(attrs, "peer.service", w.any_string(remote[0]))
        if remote[1]:
            _put(attrs, "net.peer.ip", w.any_string(remote[1]))
        if remote[2]:
            _put(attrs, "net.peer.port", w.any_int(remote[2]))
    if not ts:
        _put(attrs, START_ABSENT, _ANY_TRUE)
    if shared:
        _put(attrs, "zipkin.shared", _ANY_TRUE)
    if debug:
        _put(attrs, "zipkin.debug", _ANY_TRUE)
    events = [event_bytes(t * 1000, v) for t, v in annotations]
    body = w.span(trace_id, span_id, name, otlp_kind, ts * 1000, (ts + dur) * 1000,
                  parent_span_id=parent, trace_state=trace_state,
                  kvs=[w.key_value(k, v) for k, v in attrs], events=events, links=links,
                  status_bytes=w.status(code, message))
    return resource, scope, body


def resource_bytes(items) -> bytes:
    """Resource.attributes of (key, str) pairs, as the ResourceSpans.resource payload."""
    return w.attributes(1, [w.key_value(k, w.any_string(v)) for k, v in items])


def emit(spans) -> bytes:
    """ExportTraceServiceRequest of normalised spans, grouped by resource then scope.

    ``spans`` may be a generator: each span is checked and translated before the next is read,
    so the first error of a body is the same in both twins.
    """
    groups: dict = {}
    for i, z in enumerate(spans):
        try:
            resource, scope, body = span_bytes(z, i)
            group = groups.get(resource)
            if group is None:
                group = groups[resource] = (resource_bytes(resource), {})
            bodies = group[1].get(scope)
            if bodies is None:
                scope_payload = w.f_str(1, scope[0]) + w.f_str(2, scope[1])
                bodies = group[1][scope] = [scope_payload]
            bodies.append(body)
        except UnicodeEncodeError:
            raise DecodeError(f"span[{i}]: text is not valid Unicode (a lone surrogate)") from None
    out = []
    for payload, scopes in groups.values():
        rs = w.f_bytes(1, payload, keep_empty=True)
        for scope_payload, *bodies in scopes.values():
            ss = w.f_bytes(1, scope_payload) + b"".join(w.f_bytes(2, s, keep_empty=True) for s in bodies)
            rs += w.f_bytes(2, ss, keep_empty=True)
        out.append(rs)
    return w.export_request(out)


# --------------------------------------------------------------------------------- v2 JSON

def json_span(s, i: int):
    """Normalised span of one parsed v2 JSON span (the tuple ``span_bytes`` takes)."""
    if type(s) is not dict:
        _fail(f"span[{i}]: expected an object, got {json_kind(s)}")
    trace_id = hex_id(s.get("traceId"), i, "traceId", (16, 32))
    span_id = hex_id(s.get("id"), i, "id", (16,))
    parent = parent_id(s.get("parentId"), i, span_id)
    kind_name = opt_str(s.get("kind"), f"span[{i}].kind")
    kind = KIND_BY_NAME.get(kind_name.upper(), 0) if kind_name else 0
    name = opt_str(s.get("name"), f"span[{i}].name")
    ts = micros(s.get("timestamp"), f"span[{i}].timestamp")
    dur = micros(s.get("duration"), f"span[{i}].duration")
    check_end(ts, dur, i)
    local = json_endpoint(s.get("localEndpoint"), i, "localEndpoint")
    remote = json_endpoint(s.get("remoteEndpoint"), i, "remoteEndpoint")
    raw = s.get("annotations")
    annotations = []
    if raw is not None:
        if type(raw) is not list:
            _fail(f"span[{i}].annotations: expected an array, got {json_kind(raw)}")
        for j, a in enumerate(raw):
            if type(a) is not dict:
                _fail(f"span[{i}].annotations[{j}]: expected an object, got {json_kind(a)}")
            at = micros(a.get("timestamp"), f"span[{i}].annotations[{j}].timestamp")
            annotations.append((at, opt_str(a.get("value"), f"span[{i}].annotations[{j}].value")))
    raw = s.get("tags")
    tags = {}
    if raw is not None:
        if type(raw) is not dict:
            _fail(f"span[{i}].tags: expected an object, got {json_kind(raw)}")
        for k, v in raw.items():
            text = tag_text(v, i, k)
            if text is not None:
                tags[k] = text
    debug = opt_bool(s.get("debug"), f"span[{i}].debug")
    shared = opt_bool(s.get("shared"), f"span[{i}].shared")
    return (trace_id, span_id, parent, kind, name, ts, dur, local, remote, annotations, tags,
            debug, shared)


def v2_spans_to_otlp(spans: list) -> bytes:
    """OTLP request bytes of parsed v2 JSON spans (a list of dicts)."""
    return emit(json_span(s, i) for i, s in enumerate(spans))


def v2_json_to_otlp(body) -> bytes:
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin v2 JSON body (an array of spans)."""
    return v2_spans_to_otlp(load_json(body))


# ------------------------------------------------------------------------------- v2 proto3

def _utf8(buf, s, e, ctx, name, kpos) -> str:
    try:
        return buf[s:e].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{ctx}.{name}: invalid UTF-8 (at offset {kpos})") from None


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def _proto_endpoint(buf, pos, end, ep: list) -> None:
    """Merge an Endpoint message into ``ep`` = [service, ipv4 bytes, ipv6 bytes, port]."""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Endpoint")
        if f == 1:
            _expect(wt, 2, "Endpoint", "service_name", kpos)
            ep[0] = _utf8(buf, s, e, "Endpoint", "service_name", kpos)
        elif f == 2:
            _expect(wt, 2, "Endpoint", "ipv4", kpos)
            ep[1] = buf[s:e]
        elif f == 3:
            _expect(wt, 2, "Endpoint", "ipv6", kpos)
            ep[2] = buf[s:e]
        elif f == 4:
            _expect(wt, 0, "Endpoint", "port", kpos)
            ep[3] = _int32(v)


def _endpoint_tuple(ep):
    if ep is None:
        return None
    svc, ip4, ip6, port = ep
    ip = (len(ip6) == 16 and ip_packed(ip6)) or (len(ip4) == 4 and ip_packed(ip4)) or ""
    return (svc, ip, port if 0 < port < 65536 else 0)


def proto_span(buf, pos, end, i: int):
    """Normalised span of one proto3 ``Span`` message at buf[pos:end]."""
    trace_id = parent = span_id = b""
    kind = ts = dur = 0
    name = ""
    local = remote = None
    annotations = []
    tags = {}
    debug = shared = False
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Span")
        if f == 1:
            _expect(wt, 2, "Span", "trace_id", kpos)
            trace_id = buf[s:e]
        elif f == 2:
            _expect(wt, 2, "Span", "parent_id", kpos)
            parent = buf[s:e]
        elif f == 3:
            _expect(wt, 2, "Span", "id", kpos)
            span_id = buf[s:e]
        elif f == 4:
            _expect(wt, 0, "Span", "kind", kpos)
            kind = v if v <= 4 else 0
        elif f == 5:
            _expect(wt, 2, "Span", "name", kpos)
            name = _utf8(buf, s, e, "Span", "name", kpos)
        elif f == 6:
            _expect(wt, 1, "Span", "timestamp", kpos)
            ts = int.from_bytes(buf[s:e], "little")
        elif f == 7:
            _expect(wt, 0, "Span", "duration", kpos)
            dur = v
        elif f == 8:
            _expect(wt, 2, "Span", "local_endpoint", kpos)
            if local is None:
                local = ["", b"", b"", 0]
            _proto_endpoint(buf, s, e, local)
        elif f == 9:
            _expect(wt, 2, "Span", "remote_endpoint", kpos)
            if remote is None:
                remote = ["", b"", b"", 0]
            _proto_endpoint(buf, s, e, remote)
        elif f == 10:
            _expect(wt, 2, "Span", "annotations", kpos)
            at, value, q = 0, "", s
            while q < e:
                k2 = q
                f2, wt2, s2, e2, _v2, q = _field(buf, q, e, "Annotation")
                if f2 == 1:
                    _expect(wt2, 1, "Annotation", "timestamp", k2)
                    at = int.from_bytes(buf[s2:e2], "little")
                elif f2 == 2:
                    _expect(wt2, 2, "Annotation", "value", k2)
                    value = _utf8(buf, s2, e2, "Annotation", "value", k2)
            annotations.append((at, value))
        elif f == 11:
            _expect(wt, 2, "Span", "tags", kpos)
            key, value, q = "", "", s
            while q < e:
                k2 = q
                f2, wt2, s2, e2, _v2, q = _field(buf, q, e, "Span.TagsEntry")
                if f2 == 1:
                    _expect(wt2, 2, "Span.TagsEntry", "key", k2)
                    key = _utf8(buf, s2, e2, "Span.TagsEntry", "key", k2)
                elif f2 == 2:
                    _expect(wt2, 2, "Span.TagsEntry", "value", k2)
                    value = _utf8(buf, s2, e2, "Span.TagsEntry", "value", k2)
            tags[key] = value
        elif f == 12:
            _expect(wt, 0, "Span", "debug", kpos)
            debug = v != 0
        elif f == 13:
            _expect(wt, 0, "Span", "shared", kpos)
            shared = v != 0
    # Semantic checks, in this order in both twins.
    if not trace_id:
        _fail(f"span[{i}].trace_id: missing")
    if len(trace_id) not in (8, 16):
        _fail(f"span[{i}].trace_id: {len(trace_id)} bytes, expected 8 or 16")
    if not any(trace_id):
        _fail(f"span[{i}].trace_id: all zeros")
    if not span_id:
        _fail(f"span[{i}].id: missing")
    if len(span_id) != 8:
        _fail(f"span[{i}].id: {len(span_id)} bytes, expected 8")
    if not any(span_id):
        _fail(f"span[{i}].id: all zeros")
    if parent and len(parent) != 8:
        _fail(f"span[{i}].parent_id: {len(parent)} bytes, expected 8")
    if not any(parent) or parent == span_id:
        parent = b""
    if ts > MAX_US:
        _fail(f"span[{i}].timestamp: {ts} is out of range")
    if dur > MAX_US:
        _fail(f"span[{i}].duration: {dur} is out of range")
    check_end(ts, dur, i)
    for j, (at, _value) in enumerate(annotations):
        if at > MAX_US:
            _fail(f"span[{i}].annotations[{j}].timestamp: {at} is out of range")
    if len(trace_id) == 8:
        trace_id = bytes(8) + trace_id
    return (trace_id, span_id, parent, kind, name, ts, dur, _endpoint_tuple(local),
            _endpoint_tuple(remote), annotations, tags, debug, shared)


def v2_proto_to_otlp(body) -> bytes:
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin proto3 ``ListOfSpans`` body."""
    return emit(_proto_spans(bytes(body)))


def _proto_spans(buf: bytes):
    pos, end, i = 0, len(buf), 0
    while pos < end:
        kpos = pos
        f, wt, s, e, _v, pos = _field(buf, pos, end, "ListOfSpans")
        if f == 1:
            _expect(wt, 2, "ListOfSpans", "spans", kpos)
            yield proto_span(buf, s, e, i)
            i += 1


# ---------------------------------------------------------------------------------- v1 → v2

_THRIFT_INT = {"I16": ">h", "I32": ">i", "I64": ">q", "DOUBLE": ">d"}


def _v1_endpoint(ep, where: str):
    """A v1 endpoint as a v2 endpoint dict (serviceName "" → absent); None when absent."""
    if ep is None:
        return None
    if type(ep) is not dict:
        _fail(f"{where}: expected an object, got {json_kind(ep)}")
    out = {}
    svc = opt_str(ep.get("serviceName"), f"{where}.serviceName")
    if svc:
        out["serviceName"] = svc
    ip4 = ep.get("ipv4")
    if type(ip4) is int:  # Thrift carries IPv4 as a signed 32-bit integer
        ip4 = socket.inet_ntop(socket.AF_INET, (ip4 & 0xFFFFFFFF).to_bytes(4, "big"))
    ip4 = opt_str(ip4, f"{where}.ipv4")
    if ip4:
        out["ipv4"] = ip4
    ip6 = ep.get("ipv6")
    if isinstance(ip6, (bytes, bytearray)):
        ip6 = ip_packed(bytes(ip6)) or ""
    ip6 = opt_str(ip6, f"{where}.ipv6")
    if ip6:
        out["ipv6"] = ip6
    port = ep.get("port")
    if port is not None:
        if type(port) is not int:
            _fail(f"{where}.port: expected an integer, got {json_kind(port)}")
        port &= 0xFFFF  # Thrift sends i16; 65535 arrives as -1
        if port:
            out["port"] = port
    return out


def _binary_value(b: dict, where: str):
    """(text or None, is address) of a v1 binary annotation."""
    value, typ = b.get("value"), b.get("type")
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if typ == "BOOL":
            value = bool(value and value[0])
        elif typ == "STRING" or typ is None:
            value = value.decode("utf-8", "replace")
        elif typ in _THRIFT_INT and len(value) == struct.calcsize(_THRIFT_INT[typ]):
            value = struct.unpack(_THRIFT_INT[typ], value)[0]
        else:
            return base64.b64encode(value).decode("ascii"), False
    if value is True:
        return "true", b.get("key") in ("ca", "sa", "ma")
    if value is False:
        return "false", False
    if type(value) is str:
        return value, False
    if type(value) is int:
        return str(value), False
    if type(value) is float:
        return json.dumps(value), False
    if value is None:
        return None, False
    _fail(f"{where}.value: expected a string, number or boolean, got {json_kind(value)}")


class _Builder:
    """One v2 span being assembled from a v1 span."""

    __slots__ = ("local", "kind", "ts", "dur", "annotations", "tags", "remote", "shared")

    def __init__(self, local):
        self.local = local
        self.kind = None
        self.ts = self.dur = None
        self.annotations = []
        self.tags = {}
        self.remote = None
        self.shared = False


def _svc(ep):
    return ep.get("serviceName") if ep else None


class _V1:
    """Splits one v1 span into v2 span dicts."""

    def __init__(self, src: dict, i: int):
        self.src = src
        self.i = i
        self.first = _Builder(None)
        self.more: list[_Builder] = []

    def for_endpoint(self, ep) -> _Builder:
        if ep is None:
            return self.first
        for b in [self.first, *self.more]:
            if b.local is None:
                b.local = ep
                return b
            if _svc(b.local) == _svc(ep):
                return b
        return self.new(ep)

    def new(self, ep) -> _Builder:
        b = _Builder(ep)
        self.more.append(b)
        return b

    def stamp(self, begin, end) -> None:
        b = self.for_endpoint(begin[2])
        if self.ts and self.dur:
            b.ts, b.dur = self.ts, self.dur
        else:
            b.ts = begin[0]
            if end is not None:
                b.dur = end[0] - begin[0]

    def convert(self) -> list:
        src, i = self.src, self.i
        self.ts = micros(src.get("timestamp"), f"span[{i}].timestamp")
        self.dur = micros(src.get("duration"), f"span[{i}].duration")
        core = dict.fromkeys(("cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr"))
        kinds = {"cs": "CLIENT", "cr": "CLIENT", "sr": "SERVER", "ss": "SERVER",
                 "ms": "PRODUCER", "mr": "CONSUMER"}
        raw = src.get("annotations") or []
        if type(raw) is not list:
            _fail(f"span[{i}].annotations: expected an array, got {json_kind(raw)}")
        for j, a in enumerate(raw):
            where = f"span[{i}].annotations[{j}]"
            if type(a) is not dict:
                _fail(f"{where}: expected an object, got {json_kind(a)}")
            at = micros(a.get("timestamp"), f"{where}.timestamp")
            value = opt_str(a.get("value"), f"{where}.value")
            ep = _v1_endpoint(a.get("endpoint"), f"{where}.endpoint")
            b = self.for_endpoint(ep)
            if len(value) == 2 and ep is not None and value in core:
                if value in kinds:
                    b.kind = kinds[value]
                core[value] = (at, value, ep)
            else:
                b.annotations.append((at, value))
        cs, sr, ss, cr, ms, mr, ws, wr = core.values()
        ts, dur = self.ts, self.dur
        if cs is None and cr is not None and ts and dur and ts + dur == cr[0]:
            cs = (ts, "cs", cr[2])
        if sr is None and ss is not None and ts and dur and ts + dur == ss[0]:
            sr = (ts, "sr", ss[2])
        if cs is not None and sr is not None:
            self.stamp(cs, cr)
            client = self.for_endpoint(cs[2])
            if _svc(cs[2]) == _svc(sr[2]):
                client.kind = "CLIENT"
                server = self.new(sr[2])
                server.kind = "SERVER"
            else:
                server = self.for_endpoint(sr[2])
            server.shared = True
            server.ts = sr[0]
            if ss is not None:
                server.dur = ss[0] - sr[0]
            if cr is None and not dur:
                client.dur = None
        elif cs is not None and cr is not None:
            self.stamp(cs, cr)
        elif sr is not None and ss is not None:
            self.stamp(sr, ss)
        else:  # incomplete RPC: the begin annotation is the timestamp, the end stays an event
            for b in [self.first, *self.more]:
                if b.kind == "CLIENT":
                    if cs is not None:
                        b.ts = cs[0]
                    if cr is not None:
                        b.annotations.append((cr[0], cr[1]))
                elif b.kind == "SERVER":
                    if sr is not None:
                        b.ts = sr[0]
                    if ss is not None:
                        b.annotations.append((ss[0], ss[1]))
            if ts:
                self.first.ts, self.first.dur = ts, dur
        if cs is None and sr is not None and (not ts or (ss is not None and not dur)):
            self.for_endpoint(sr[2]).shared = True
        if ms is not None and mr is not None:
            producer = self.for_endpoint(ms[2])
            if _svc(ms[2]) == _svc(mr[2]):
                producer.kind = "PRODUCER"
                consumer = self.new(mr[2])
                consumer.kind = "CONSUMER"
            else:
                consumer = self.for_endpoint(mr[2])
            consumer.shared = True
            if wr is not None:
                consumer.ts, consumer.dur = wr[0], mr[0] - wr[0]
            else:
                consumer.ts = mr[0]
            producer.ts = ms[0]
            producer.dur = ws[0] - ms[0] if ws is not None else None
        elif ms is not None:
            self.stamp(ms, ws)
        elif mr is not None:
            self.stamp(wr, mr) if wr is not None else self.stamp(mr, None)
        else:
            for x in (ws, wr):
                if x is not None:
                    self.for_endpoint(x[2]).annotations.append((x[0], x[1]))
        self.binary_annotations(cs, sr, ss, cr, ms, mr)
        return [self.build(b) for b in [self.first, *self.more]]

    def binary_annotations(self, cs, sr, ss, cr, ms, mr) -> None:
        src, i = self.src, self.i
        raw = src.get("binaryAnnotations") or []
        if type(raw) is not list:
            _fail(f"span[{i}].binaryAnnotations: expected an array, got {json_kind(raw)}")
        addr = {"ca": None, "sa": None, "ma": None}
        for j, b in enumerate(raw):
            where = f"span[{i}].binaryAnnotations[{j}]"
            if type(b) is not dict:
                _fail(f"{where}: expected an object, got {json_kind(b)}")
            key = opt_str(b.get("key"), f"{where}.key")
            text, is_address = _binary_value(b, where)
            ep = _v1_endpoint(b.get("endpoint"), f"{where}.endpoint")
            if is_address:
                if ep is not None:
                    addr[key] = ep
                continue
            if text is None or (key == "lc" and text == ""):
                continue
            self.for_endpoint(ep).tags[key] = text
        ca, sa, ma = addr["ca"], addr["sa"], addr["ma"]
        if cs is None and cr is None and ss is None and sr is None and (ca is not None or sa is not None):
            if ca is not None and sa is not None:
                self.for_endpoint(ca).remote = sa
            elif sa is not None:
                self.for_endpoint(None).remote = sa
            else:
                b = self.for_endpoint(None)
                b.kind = "SERVER"
                b.remote = ca
            return
        server = sr if sr is not None else ss
        if ca is not None and server is not None and ca != server[2]:
            if _svc(ca) == _svc(server[2]):
                ca = {k: v for k, v in ca.items() if k != "serviceName"}
            self.for_endpoint(server[2]).remote = ca
        if sa is not None:
            if cs is not None:
                self.for_endpoint(cs[2]).remote = sa
            elif cr is not None:
                self.for_endpoint(cr[2]).remote = sa
        if ma is not None:
            if ms is not None:
                self.for_endpoint(ms[2]).remote = ma
            if mr is not None:
                self.for_endpoint(mr[2]).remote = ma

    def build(self, b: _Builder) -> dict:
        src = self.src
        out = {"traceId": src.get("traceId"), "id": src.get("id")}
        for key in ("parentId", "name"):
            if src.get(key) is not None:
                out[key] = src[key]
        if b.kind:
            out["kind"] = b.kind
        if b.ts:
            out["timestamp"] = b.ts
        if b.dur is not None and b.dur > 0:
            out["duration"] = b.dur
        if b.local:
            out["localEndpoint"] = b.local
        if b.remote:
            out["remoteEndpoint"] = b.remote
        if b.annotations:
            out["annotations"] = [{"timestamp": t, "value": v} for t, v in sorted(set(b.annotations))]
        if b.tags:
            out["tags"] = b.tags
        if src.get("debug") is True:
            out["debug"] = True
        if b.shared:
            out["shared"] = True
        return out


def v1_to_v2(spans: list) -> list:
    """Zipkin v2 span dicts of v1 span dicts (IDs are checked here, naming the v1 index)."""
    out = []
    for i, src in enumerate(spans):
        if type(src) is not dict:
            _fail(f"span[{i}]: expected an object, got {json_kind(src)}")
        span_id = hex_id(src.get("id"), i, "id", (16,))
        hex_id(src.get("traceId"), i, "traceId", (16, 32))
        parent_id(src.get("parentId"), i, span_id)
        opt_str(src.get("name"), f"span[{i}].name")
        opt_bool(src.get("debug"), f"span[{i}].debug")
        out.extend(_V1(src, i).convert())
    return out


def v1_spans_to_otlp(spans: list) -> bytes:
    """OTLP request bytes of v1 spans already parsed into the v1 JSON shape (list of dicts)."""
    return v2_spans_to_otlp(v1_to_v2(spans))


def v1_json_to_otlp(body) -> bytes:
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin v1 JSON body (an array of spans)."""
    return v1_spans_to_otlp(load_json(body))
