"""Sample stage: tail-sampling policies — which whole traces to keep, and by which policy.

A policy set is an ordered list of JSON specs, modelled on the OpenTelemetry Collector's
``tail_sampling`` processor (docs/sampling-policies.md describes each type and where Clew differs).
``Policies.parse`` validates a list and names the exact path of anything wrong;
``Policies.evaluate`` decides a batch of whole traces at once:

* every top-level policy is asked, in list order, about the traces no earlier policy kept; a trace
  is kept by the *first* policy that keeps it (its name is what the tail stage records), and dropped
  when none does;
* ``and`` / ``or`` combine sub-policies; inside them the stateless sub-policies are asked first and
  ``rate_limiting`` last, each only about the traces still undecided, so a token bucket is charged
  only for traces whose fate it actually decides;
* span-level conditions (status, durations, span counts, randomness, numeric and boolean attribute
  values) are numpy operations over the batch; string attributes do Python work only on attribute
  rows whose key is the policy's key, and only for traces still being asked about.

The object holds state between calls (the ``rate_limiting`` token buckets), so one ``Policies``
lives as long as its settings, and is called from one thread.
"""
from __future__ import annotations

import math
import re

import numpy as np

from collector.codec.otlp import _any_value, _field  # the reference protobuf walker (one home)
from collector.errors import DecodeError, SamplingError, json_kind
from collector.model import (
    AT_SPAN, STATUS_ERROR, STATUS_OK, STATUS_UNSET, VT_BOOL, VT_DOUBLE, VT_INT, VT_STRING,
    SpanBatch,
)
from collector.sampling import consistent
from collector.store.terms import value_text

STATUS_CODES = {"UNSET": STATUS_UNSET, "OK": STATUS_OK, "ERROR": STATUS_ERROR}
MAX_DEPTH = 8  # and/or nesting; deeper specs are refused (a typo rather than a need)
_NO_LIMIT = 1 << 62  # value_text's length bound: a policy compares values of any length
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


# --- parsing -------------------------------------------------------------------------------------


class _Reader:
    """The fields of one spec dict, read with the spec's path in every error."""

    def __init__(self, spec: dict, path: str):
        self.spec = spec
        self.path = path

    def fail(self, field: str | None, message: str):
        where = f"{self.path}.{field}" if field else self.path
        raise SamplingError(f"{where}: {message}")

    def number(self, field: str, *, required: bool = True, integer: bool = False,
               gt: float | None = None, ge: float | None = None, le: float | None = None):
        value = self.spec.get(field)
        if value is None:
            if required:
                self.fail(field, "missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"must be a number, got {json_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(field, "must be a finite number")
        if integer:
            if isinstance(value, float):
                if not value.is_integer():
                    self.fail(field, f"must be a whole number, got {value}")
                value = int(value)
        if gt is not None and not value > gt:
            self.fail(field, f"must be > {gt:g}, got {value}")
        if ge is not None and not value >= ge:
            self.fail(field, f"must be >= {ge:g}, got {value}")
        if le is not None and not value <= le:
            self.fail(field, f"must be <= {le:g}, got {value}")
        return value

    def boolean(self, field: str, default: bool | None = None) -> bool:
        value = self.spec.get(field)
        if value is None:
            if default is None:
                self.fail(field, "missing")
            return default
        if not isinstance(value, bool):
            self.fail(field, f"must be true or false, got {json_kind(value)}")
        return value

    def string(self, field: str, default: str | None = None) -> str:
        value = self.spec.get(field)
        if value is None:
            if default is None:
                self.fail(field, "missing")
            return default
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {json_kind(value)}")
        return value

    def key(self) -> str:
        key = self.string("key")
        if not key:
            self.fail("key", "must not be empty")
        return key

    def strings(self, field: str) -> list[str]:
        value = self.spec.get(field)
        if value is None:
            self.fail(field, "missing")
        if not isinstance(value, list):
            self.fail(field, f"must be a list of strings, got {json_kind(value)}")
        if not value:
            self.fail(field, "must not be empty")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{field}[{i}]", f"must be a string, got {json_kind(item)}")
        return list(value)


def _parse_one(spec, path: str, depth: int, top: bool) -> "_Policy":
    if not isinstance(spec, dict):
        raise SamplingError(f"{path}: must be an object, got {json_kind(spec)}")
    reader = _Reader(spec, path)
    name = spec.get("name")
    if name is None:
        if top:
            reader.fail("name", "missing (every top-level policy needs a unique name)")
    elif not isinstance(name, str) or not name.strip():
        reader.fail("name", "must be a non-empty string")
    known = ", ".join(sorted(_TYPES))
    kind = spec.get("type")
    if kind is None:
        reader.fail("type", f"missing (known: {known})")
    if not isinstance(kind, str) or kind not in _TYPES:
        shown = repr(kind) if isinstance(kind, str) else json_kind(kind)
        reader.fail("type", f"unknown {shown} (known: {known})")
    cls = _TYPES[kind]
    allowed = {"name", "type", *cls.FIELDS}
    for field in spec:
        if field not in allowed:
            reader.fail(str(field), f"unknown field for {kind} (known: {', '.join(sorted(allowed))})")
    policy = cls.parse(reader, depth)
    policy.name = name
    return policy


def _parse_list(specs, path: str, depth: int, top: bool) -> list:
    if not isinstance(specs, list):
        raise SamplingError(f"{path}: must be a list of policies, got {json_kind(specs)}")
    if not specs:
        raise SamplingError(f"{path}: must hold at least one policy")
    if depth > MAX_DEPTH:
        raise SamplingError(f"{path}: and/or nested deeper than {MAX_DEPTH} levels")
    out = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        policy = _parse_one(spec, f"{path}[{i}]", depth, top)
        if top:
            if policy.name in seen:
                raise SamplingError(f"{path}[{i}].name: {policy.name!r} is already the name of "
                                    f"{path}[{seen[policy.name]}]")
            seen[policy.name] = i
        out.append(policy)
    return out


# --- evaluation context --------------------------------------------------------------------------


class _Batch:
    """One ``evaluate`` call: the batch, per-trace arrays computed on first use and shared by every
    policy asked in the call (durations, span counts, key rows, resource attributes ...)."""

    def __init__(self, batch: SpanBatch, trace_index: np.ndarray, trace_ids: list, now: float,
                 baseline: float):
        self.batch = batch
        self.spans = batch.spans
        self.attrs = batch.attrs
        self.n = len(trace_ids)
        self.trace_ids = trace_ids
        self.ti = np.asarray(trace_index, dtype=np.intp)
        self.now = float(now)
        self.baseline = baseline
        self._cache: dict = {}
        self._buf_u8 = None

    def cached(self, key, make):
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        return value

    def any_per_trace(self, span_mask: np.ndarray) -> np.ndarray:
        """Per trace: does any of its spans have ``span_mask`` set."""
        out = np.zeros(self.n, dtype=bool)
        out[self.ti[span_mask]] = True
        return out

    # span-level columns
    @property
    def start(self) -> np.ndarray:
        return self.cached("start", lambda: self.spans["start_ns"].astype(np.int64))

    @property
    def end(self) -> np.ndarray:
        return self.cached("end", lambda: self.spans["end_ns"].astype(np.int64))

    @property
    def span_counts(self) -> np.ndarray:
        return self.cached("counts", lambda: np.bincount(self.ti, minlength=self.n))

    @property
    def span_durations(self) -> np.ndarray:
        """Each span's duration in ns (0 when its end is before its start)."""
        return self.cached("span_dur", lambda: np.maximum(self.end - self.start, 0))

    @property
    def trace_durations(self) -> np.ndarray:
        """Each trace's latest end minus its earliest start, in ns (0 for a trace with no spans)."""
        def make():
            lo = np.full(self.n, _I64_MAX, dtype=np.int64)
            hi = np.full(self.n, _I64_MIN, dtype=np.int64)
            np.minimum.at(lo, self.ti, self.start)
            np.maximum.at(hi, self.ti, self.end)
            has = self.span_counts > 0
            out = np.zeros(self.n, dtype=np.int64)
            out[has] = np.maximum(hi[has] - lo[has], 0)
            return out
        return self.cached("trace_dur", make)

    @property
    def randomness(self) -> np.ndarray:
        return self.cached("randomness", self._randomness)

    def _randomness(self) -> np.ndarray:
        """R per trace: the least significant 56 bits of its ID, or the explicit ``rv`` of an ``ot``
        tracestate entry one of its spans carries (consistent.py)."""
        if not self.n:
            return np.zeros(0, np.uint64)
        ids = b"".join(bytes(t).ljust(16, b"\0")[:16] for t in self.trace_ids)
        r = consistent.randomness(np.frombuffer(ids, np.uint8))
        buf = self.batch.buf
        if b"rv:" not in buf:  # the common case: one C-speed scan, no span is parsed
            return r
        found = []
        pos = buf.find(b"rv:")
        while pos >= 0:
            found.append(pos)
            pos = buf.find(b"rv:", pos + 3)
        offs = self.spans["span_off"].astype(np.int64)
        order = np.argsort(offs, kind="stable")
        positions = np.array(found, np.int64)
        k = np.searchsorted(offs[order], positions, side="right") - 1
        rows, positions = order[k[k >= 0]], positions[k >= 0]
        rows = rows[positions < offs[rows] + self.spans["span_len"][rows]]  # inside that span
        explicit: set = set()  # traces whose R came from an rv: the first span (in the buffer) wins
        for row in dict.fromkeys(rows.tolist()):
            t = int(self.ti[row])
            if t in explicit:
                continue
            rv = _span_rv(buf, int(offs[row]), int(offs[row] + self.spans["span_len"][row]))
            if rv is not None:
                explicit.add(t)
                r[t] = rv
        return r

    # traces' services (rate limiting)
    @property
    def services(self) -> tuple[np.ndarray, list]:
        """(service id per trace, service names): a trace's service is its root span's, else that
        of its first span (lowest row) — '' for a trace without spans."""
        def make():
            names: dict[str, int] = {"": 0}
            ids = [names.setdefault(svc, len(names)) for _, svc in self.batch.resources]
            of_resource = np.array(ids + [0], dtype=np.intp)  # the last one: "no span"
            none = len(self.spans)
            rows = np.arange(none, dtype=np.intp)
            first = np.full(self.n, none, dtype=np.intp)
            np.minimum.at(first, self.ti, rows)
            roots = self.spans["parent_id_len"] == 0
            root = np.full(self.n, none, dtype=np.intp)
            np.minimum.at(root, self.ti[roots], rows[roots])
            pick = np.where(root < none, root, first)
            resource = np.full(self.n, len(self.batch.resources), dtype=np.intp)
            has = pick < none
            resource[has] = self.spans["resource"][pick[has]]
            return of_resource[resource], list(names)
        return self.cached("services", make)

    # attributes
    def key_rows(self, key: bytes) -> np.ndarray:
        """Rows of ``attrs`` that are span attributes (not event or link ones) named ``key``."""
        def make():
            attrs = self.attrs
            if not len(attrs):
                return np.zeros(0, np.intp)
            rows = np.flatnonzero((attrs["key_len"] == len(key)) & (attrs["where"] == AT_SPAN))
            return rows[self.bytes_equal(attrs["key_off"][rows], key)]
        return self.cached(("key", key), make)

    def bytes_equal(self, offsets: np.ndarray, want: bytes) -> np.ndarray:
        """Per offset: does ``buf`` hold ``want`` there (the caller checked the lengths)."""
        same = np.ones(len(offsets), dtype=bool)
        if not len(offsets) or not want:
            return same
        if self._buf_u8 is None:
            self._buf_u8 = np.frombuffer(self.batch.buf, np.uint8)
        offs = offsets.astype(np.intp)
        for j, byte in enumerate(want):  # byte by byte: no (rows x length) temporary
            same &= self._buf_u8[offs + j] == byte
            if not same.any():
                break
        return same

    def resource_value(self, r: int, key: bytes):
        """(vtype, payload, num) of resource ``r``'s attribute ``key``, or None; each distinct
        resource record is decoded once per call."""
        record = self.batch.resources[r][0]
        table = self._cache.get(("res", record))
        if table is None:
            table = self._cache[("res", record)] = _resource_attributes(record)
        return table.get(key)


def _span_rv(buf: bytes, pos: int, end: int) -> int | None:
    """The ``rv`` of the ``ot`` entry in a Span message's ``trace_state`` (field 3), if any."""
    try:
        while pos < end:
            f, wt, s, e, _, pos = _field(buf, pos, end, "Span")
            if f == 3 and wt == 2:
                return consistent.parse_ot(buf[s:e].decode("utf-8", "replace"))[1]
    except DecodeError:
        return None
    return None


def _resource_attributes(record: bytes) -> dict:
    """key → (vtype, payload, num) of the Resource attributes in a ResourceSpans record (the first
    of a repeated key wins, as OpenTelemetry's attribute maps do)."""
    out: dict = {}
    try:
        pos, end = 0, len(record)
        while pos < end:
            f, wt, s, e, _, pos = _field(record, pos, end, "ResourceSpans")
            if f != 1 or wt != 2:
                continue
            p = s
            while p < e:
                f2, wt2, s2, e2, _, p = _field(record, p, e, "Resource")
                if f2 != 1 or wt2 != 2:
                    continue
                key, value = b"", (0, b"", 0)
                q = s2
                while q < e2:
                    f3, wt3, s3, e3, _, q = _field(record, q, e2, "KeyValue")
                    if f3 == 1 and wt3 == 2:
                        key = record[s3:e3]
                    elif f3 == 2 and wt3 == 2:
                        vtype, voff, vend, num = _any_value(record, s3, e3)
                        value = (vtype, record[voff:vend], num)
                out.setdefault(key, value)
    except DecodeError:  # records were validated when decoded; a bad one simply has no attributes
        pass
    return out


# --- policies ------------------------------------------------------------------------------------


class _Policy:
    TYPE = ""
    FIELDS: tuple = ()
    stateful = False  # holds state that a question changes (rate limiting): asked last in and/or
    name: str | None = None

    @classmethod
    def parse(cls, r: _Reader, depth: int) -> "_Policy":
        return cls()

    def keep(self, ctx: _Batch, asked: np.ndarray) -> np.ndarray:
        """Which of the ``asked`` traces this policy keeps (a subset of ``asked``)."""
        raise NotImplementedError

    def fields(self) -> dict:
        return {}

    def to_json(self) -> dict:
        out = {"name": self.name} if self.name is not None else {}
        out["type"] = self.TYPE
        out.update(self.fields())
        return out


class _AlwaysSample(_Policy):
    TYPE = "always_sample"

    def keep(self, ctx, asked):
        return asked.copy()


class _StatusCode(_Policy):
    TYPE = "status_code"
    FIELDS = ("status_codes",)

    def __init__(self, codes: list[str]):
        self.codes = codes
        self.numbers = np.array([STATUS_CODES[c] for c in codes], dtype=np.uint8)

    @classmethod
    def parse(cls, r, depth):
        codes = []
        for i, text in enumerate(r.strings("status_codes")):
            code = text.upper()
            if code not in STATUS_CODES:
                r.fail(f"status_codes[{i}]", f"unknown {text!r} (known: ERROR, OK, UNSET)")
            if code not in codes:
                codes.append(code)
        return cls(codes)

    def keep(self, ctx, asked):
        return ctx.any_per_trace(np.isin(ctx.spans["status_code"], self.numbers)) & asked

    def fields(self):
        return {"status_codes": list(self.codes)}


class _Latency(_Policy):
    TYPE = "latency"
    FIELDS = ("threshold_ms", "upper_threshold_ms", "scope")

    def __init__(self, threshold_ms: float, upper_threshold_ms: float | None, scope: str):
        self.threshold_ms = threshold_ms
        self.upper_threshold_ms = upper_threshold_ms
        self.scope = scope
        self.lo_ns = int(round(threshold_ms * 1e6))
        self.hi_ns = None if upper_threshold_ms is None else int(round(upper_threshold_ms * 1e6))

    @classmethod
    def parse(cls, r, depth):
        lo = r.number("threshold_ms", gt=0)
        hi = r.number("upper_threshold_ms", required=False)
        if hi is not None and not hi >= lo:
            r.fail("upper_threshold_ms", f"must be >= threshold_ms ({lo}), got {hi}")
        scope = r.string("scope", "trace")
        if scope not in ("trace", "span"):
            r.fail("scope", f"unknown {scope!r} (known: span, trace)")
        return cls(lo, hi, scope)

    def _within(self, ns: np.ndarray) -> np.ndarray:
        ok = ns >= self.lo_ns
        if self.hi_ns is not None:
            ok &= ns <= self.hi_ns
        return ok

    def keep(self, ctx, asked):
        if self.scope == "trace":
            return self._within(ctx.trace_durations) & asked
        return ctx.any_per_trace(self._within(ctx.span_durations)) & asked

    def fields(self):
        out = {"threshold_ms": self.threshold_ms}
        if self.upper_threshold_ms is not None:
            out["upper_threshold_ms"] = self.upper_threshold_ms
        out["scope"] = self.scope
        return out


class _SpanCount(_Policy):
    TYPE = "span_count"
    FIELDS = ("min_spans", "max_spans")

    def __init__(self, min_spans: int, max_spans: int | None):
        self.min_spans, self.max_spans = min_spans, max_spans

    @classmethod
    def parse(cls, r, depth):
        lo = r.number("min_spans", integer=True, ge=1)
        hi = r.number("max_spans", required=False, integer=True)
        if hi is not None and hi < lo:
            r.fail("max_spans", f"must be >= min_spans ({lo}), got {hi}")
        return cls(lo, hi)

    def keep(self, ctx, asked):
        counts = ctx.span_counts
        ok = counts >= self.min_spans
        if self.max_spans is not None:
            ok &= counts <= self.max_spans
        return ok & asked

    def fields(self):
        out = {"min_spans": self.min_spans}
        if self.max_spans is not None:
            out["max_spans"] = self.max_spans
        return out


class _Probabilistic(_Policy):
    TYPE = "probabilistic"
    FIELDS = ("rate",)

    def __init__(self, rate: float):
        self.rate = rate

    @classmethod
    def parse(cls, r, depth):
        return cls(r.number("rate", ge=0, le=1))

    def keep(self, ctx, asked):
        p = min(1.0, max(0.0, self.rate * ctx.baseline))
        if p >= 1.0:  # threshold 0: every trace, without computing R
            return asked.copy()
        return (ctx.randomness >= np.uint64(consistent.threshold(p))) & asked

    def fields(self):
        return {"rate": self.rate}


class _RateLimiting(_Policy):
    """A token bucket per service: ``traces_per_s`` tokens a second, holding at most one second's
    worth (at least one token); a new service starts with a full bucket."""

    TYPE = "rate_limiting"
    FIELDS = ("traces_per_s",)
    stateful = True
    PRUNE_AT = 1024  # buckets kept before full (idle) ones are forgotten — which changes nothing

    def __init__(self, traces_per_s: float):
        self.traces_per_s = traces_per_s
        self.capacity = max(1.0, float(traces_per_s))
        self.buckets: dict[str, list] = {}  # service → [tokens, time of the last refill]

    @classmethod
    def parse(cls, r, depth):
        return cls(r.number("traces_per_s", gt=0))

    def _take(self, service: str, now: float, wanted: int) -> int:
        bucket = self.buckets.get(service)
        if bucket is None:
            bucket = self.buckets[service] = [self.capacity, now]
        elif now > bucket[1]:
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.traces_per_s)
            bucket[1] = now
        granted = min(wanted, int(bucket[0] + 1e-9))
        bucket[0] = max(0.0, bucket[0] - granted)
        return granted

    def _prune(self, now: float) -> None:
        # A bucket that has refilled to capacity is the same as no bucket: forgetting it is exact.
        full = [s for s, (tokens, last) in self.buckets.items()
                if tokens + max(0.0, now - last) * self.traces_per_s >= self.capacity]
        for s in full:
            del self.buckets[s]

    def keep(self, ctx, asked):
        out = np.zeros(ctx.n, dtype=bool)
        idx = np.flatnonzero(asked)
        if not len(idx):
            return out
        service_of, names = ctx.services
        svc = service_of[idx]
        for s in np.unique(svc).tolist():
            mine = idx[svc == s]  # in trace order: earlier traces of the batch get tokens first
            out[mine[:self._take(names[s], ctx.now, len(mine))]] = True
        if len(self.buckets) > self.PRUNE_AT:
            self._prune(ctx.now)
        return out

    def fields(self):
        return {"traces_per_s": self.traces_per_s}


class _Attribute(_Policy):
    """A condition on one attribute key, met when any span attribute (not event or link attributes)
    or any resource of the trace has the key with a matching value; ``invert`` keeps the traces
    where none does (a trace without the key included)."""

    FIELDS = ("key", "invert")

    def __init__(self, key: str, invert: bool):
        self.key = key
        self.bkey = key.encode("utf-8")
        self.invert = invert

    def span_rows_match(self, ctx: _Batch, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def value_matches(self, vtype: int, payload: bytes, num: int) -> bool:
        raise NotImplementedError

    def keep(self, ctx, asked):
        matched = np.zeros(ctx.n, dtype=bool)
        rows = ctx.key_rows(self.bkey)
        if len(rows):
            traces = ctx.ti[ctx.attrs["span"][rows].astype(np.intp)]
            wanted = asked[traces]  # only traces still asked about are worth the work
            rows, traces = rows[wanted], traces[wanted]
            if len(rows):
                matched[traces[self.span_rows_match(ctx, rows)]] = True
        resources = ctx.batch.resources
        if resources:  # Python per resource record, never per span
            hit = [value is not None and self.value_matches(*value)
                   for value in (ctx.resource_value(r, self.bkey) for r in range(len(resources)))]
            if any(hit):
                matched |= ctx.any_per_trace(np.array(hit, dtype=bool)[ctx.spans["resource"]])
        return (~matched if self.invert else matched) & asked


class _StringAttribute(_Attribute):
    TYPE = "string_attribute"
    FIELDS = ("key", "values", "regex", "invert")

    def __init__(self, key: str, values: list[str], regex: bool, invert: bool):
        super().__init__(key, invert)
        self.values = values
        self.regex = regex
        self.exact = {v.encode("utf-8") for v in values}
        self.patterns = [re.compile(v) for v in values] if regex else []

    @classmethod
    def parse(cls, r, depth):
        key = r.key()
        values = r.strings("values")
        regex = r.boolean("regex", False)
        if regex:
            for i, v in enumerate(values):
                try:
                    re.compile(v)
                except re.error as exc:
                    r.fail(f"values[{i}]", f"not a regular expression: {exc}")
        return cls(key, values, regex, r.boolean("invert", False))

    def _text_matches(self, text: bytes | None) -> bool:
        if text is None:
            return False
        if not self.regex:
            return text in self.exact
        s = text.decode("utf-8", "replace")
        return any(p.search(s) for p in self.patterns)

    def span_rows_match(self, ctx, rows):
        a = ctx.attrs
        vtype = a["vtype"][rows]
        out = np.zeros(len(rows), dtype=bool)
        strings = np.flatnonzero(vtype == VT_STRING)
        offs, lengths = a["val_off"][rows[strings]], a["val_len"][rows[strings]]
        if not self.regex:  # exact: compare bytes in numpy, value by value
            for value in self.exact:
                same = np.flatnonzero(lengths == len(value))
                out[strings[same[ctx.bytes_equal(offs[same], value)]]] = True
        elif len(strings):  # regex: one match per distinct string
            buf = ctx.batch.buf
            texts = [buf[o:o + n] for o, n in zip(offs.tolist(), lengths.tolist())]
            hits = {t: self._text_matches(t) for t in set(texts)}
            out[strings] = [hits[t] for t in texts]
        num = a["num"][rows]
        for vt in (VT_INT, VT_BOOL, VT_DOUBLE):  # one match per distinct value, as its Jaeger text
            sel = np.flatnonzero(vtype == vt)
            if len(sel):
                distinct, inverse = np.unique(num[sel], return_inverse=True)
                hit = [self._text_matches(value_text(vt, b"", v, _NO_LIMIT)) for v in distinct.tolist()]
                out[sel] = np.array(hit, dtype=bool)[inverse]
        return out

    def value_matches(self, vtype, payload, num):
        return self._text_matches(value_text(vtype, payload, num, _NO_LIMIT))

    def fields(self):
        return {"key": self.key, "values": list(self.values), "regex": self.regex,
                "invert": self.invert}


class _NumericAttribute(_Attribute):
    TYPE = "numeric_attribute"
    FIELDS = ("key", "min", "max", "invert")

    def __init__(self, key: str, lo, hi, invert: bool):
        super().__init__(key, invert)
        self.lo, self.hi = lo, hi

    @classmethod
    def parse(cls, r, depth):
        key = r.key()
        lo = r.number("min", required=False)
        hi = r.number("max", required=False)
        if lo is None and hi is None:
            r.fail(None, "numeric_attribute needs min, max or both")
        for field, v in (("min", lo), ("max", hi)):
            if isinstance(v, int) and not _I64_MIN <= v <= _I64_MAX:
                r.fail(field, "must be within the 64-bit integer range")
        if lo is not None and hi is not None and hi < lo:
            r.fail("max", f"must be >= min ({lo}), got {hi}")
        return cls(key, lo, hi, r.boolean("invert", False))

    def _in_range(self, values: np.ndarray) -> np.ndarray:
        ok = np.ones(len(values), dtype=bool)
        if self.lo is not None:
            ok &= values >= self.lo
        if self.hi is not None:
            ok &= values <= self.hi
        return ok

    def span_rows_match(self, ctx, rows):
        vtype = ctx.attrs["vtype"][rows]
        num = np.ascontiguousarray(ctx.attrs["num"][rows])
        out = np.zeros(len(rows), dtype=bool)
        ints = vtype == VT_INT
        out[ints] = self._in_range(num[ints])
        doubles = vtype == VT_DOUBLE
        out[doubles] = self._in_range(num[doubles].view(np.float64))  # NaN is in no range
        return out

    def value_matches(self, vtype, payload, num):
        if vtype == VT_INT:
            return bool(self._in_range(np.array([num], np.int64))[0])
        if vtype == VT_DOUBLE:
            return bool(self._in_range(np.array([num], np.int64).view(np.float64))[0])
        return False

    def fields(self):
        out = {"key": self.key}
        if self.lo is not None:
            out["min"] = self.lo
        if self.hi is not None:
            out["max"] = self.hi
        out["invert"] = self.invert
        return out


class _BooleanAttribute(_Attribute):
    TYPE = "boolean_attribute"
    FIELDS = ("key", "value", "invert")

    def __init__(self, key: str, value: bool, invert: bool):
        super().__init__(key, invert)
        self.value = value

    @classmethod
    def parse(cls, r, depth):
        return cls(r.key(), r.boolean("value"), r.boolean("invert", False))

    def span_rows_match(self, ctx, rows):
        return (ctx.attrs["vtype"][rows] == VT_BOOL) & (ctx.attrs["num"][rows] == int(self.value))

    def value_matches(self, vtype, payload, num):
        return vtype == VT_BOOL and bool(num) == self.value

    def fields(self):
        return {"key": self.key, "value": self.value, "invert": self.invert}


class _Combined(_Policy):
    FIELDS = ("policies",)

    def __init__(self, children: list):
        self.children = children
        self.stateful = any(c.stateful for c in children)
        # stateless sub-policies first, so a token bucket is only charged when it decides
        self.order = [c for c in children if not c.stateful] + [c for c in children if c.stateful]

    @classmethod
    def parse(cls, r, depth):
        if "policies" not in r.spec:
            r.fail("policies", "missing")
        return cls(_parse_list(r.spec["policies"], f"{r.path}.policies", depth + 1, top=False))

    def fields(self):
        return {"policies": [c.to_json() for c in self.children]}


class _And(_Combined):
    TYPE = "and"

    def keep(self, ctx, asked):
        still = asked
        for child in self.order:
            if not still.any():
                break
            still = child.keep(ctx, still)
        return still


class _Or(_Combined):
    TYPE = "or"

    def keep(self, ctx, asked):
        kept = np.zeros(ctx.n, dtype=bool)
        rest = asked.copy()
        for child in self.order:
            if not rest.any():
                break
            got = child.keep(ctx, rest)
            kept |= got
            rest &= ~got
        return kept


_TYPES = {cls.TYPE: cls for cls in (
    _AlwaysSample, _StatusCode, _Latency, _SpanCount, _Probabilistic, _RateLimiting,
    _StringAttribute, _NumericAttribute, _BooleanAttribute, _And, _Or,
)}


# --- the policy set ------------------------------------------------------------------------------


class Policies:
    """An ordered set of tail-sampling policies; a trace is kept by the first that keeps it."""

    def __init__(self, policies: list):
        self._policies = policies
        self._names = [p.name for p in policies]

    @classmethod
    def parse(cls, specs: list, where: str = "tail.policies") -> "Policies":
        """Validate and build a policy set from JSON specs; ``SamplingError`` names the exact path
        of the first problem (``tail.policies[2].threshold_ms: must be > 0, got 0``)."""
        return cls(_parse_list(specs, where, 0, top=True))

    @classmethod
    def default(cls, baseline_rate: float) -> "Policies":
        """Keep every trace with an error span, then ``baseline_rate`` of the rest."""
        return cls.parse([
            {"name": "errors", "type": "status_code", "status_codes": ["ERROR"]},
            {"name": "baseline", "type": "probabilistic", "rate": baseline_rate},
        ])

    def to_json(self) -> list[dict]:
        """The specs, normalized (defaults written out); ``parse(to_json())`` gives the same set."""
        return [p.to_json() for p in self._policies]

    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._policies)

    def __repr__(self) -> str:
        return f"Policies({self.to_json()!r})"

    def evaluate(self, batch: SpanBatch, trace_index: np.ndarray, trace_ids: list,
                 now: float, baseline: float = 1.0) -> list:
        """Decide ``len(trace_ids)`` whole traces.

        ``batch`` holds every span of the traces; ``trace_index[i]`` is the trace (0..n-1) of span
        row ``i``; ``trace_ids[t]`` is trace ``t``'s 16-byte ID; ``now`` (seconds) refills the rate
        limiters; ``baseline`` (0..1, the overload factor) multiplies every probabilistic rate.
        Returns per trace the name of the first policy that keeps it, or None (dropped).
        """
        n = len(trace_ids)
        ti = np.asarray(trace_index)
        if len(ti) != len(batch.spans):
            raise ValueError(f"trace_index has {len(ti)} entries for {len(batch.spans)} spans")
        if len(ti) and (int(ti.min()) < 0 or int(ti.max()) >= n):
            raise ValueError(f"trace_index must lie in 0..{n - 1}")
        if not n:
            return []
        ctx = _Batch(batch, ti, trace_ids, now, min(1.0, max(0.0, float(baseline))))
        decided = np.full(n, -1, dtype=np.intp)
        pending = np.ones(n, dtype=bool)
        for k, policy in enumerate(self._policies):
            kept = policy.keep(ctx, pending)
            decided[kept] = k
            pending &= ~kept
            if not pending.any():
                break
        names = self._names + [None]  # index -1 → None
        return [names[k] for k in decided.tolist()]
