"""Measure stage: synthesizes realistic OTLP traces and a pool of request bodies replayed cheaply.

Two products:

* ``TraceSynth.request(now_ns)`` builds one ``ExportTraceServiceRequest`` (protobuf object) of
  exactly ``spans_per_request`` spans, packed with whole traces (the last trace of a request is
  grown only as far as the room left, so no trace is ever split across requests).
* ``RequestPool`` serializes a few hundred such requests once and records, per body, the byte
  offset of every trace ID, span ID (including ``parent_span_id`` and link references) and
  timestamp.  ``RequestPool.fresh()`` copies a body and overwrites those fixed-width fields in
  place with numpy scatter writes: every trace gets a new random trace ID (the same one in all
  its spans and in links pointing at it), every span a new random span ID (its children's
  ``parent_span_id`` follows), and all timestamps are shifted so the spans end just before now.
  Field widths never change, so the body stays valid protobuf and costs a memcpy plus three
  vectorised writes per send instead of a protobuf serialization.
"""
from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

KIND_INTERNAL = Span.SPAN_KIND_INTERNAL
KIND_SERVER = Span.SPAN_KIND_SERVER
KIND_CLIENT = Span.SPAN_KIND_CLIENT

_WORDS = ("cart", "checkout", "payment", "catalog", "search", "auth", "user", "inventory",
          "shipping", "pricing", "review", "email", "ad", "currency", "recommend", "gateway",
          "ledger", "fraud", "session", "media", "notify", "quote", "tax", "report")
_ROUTES = ("/api/v1/{}", "/api/v1/{}/{{id}}", "/api/v2/{}/items", "/internal/{}/sync",
           "/{}/health", "/api/v1/{}/search")
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_DB_OPS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-south-1")

# Attribute keys by value type; a service's span attributes cycle through the types in this order.
_STR_KEYS = ("http.request.method", "url.path", "user_agent.original", "server.address",
             "app.user.id", "app.tenant", "rpc.method", "app.request.id", "app.region",
             "app.feature.flag", "messaging.destination.name", "app.session.id")
_INT_KEYS = ("http.response.status_code", "server.port", "app.retry_count", "app.items",
             "messaging.batch.message_count", "http.request.body.size", "app.queue.depth")
_DBL_KEYS = ("app.cart.total", "app.latency_budget_ms", "app.score", "app.sample.weight",
             "app.exchange.rate")
_BOOL_KEYS = ("app.cache_hit", "app.feature.enabled", "app.authenticated", "app.retried")
_TYPE_CYCLE = ("s", "i", "d", "b", "s", "i", "s", "d")
PAD_KEY = "app.payload"


@dataclass(frozen=True)
class TraceShape:
    """How synthetic traces look (the ``load`` flags of the same names)."""

    services: int = 10
    depth: int = 4  # call levels below the root
    fanout: int = 3  # at most this many outgoing calls per server span
    attrs: int = 8  # attributes per span, besides the padding one
    span_bytes: int = 500  # target serialized Span size; a string attribute is padded to it
    error_rate: float = 0.01
    spans_per_request: int = 100
    event_rate: float = 0.15  # share of spans carrying a log event
    link_rate: float = 0.03  # share of spans linking to an earlier trace of the same request

    def validate(self) -> "TraceShape":
        if self.services < 1:
            raise ValueError("services must be >= 1")
        if self.depth < 0 or self.fanout < 1:
            raise ValueError("depth must be >= 0 and fanout >= 1")
        if self.attrs < 0 or self.span_bytes < 0:
            raise ValueError("attrs and span_bytes must be >= 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        if self.spans_per_request < 1:
            raise ValueError("spans_per_request must be >= 1")
        return self


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class _Service:
    def __init__(self, idx: int, rng: np.random.Generator, shape: TraceShape):
        word = _WORDS[idx % len(_WORDS)]
        self.name = f"{word}-svc" if idx < len(_WORDS) else f"{word}-svc-{idx}"
        self.word = word
        self.resource = Resource(attributes=[
            _kv("service.name", self.name),
            _kv("service.namespace", "shop"),
            _kv("service.version", f"1.{int(rng.integers(0, 30))}.{int(rng.integers(0, 10))}"),
            _kv("service.instance.id", rng.bytes(8).hex()),
            _kv("host.name", f"node-{int(rng.integers(1, 64)):02d}"),
            _kv("deployment.environment", "production"),
            _kv("cloud.region", _REGIONS[idx % len(_REGIONS)]),
            _kv("telemetry.sdk.language", ("python", "go", "java", "nodejs")[idx % 4]),
        ])
        self.scope = InstrumentationScope(name=f"io.clew.synth.{word}", version="0.3.1")
        self.routes = [r.format(word) for r in _ROUTES]
        # This service's attribute keys with their fixed types.
        counters = {"s": 0, "i": 0, "d": 0, "b": 0}
        pools = {"s": _STR_KEYS, "i": _INT_KEYS, "d": _DBL_KEYS, "b": _BOOL_KEYS}
        self.attr_keys = []
        offset = idx  # services differ in which keys they use
        for k in range(shape.attrs + 4):  # spares for keys the span kind already set
            t = _TYPE_CYCLE[k % len(_TYPE_CYCLE)]
            pool = pools[t]
            n = counters[t]
            counters[t] += 1
            key = pool[(offset + n) % len(pool)]
            if n >= len(pool):
                key = f"{key}.{n // len(pool)}"
            self.attr_keys.append((key, t))


class TraceSynth:
    """Deterministic (per seed) generator of traces packed into export requests."""

    def __init__(self, shape: TraceShape, seed: int = 1):
        self.shape = shape.validate()
        self.rng = np.random.default_rng(seed)
        self.services = [_Service(i, self.rng, shape) for i in range(shape.services)]
        # Random base64 text to cut padding from: random enough that compression is not flattered.
        self._pad_src = base64.b64encode(self.rng.bytes(96 * 1024)).decode()

    # -- values -------------------------------------------------------------------------------

    def _value(self, t: str):
        r = self.rng
        if t == "s":
            if r.random() < 0.5:
                return r.bytes(6).hex()
            return _WORDS[int(r.integers(0, len(_WORDS)))] + "-" + str(int(r.integers(0, 500)))
        if t == "i":
            return int(r.integers(0, 100_000))
        if t == "d":
            return float(r.random() * 1000.0)
        return bool(r.random() < 0.5)

    def _pad(self, n: int) -> str:
        start = int(self.rng.integers(0, len(self._pad_src) - n)) if n < len(self._pad_src) else 0
        return self._pad_src[start:start + n]

    # -- spans --------------------------------------------------------------------------------

    def _span(self, svc: _Service, trace_id: bytes, parent: bytes, kind: int, name: str,
              start: int, end: int, extra: list) -> Span:
        r = self.rng
        span = Span(trace_id=trace_id, span_id=r.bytes(8), parent_span_id=parent, name=name,
                    kind=kind, start_time_unix_nano=start, end_time_unix_nano=end)
        want = self.shape.attrs
        span.attributes.extend(extra[:want])
        taken = {kv.key for kv in extra}
        for key, t in svc.attr_keys:
            if len(span.attributes) >= want:
                break
            if key not in taken:  # OTLP keys are unique within a span
                span.attributes.append(_kv(key, self._value(t)))
        if r.random() < self.shape.error_rate:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = "upstream failure"
            ev = span.events.add(time_unix_nano=start + (end - start) // 2, name="exception")
            ev.attributes.extend([_kv("exception.type", "TimeoutError"),
                                  _kv("exception.message", f"deadline exceeded after {r.integers(5, 900)}ms")])
        elif r.random() < self.shape.event_rate:
            ev = span.events.add(time_unix_nano=start + (end - start) // 3, name="log")
            ev.attributes.extend([_kv("log.severity", "INFO"), _kv("log.message", f"step {self._value('s')}")])
        elif kind == KIND_SERVER and r.random() < 0.3:
            span.status.code = Status.STATUS_CODE_OK
        self._fill(span)
        return span

    def _fill(self, span: Span) -> None:
        """Pad one string attribute so the serialized span reaches ``span_bytes``."""
        want = self.shape.span_bytes
        have = span.ByteSize()
        # KeyValue framing: outer tag+len, key tag+len+key, value tag+len, AnyValue tag+len.
        overhead = 2 + 2 + len(PAD_KEY) + 2 + 2
        if want - have <= overhead:
            return
        kv = span.attributes.add(key=PAD_KEY)
        n = want - have - overhead
        kv.value.string_value = self._pad(n)
        for _ in range(3):  # varint length prefixes may add a byte or two; settle
            diff = span.ByteSize() - want
            if diff == 0 or n - diff < 0:
                break
            n -= diff
            kv.value.string_value = self._pad(n)

    def _trace(self, cap: int, now_ns: int, earlier: list) -> list:
        """One trace of at most ``cap`` spans: list of (service index, Span)."""
        r = self.rng
        shape = self.shape
        trace_id = r.bytes(16)
        out: list = []
        root_svc = int(r.integers(0, len(self.services)))
        duration = int(r.lognormal(math.log(40e6), 1.0)) + 1_000_000  # ~40 ms median
        start = now_ns - int(r.integers(1_000_000, 3_000_000_000)) - duration

        def server(si: int, parent: bytes, s0: int, dur: int, level: int, route: str, method: str):
            svc = self.services[si]
            extra = [_kv("http.request.method", method), _kv("url.path", route),
                     _kv("http.response.status_code", 200)]
            sp = self._span(svc, trace_id, parent, KIND_SERVER, f"{method} {route}", s0, s0 + dur, extra)
            if r.random() < shape.link_rate and earlier:
                tid, sid = earlier[int(r.integers(0, len(earlier)))]
                sp.links.add(trace_id=tid, span_id=sid).attributes.append(_kv("link.kind", "follows"))
            out.append((si, sp))
            if level >= shape.depth:
                return
            low = 1 if level == 0 else 0
            ncalls = int(r.integers(low, shape.fanout + 1))
            t = s0 + dur // 20
            slot = max(dur * 9 // 10 // max(ncalls, 1), 1000)
            for _ in range(ncalls):
                room = cap - len(out)
                if room <= 0:
                    return
                cdur = max(int(slot * (0.3 + 0.7 * r.random())), 1000)
                cstart = t + int(r.integers(0, max(slot - cdur, 1)))
                t += slot
                if room == 1 or r.random() < 0.25:  # a leaf call with no server side (a database)
                    op = _DB_OPS[int(r.integers(0, len(_DB_OPS)))]
                    extra = [_kv("db.system", "postgresql"), _kv("db.operation.name", op),
                             _kv("db.collection.name", svc.word)]
                    out.append((si, self._span(svc, trace_id, sp.span_id, KIND_CLIENT,
                                               f"{op} {svc.word}", cstart, cstart + cdur, extra)))
                    continue
                ci = int(r.integers(0, len(self.services)))
                callee = self.services[ci]
                croute = callee.routes[int(r.integers(0, len(callee.routes)))]
                cmethod = _METHODS[int(r.integers(0, len(_METHODS)))]
                extra = [_kv("http.request.method", cmethod), _kv("server.address", callee.name),
                         _kv("http.response.status_code", 200)]
                client = self._span(svc, trace_id, sp.span_id, KIND_CLIENT, f"{cmethod}",
                                    cstart, cstart + cdur, extra)
                out.append((si, client))
                lag = cdur // 50
                server(ci, client.span_id, cstart + lag, max(cdur - 2 * lag, 500), level + 1,
                       croute, cmethod)

        svc0 = self.services[root_svc]
        server(root_svc, b"", start, duration, 0, svc0.routes[int(r.integers(0, len(svc0.routes)))],
               _METHODS[int(r.integers(0, len(_METHODS)))])
        return out[:cap]

    def request(self, now_ns: int | None = None) -> ExportTraceServiceRequest:
        """One export request of exactly ``spans_per_request`` spans made of whole traces."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        left = self.shape.spans_per_request
        by_service: dict[int, list] = {}
        earlier: list = []
        while left > 0:
            trace = self._trace(left, now_ns, earlier)
            for si, sp in trace:
                by_service.setdefault(si, []).append(sp)
            earlier.append((trace[0][1].trace_id, trace[0][1].span_id))
            left -= len(trace)
        return self._request(by_service)

    def one_trace(self, spans: int, now_ns: int | None = None) -> ExportTraceServiceRequest:
        """One export request holding one trace of at most ``spans`` spans (deep and wide
        shapes reach the cap: e.g. ``depth=10, fanout=5`` for 10,000 spans)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        by_service: dict[int, list] = {}
        for si, sp in self._trace(spans, now_ns, []):
            by_service.setdefault(si, []).append(sp)
        return self._request(by_service)

    def _request(self, by_service: dict[int, list]) -> ExportTraceServiceRequest:
        req = ExportTraceServiceRequest()
        for si in sorted(by_service):
            svc = self.services[si]
            req.resource_spans.append(ResourceSpans(
                resource=svc.resource,
                scope_spans=[ScopeSpans(scope=svc.scope, spans=by_service[si],
                                        schema_url="https://opentelemetry.io/schemas/1.24.0")],
                schema_url="https://opentelemetry.io/schemas/1.24.0"))
        return req


# -- locating the fixed-width fields in a serialized body ------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def _fields(buf: bytes, pos: int, end: int):
    """Yield (field number, wire type, value start, value end) of one message's fields."""
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            _, pos2 = _varint(buf, pos)
        elif wt == 1:
            pos2 = pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            pos2 = pos + n
        elif wt == 5:
            pos2 = pos + 4
        else:
            raise ValueError(f"unexpected wire type {wt}")
        yield field, wt, pos, pos2
        pos = pos2


class _Template:
    """One serialized body with the positions of its trace IDs, span IDs and timestamps."""

    __slots__ = ("body", "nspans", "ntraces", "nids", "tid_pos", "tid_of", "sid_pos", "sid_of",
                 "ts_pos", "ts_base", "trace_spans")

    def __init__(self, body: bytes, nspans: int):
        self.body = body
        self.nspans = nspans
        traces: dict[bytes, int] = {}
        ids: dict[bytes, int] = {}
        tid_pos, tid_of, sid_pos, sid_of, ts_pos, ts_base = [], [], [], [], [], []
        span_traces = []  # trace index of every span (not of links), for the spans-per-trace count

        def trace_ref(s, e):
            tid_pos.append(s)
            tid_of.append(traces.setdefault(body[s:e], len(traces)))

        def span_ref(s, e):
            if e - s == 8:  # an empty parent_span_id (root span) has nothing to rewrite
                sid_pos.append(s)
                sid_of.append(ids.setdefault(body[s:e], len(ids)))

        def stamp(s):
            ts_pos.append(s)
            ts_base.append(int.from_bytes(body[s:s + 8], "little"))

        for f, _, s, e in _fields(body, 0, len(body)):
            if f != 1:
                continue
            for f2, _, s2, e2 in _fields(body, s, e):
                if f2 != 2:
                    continue
                for f3, _, s3, e3 in _fields(body, s2, e2):
                    if f3 != 2:
                        continue
                    for f4, wt, s4, e4 in _fields(body, s3, e3):
                        if f4 == 1:
                            trace_ref(s4, e4)
                            span_traces.append(tid_of[-1])
                        elif f4 in (2, 4):
                            span_ref(s4, e4)
                        elif f4 in (7, 8) and wt == 1:
                            stamp(s4)
                        elif f4 == 11:  # Event: time_unix_nano is field 1, fixed64
                            for f5, wt5, s5, _ in _fields(body, s4, e4):
                                if f5 == 1 and wt5 == 1:
                                    stamp(s5)
                        elif f4 == 13:  # Link: trace_id 1, span_id 2
                            for f5, _, s5, e5 in _fields(body, s4, e4):
                                if f5 == 1:
                                    trace_ref(s5, e5)
                                elif f5 == 2:
                                    span_ref(s5, e5)
        self.ntraces = len(traces)
        self.nids = len(ids)
        self.tid_pos = np.asarray(tid_pos, dtype=np.intp)[:, None] + np.arange(16)
        self.tid_of = np.asarray(tid_of, dtype=np.intp)
        self.sid_pos = np.asarray(sid_pos, dtype=np.intp)[:, None] + np.arange(8)
        self.sid_of = np.asarray(sid_of, dtype=np.intp)
        self.ts_pos = np.asarray(ts_pos, dtype=np.intp)[:, None] + np.arange(8)
        self.ts_base = np.asarray(ts_base, dtype="<u8")
        self.trace_spans = np.bincount(np.asarray(span_traces, dtype=np.intp), minlength=self.ntraces)


class SendGroup:
    """The messages made from one pooled request, sent with one set of fresh trace IDs.

    ``tids`` (traces x 16 bytes) and ``trace_spans`` (spans per trace) tell ``--verify`` what to
    look for; ``left`` counts the group's messages not yet answered, ``failed`` is set when one
    of them was not fully accepted.
    """

    __slots__ = ("tids", "trace_spans", "left", "failed")

    def __init__(self, tids: np.ndarray, trace_spans: np.ndarray, messages: int):
        self.tids, self.trace_spans, self.left, self.failed = tids, trace_spans, messages, False


class RequestPool:
    """Pre-built request bodies, re-identified and re-timed on every ``fresh()``.

    Both trace IDs and span IDs are rewritten per send (parent and link references follow), so
    every request carries new traces even though the pool is small; timestamps are shifted by the
    time elapsed since the pool was built, so spans always end shortly before now.
    """

    def __init__(self, shape: TraceShape, size: int = 256, seed: int = 1):
        synth = TraceSynth(shape, seed)
        self.shape = shape
        self.built_ns = time.time_ns()
        self.templates = [
            _Template(synth.request(self.built_ns).SerializeToString(), shape.spans_per_request)
            for _ in range(size)
        ]
        self._rng = np.random.default_rng(seed + 7919)
        self._next = 0

    @property
    def mean_body_bytes(self) -> float:
        return sum(len(t.body) for t in self.templates) / len(self.templates)

    def fresh(self) -> tuple[bytearray, int]:
        """The next body with fresh IDs and current timestamps, and its span count."""
        body, n, _ = self.next_send()
        return body, n

    def next_send(self) -> tuple[bytearray, int, SendGroup]:
        """``fresh()`` plus the request's ``SendGroup`` (its new trace IDs and spans per trace)."""
        t = self.templates[self._next]
        self._next = (self._next + 1) % len(self.templates)
        out = bytearray(t.body)
        view = np.frombuffer(out, dtype=np.uint8)
        rnd = np.frombuffer(self._rng.bytes(16 * t.ntraces + 8 * t.nids), dtype=np.uint8)
        view[t.tid_pos] = rnd[: 16 * t.ntraces].reshape(t.ntraces, 16)[t.tid_of]
        view[t.sid_pos] = rnd[16 * t.ntraces:].reshape(t.nids, 8)[t.sid_of]
        shifted = t.ts_base + np.uint64(max(time.time_ns() - self.built_ns, 0))
        view[t.ts_pos] = shifted.view(np.uint8).reshape(-1, 8)
        del view  # release the buffer export so the bytearray can be handed on freely
        tids = rnd[: 16 * t.ntraces].reshape(t.ntraces, 16)
        return out, t.nspans, SendGroup(tids, t.trace_spans, 1)


def build_request_bytes(shape: TraceShape, seed: int = 1) -> bytes:
    """One serialized export request (for benchmarks that do not need a pool)."""
    return TraceSynth(shape, seed).request().SerializeToString()
