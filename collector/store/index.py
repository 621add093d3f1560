"""Index stage: one partition's search index — span columns, Roaring bitmaps, term dictionary, trace table.

Every stored span gets a 32-bit ordinal in its partition.  Per ordinal, numpy columns hold the
trace ordinal, start, end, kind, status, operation, resource and scope record ordinals, span ID
and parent span ID.  Roaring bitmaps map to span ordinals: each service, each operation
(service + name + kind), each kind, each status, each resource/scope record, and each term
(``collector/store/terms.py``) of span, event and link attributes.  Resource and scope terms map
to the records that carry them (a record's bitmap lists its spans), so a resource attribute costs
one set entry per record, not one bitmap entry per span.  The trace table holds, per trace
ordinal, the trace ID, first start, last end, span and error counts and the root span's
operation — enough to list and sort results without reading spans.

Rare terms (fewer than ``PROMOTE`` occurrences in a batch and no bitmap yet: request IDs, URLs
with IDs, free text) do not get a bitmap: they go to *postings runs*, numpy arrays of (term hash,
key hash, span ordinal, value) sorted by term hash and merged size-tiered, with the string values
in a byte arena.  A term look-up unions its bitmap with a binary search in each run.

Built in bulk per write batch: hashes come from the compiled ``span_terms``; Python work is per
distinct frequent term, operation, record, key and trace of the batch, never per span per term.

Persisted (derived data) into the partition's ``index`` database by ``checkpoint``: append-only
segments for columns, trace IDs, names and dictionary, and the bitmaps changed since the last
checkpoint; ``watermark`` is the last chunk sequence covered.  Spans past the watermark are
re-indexed from their chunks when the partition opens.
"""
from __future__ import annotations

import array
import json
import re
import struct
import threading

import numpy as np
import zstandard
from opentelemetry.proto.trace.v1 import trace_pb2
from pyroaring import BitMap

from collector.codec import twin
from collector.model import (KIND_NAMES, VT_BOOL, VT_DOUBLE, VT_INT, VT_STRING, concat_batches,
                             concat_rows, take_rows)
from collector.store import criteria as C
from collector.store.terms import (W_EVENT, W_LINK, W_RESOURCE, W_SCOPE, W_SPAN,
                                   double_text, key_hash, term_hash, value_text)

FORMAT = 4
NO_SERVICE = "OTLP_ResourceNoServiceName"  # Jaeger's service name for a resource without one
STATUS_NAMES = ("unset", "ok", "error")
SCOPE_WHERE = {
    "any": (W_SPAN, W_EVENT, W_LINK, W_RESOURCE, W_SCOPE),
    "span": (W_SPAN,), "event": (W_EVENT,), "link": (W_LINK,),
    "resource": (W_RESOURCE,), "scope": (W_SCOPE,), "spanlike": (W_SPAN, W_RESOURCE),
}
_U32BE = struct.Struct(">I")
_U64BE = struct.Struct(">Q")
_EMPTY = BitMap()

PROMOTE = 4  # a term seen this often in one batch (or already holding one) gets a bitmap
FANOUT = 8  # postings runs of one level merged into one run of the next level
MAX_RUN_ROWS = 500_000  # runs are not merged past this size (a merge stalls the writer)
RARE = np.dtype([("hash", "<u8"), ("key", "<u8"), ("ord", "<u4"), ("where", "u1"), ("vtype", "u1"),
                 ("num", "<i8"), ("toff", "<u8"), ("tlen", "<u4")])

SPAN_COLS = np.dtype([("trace", "<u4"), ("start", "<u8"), ("end", "<u8"), ("kind", "u1"),
                      ("status", "u1"), ("op", "<u4"), ("res", "<u4"), ("scope", "<u4"),
                      ("sid", "<u8"), ("pid", "<u8")])


# Per-write staging rows: where each span and term row came from (batch number, row in it).
_PREP_SPAN = np.dtype([("res", "<u4"), ("scope", "<u4"), ("svc", "<u4"), ("name", "<u8"),
                       ("kind", "u1"), ("status", "u1"), ("start", "<u8"), ("end", "<u8"),
                       ("tid", "V16"), ("sid", "<u8"), ("pid", "<u8"), ("batch", "<u4"),
                       ("row", "<u4")])
_PREP_ATTR = np.dtype([("hash", "<u8"), ("key", "<u8"), ("span", "<i8"), ("where", "u1"),
                       ("vtype", "u1"), ("num", "<i8"), ("toff", "<i8"), ("tlen", "<u4"),
                       ("batch", "<u4"), ("row", "<u4")])
class Grow:
    """An append-only numpy array with amortised doubling; ``view()`` is the filled prefix."""

    __slots__ = ("a", "n")

    def __init__(self, dtype, capacity: int = 1024):
        self.a = np.zeros(capacity, dtype)
        self.n = 0

    def reserve(self, k: int) -> None:
        need = self.n + k
        if need > len(self.a):
            bigger = np.zeros(max(need, 2 * len(self.a)), self.a.dtype)
            bigger[:self.n] = self.a[:self.n]
            self.a = bigger  # readers holding the old array keep a consistent prefix

    def extend(self, values) -> None:
        k = len(values)
        self.reserve(k)
        if self.a.dtype.names and isinstance(values, np.ndarray) and values.dtype == self.a.dtype:
            size = self.a.dtype.itemsize  # whole rows as bytes: structured assignment goes field by field
            self.a.view(np.uint8)[self.n * size:(self.n + k) * size] = np.ascontiguousarray(values).view(np.uint8)
        else:
            self.a[self.n:self.n + k] = values
        self.n += k

    def view(self) -> np.ndarray:
        return self.a[:self.n]


def _aa(ords: np.ndarray) -> array.array:
    """uint32 ordinals as the array.array pyroaring adds in bulk."""
    out = array.array("I")
    out.frombytes(np.ascontiguousarray(ords, np.uint32).tobytes())
    return out


def _np(bm: BitMap) -> np.ndarray:
    return np.frombuffer(bm.to_array(), np.uint32) if bm else np.zeros(0, np.uint32)


_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _groups(primary: np.ndarray, secondary: np.ndarray | None = None):
    """``(first row of each distinct value, group number of every row)``, groups in sorted order."""
    order = np.argsort(primary, kind="stable") if secondary is None else np.lexsort((secondary, primary))
    p = primary[order]
    change = np.empty(len(p), bool)
    change[:1] = True
    change[1:] = p[1:] != p[:-1]
    if secondary is not None:
        q = secondary[order]
        change[1:] |= q[1:] != q[:-1]
    group_sorted = np.cumsum(change) - 1
    inverse = np.empty(len(p), np.int64)
    inverse[order] = group_sorted
    return order[change], inverse


def _joined(parts: list) -> bytes | bytearray:
    """The parts of a segment (views of the database map) copied once into one buffer."""
    if len(parts) == 1:
        return bytes(parts[0])
    out = bytearray(sum(len(p) for p in parts))
    pos = 0
    for p in parts:
        out[pos:pos + len(p)] = p
        pos += len(p)
    return out


def _split(query: C.TraceQuery) -> tuple[list, list]:
    """The query's span conditions and window as (bitmap conditions, column conditions)."""
    window = []
    if query.start_min_ns is not None:
        window.append(C.Cond(C.START, ">=", query.start_min_ns))
    if query.start_max_ns is not None:
        window.append(C.Cond(C.START, "<=", query.start_max_ns))
    parts = _flatten_and(C.all_of(query.span, *window))
    return [p for p in parts if not _is_column(p)], [p for p in parts if _is_column(p)]


def _flatten_and(expr) -> list:
    """The conjuncts of an expression (nested ``And`` opened), or [] for no expression."""
    if expr is None:
        return []
    if isinstance(expr, C.And):
        return [q for p in expr.parts for q in _flatten_and(p)]
    return [expr]


def _is_column(node) -> bool:
    """A condition answered from the span columns rather than a bitmap."""
    return isinstance(node, C.Cond) and node.field in (C.DURATION, C.START)


def _merge_runs(runs: list) -> tuple[np.ndarray, np.ndarray, bytes]:
    """One postings run from several: rows re-sorted by term hash, arenas concatenated."""
    if not runs:
        return np.zeros(0, np.uint64), np.zeros(0, RARE), b""
    rows = concat_rows([r for r, _a in runs], RARE)
    bases = np.cumsum([0] + [len(a) for _r, a in runs[:-1]], dtype=np.uint64)
    rows["toff"] += np.repeat(bases, [len(r) for r, _a in runs])
    hashes = np.ascontiguousarray(rows["hash"])
    order = np.argsort(hashes, kind="stable")  # timsort: the inputs are sorted runs
    return hashes[order], take_rows(rows, order), b"".join(a for _r, a in runs)


EXPORT_SLICE_BYTES = 1 << 20  # bytes of a large exported value produced per slice


class Parts:
    """A value of ``size`` bytes produced in slices (buffers) by iterating it; ``bytes(parts)``
    joins them."""

    __slots__ = ("size", "make")

    def __init__(self, size: int, make):
        self.size = size
        self.make = make

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return iter(self.make())

    def __bytes__(self) -> bytes:
        return b"".join(self.make())


def _array_slices(a: np.ndarray, pace=None):
    """The bytes of a contiguous array in ``EXPORT_SLICE_BYTES`` slices."""
    raw = a.view(np.uint8).reshape(-1) if len(a) else np.zeros(0, np.uint8)
    for at in range(0, len(raw), EXPORT_SLICE_BYTES):
        yield raw[at:at + EXPORT_SLICE_BYTES].tobytes()
        if pace:
            pace()


def _arena_slices(runs: list, pace=None):
    """The runs' arenas back to back (``_merge_runs``' arena) in slices."""
    for _h, _r, arena in runs:
        view = memoryview(arena)
        for at in range(0, len(view), EXPORT_SLICE_BYTES):
            yield view[at:at + EXPORT_SLICE_BYTES]
            if pace:
                pace()


def _merged_rows(runs: list, pace=None):
    """The rows ``_merge_runs`` makes of ``(hashes, rows, arena)`` runs (each sorted by hash),
    as bytes in slices: the hash range is cut at hashes sampled from every run, so a slice takes
    at most ``step`` rows of each run; each slice is sorted on its own (stably, runs in order, so
    equal hashes keep the order the whole sort gives them)."""
    step = max(1, EXPORT_SLICE_BYTES // RARE.itemsize // max(1, len(runs)))
    hashes = [np.asarray(h, np.uint64) for h, _r, _a in runs]
    cuts = np.unique(np.concatenate([h[step::step] for h in hashes] + [np.zeros(0, np.uint64)]))
    bounds = [np.concatenate(([0], np.searchsorted(h, cuts, "left"), [len(h)])) for h in hashes]
    bases = np.cumsum([0] + [len(a) for _h, _r, a in runs[:-1]], dtype=np.uint64)
    for i in range(len(cuts) + 1):
        parts = [(r[b[i]:b[i + 1]], base) for (_h, r, _a), b, base in zip(runs, bounds, bases)
                 if b[i + 1] > b[i]]
        if not parts:
            continue
        rows = concat_rows([p for p, _base in parts], RARE)
        rows["toff"] += np.repeat(np.array([base for _p, base in parts], np.uint64), [len(p) for p, _b in parts])
        order = np.argsort(rows["hash"], kind="stable")
        yield take_rows(rows, order).tobytes()
        if pace:
            pace()


def _rare_text(rows: np.ndarray, arena: bytes, i: int) -> str:
    """The string form of postings row ``i``."""
    row = rows[i]
    off = int(row["toff"])
    return _value_str(int(row["vtype"]), arena[off:off + int(row["tlen"])], int(row["num"]))


def _value_str(vtype: int, payload: bytes, num: int) -> str:
    """A term value's string form (terms.value_text, as text and with no length bound)."""
    return value_text(vtype, payload, num, len(payload)).decode("utf-8", "replace")


def _text_of(value) -> str:
    """A query value's string form, as stored terms compare it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return double_text(value).decode()
    return str(value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(op: str, a, b) -> bool:
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _matcher(cond: C.Cond):
    """A predicate over a candidate's text (attribute value, name, service…)."""
    op, value = cond.op, cond.value
    if op == "exists":
        return lambda text: True
    if op in ("=~", "!~"):
        rx = re.compile(str(value), re.DOTALL)
        hit = op == "=~"
        return lambda text: (rx.fullmatch(text) is not None) == hit
    if op in ("=", "!="):
        want = _text_of(value)
        return (lambda text: text == want) if op == "=" else (lambda text: text != want)
    bound = float(value) if not isinstance(value, str) else _number(value)
    if bound is None:
        if isinstance(value, str):  # string ordering, as TraceQL compares strings
            return lambda text: _compare(op, text, value)
        return lambda text: False

    def numeric(text):
        x = _number(text)
        return x is not None and _compare(op, x, bound)
    return numeric


class PartitionIndex:
    """The index of one partition.  The writer thread adds; readers hold ``lock`` while searching."""

    def __init__(self, max_value_len: int = 256, allow_keys: tuple = (), deny_keys: tuple = ()):
        self.lock = threading.RLock()
        self.max_value_len = max_value_len
        self.allow = frozenset(allow_keys)
        self.deny = frozenset(deny_keys)
        self.cols = Grow(SPAN_COLS)
        self.max_start = Grow("<u8")  # per ordinal: the latest start among ordinals up to it
        # traces
        self.tmap: dict[bytes, int] = {}
        self.t_id = Grow("V16")
        self.t_start = Grow("<u8")
        self.t_end = Grow("<u8")
        self.t_spans = Grow("<u4")
        self.t_errors = Grow("<u4")
        self.t_root = Grow("<i8")  # operation ordinal of the root span, -1 when none seen
        # names
        self.services: list[str] = []
        self.svc_map: dict[str, int] = {}
        self.svc_bm: list[BitMap] = []
        self.ops: list[tuple[int, str, int]] = []  # (service ordinal, name, kind)
        self.op_map: dict[tuple[int, int, int], int] = {}  # (service, name hash, kind) → ordinal
        self.op_svc = Grow("<u4")
        self.op_bm: list[BitMap] = []
        self.kind_bm = [BitMap() for _ in KIND_NAMES]
        self.status_bm = [BitMap() for _ in STATUS_NAMES]
        # records (resources and scopes)
        self.rec_map: dict[tuple[int, int], int] = {}  # (where, xxh64 of the record) → ordinal
        self.records: list[tuple[int, int, int]] = []  # (where, record id, service ordinal or -1)
        self.rec_svc = Grow("<i8")
        self.rec_bm: list[BitMap] = []
        self.rec_terms: dict[int, set[int]] = {}  # term hash → record ordinals
        self.rec_hashes: list[list[int]] = []  # per record, its term hashes
        # span/event/link terms and the dictionary of every term
        self.terms: dict[int, BitMap] = {}
        self.dictionary: dict[int, tuple[int, str, str, int]] = {}  # hash → (where, key, text, vtype)
        self.keys: dict[tuple[int, str], list[int]] = {}  # (where, key) → term hashes with bitmaps
        self.bm_hashes = np.zeros(0, np.uint64)  # sorted hashes of the terms holding a bitmap
        self.key_names: dict[int, tuple[int, str]] = {}  # key hash → (where, key)
        self.levels: list[list[tuple]] = [[]]  # postings runs (hashes, RARE rows, arena) per level
        self.sealed: list[tuple] = []  # runs at their final size (and runs loaded from a checkpoint)
        # persistence bookkeeping
        self.watermark = 0  # last chunk sequence whose spans are indexed and checkpointed
        self.indexed_seq = 0  # last chunk sequence whose spans are indexed
        self._saved = {"spans": 0, "traces": 0, "services": 0, "ops": 0, "records": 0}
        self._new_terms: list[int] = []
        self._new_keys: list[int] = []
        self._pending_runs: list[tuple[np.ndarray, bytes]] = []
        self._saved_runs = 0
        self._checkpoints = 0  # checkpoints written (suffix of the bitmap deltas)
        self._dirty: set[bytes] = set()
        self._write_attrs: list = []  # during a write: each batch's attrs (to read keys and values)
        self.compressed_checkpoints = True  # False for a partition checkpointed before compression

    # ------------------------------------------------------------------ building

    def __len__(self) -> int:
        return self.cols.n

    def _key_ok(self, key: str) -> bool:
        if self.allow and key not in self.allow:
            return False
        return key not in self.deny

    def _service(self, name: str) -> int:
        o = self.svc_map.get(name)
        if o is None:
            o = self.svc_map[name] = len(self.services)
            self.services.append(name)
            self.svc_bm.append(BitMap())
        return o

    def _record(self, where: int, rid: int, record: bytes, service: str | None) -> int:
        o = self.rec_map.get((where, rid))
        if o is not None:
            return o
        o = self.rec_map[(where, rid)] = len(self.records)
        svc = self._service(service or NO_SERVICE) if where == W_RESOURCE else -1
        self.records.append((where, rid, svc))
        self.rec_svc.extend([svc])
        self.rec_bm.append(BitMap())
        hashes = []
        for h, key, text, vtype in self._record_terms(where, record):
            self._learn(h, where, key, text, vtype)
            self.rec_terms.setdefault(h, set()).add(o)
            hashes.append(h)
        self.rec_hashes.append(hashes)
        return o

    def _record_terms(self, where: int, record: bytes):
        """Terms of a resource record (ResourceSpans without spans) or scope record."""
        if where == W_RESOURCE:
            attrs = trace_pb2.ResourceSpans.FromString(record).resource.attributes
        else:
            attrs = trace_pb2.ScopeSpans.FromString(record).scope.attributes
        out = []
        for kv in attrs:
            if not self._key_ok(kv.key):
                continue
            v = kv.value
            which = v.WhichOneof("value")
            if which == "string_value":
                if len(v.string_value.encode()) > self.max_value_len:
                    continue
                text, vtype = v.string_value, VT_STRING
            elif which == "bool_value":
                text, vtype = ("true" if v.bool_value else "false"), VT_BOOL
            elif which == "int_value":
                text, vtype = str(v.int_value), VT_INT
            elif which == "double_value":
                text, vtype = double_text(v.double_value).decode(), VT_DOUBLE
            else:
                continue
            out.append((term_hash(where, kv.key.encode(), text.encode()), kv.key, text, vtype))
        return out

    def _learn(self, h: int, where: int, key: str, text: str, vtype: int) -> None:
        if h not in self.dictionary:
            self.dictionary[h] = (where, key, text, vtype)
            self.keys.setdefault((where, key), []).append(h)
            self._new_terms.append(h)

    def add(self, batch, rows: np.ndarray, resource_ids: np.ndarray, scope_ids: np.ndarray) -> None:
        """Index the spans ``batch.spans[rows]`` (the accepted ones), in that order."""
        self.add_many([(batch, rows, resource_ids, scope_ids)])

    def add_many(self, items, seq: int | None = None) -> None:
        """Index several ``(batch, rows, resource ids, scope ids)`` at once, in order.

        The batches of one write are folded together, so the per-call costs (grouping, sorting,
        one bitmap update per term) are paid once per write rather than once per request."""
        items = [(b, np.asarray(r, np.int64), ri, si) for b, r, ri, si in items if len(r)]
        if not items:
            if seq is not None:
                with self.lock:
                    self.indexed_seq = max(self.indexed_seq, seq)
            return
        if len(items) > 1:  # one batch for the whole write: every numpy step runs once
            offsets = np.cumsum([0] + [len(b.spans) for b, _r, _ri, _si in items[:-1]])
            items = [(concat_batches([b for b, _r, _ri, _si in items]),
                      np.concatenate([r + o for (_b, r, _ri, _si), o in zip(items, offsets)]),
                      np.concatenate([ri for _b, _r, ri, _si in items]),
                      np.concatenate([si for _b, _r, _ri, si in items]))]
        span_terms = twin("terms").span_terms
        hashed = [span_terms(b.buf, b.spans, b.attrs, self.max_value_len) for b, _r, _ri, _si in items]
        with self.lock:
            self._add_all(items, hashed)
            if seq is not None:
                self.indexed_seq = seq

    def _add_all(self, items, hashed) -> None:
        first = self.cols.n
        span_parts, attr_parts, arenas = [], [], []
        base, arena_base = 0, 0
        for bi, ((batch, rows, rids, sids), (name_h, term_h, key_h)) in enumerate(zip(items, hashed)):
            spans = take_rows(batch.spans, rows)
            n = len(rows)
            res_ord = np.array([self._record(W_RESOURCE, int(rids[r]), rec, svc)
                                for r, (rec, svc) in enumerate(batch.resources)], np.uint32)
            scope_ord = np.array([self._record(W_SCOPE, int(sids[s]), rec, None)
                                  for s, (rec, _r) in enumerate(batch.scopes)], np.uint32)
            sp = np.zeros(n, _PREP_SPAN)
            sp["res"] = res_ord[spans["resource"]] if len(res_ord) else 0
            sp["scope"] = scope_ord[spans["scope"]] if len(scope_ord) else 0
            sp["svc"] = self.rec_svc.view()[sp["res"]]
            sp["name"] = name_h[rows]
            sp["kind"] = np.minimum(spans["kind"], len(KIND_NAMES) - 1)
            sp["status"] = np.minimum(spans["status_code"], 2)
            sp["start"], sp["end"] = spans["start_ns"], spans["end_ns"]
            sp["tid"] = spans["trace_id"]
            sp["sid"] = spans["span_id"].view("<u8")
            sp["pid"] = np.where(spans["parent_id_len"] > 0, spans["parent_span_id"].view("<u8"), 0)
            sp["batch"], sp["row"] = bi, rows
            span_parts.append(sp)
            attrs = batch.attrs
            if len(attrs):
                pos = np.full(len(batch.spans), -1, np.int64)
                pos[rows] = np.arange(n)
                arow_span = pos[attrs["span"]]
                keep = (term_h != 0) & (arow_span >= 0)
                if self.allow or self.deny:
                    keep &= self._key_filter(batch.buf, attrs)
                idx = np.flatnonzero(keep)
                if len(idx):
                    a = take_rows(attrs, idx)
                    ap = np.zeros(len(idx), _PREP_ATTR)
                    ap["hash"], ap["key"] = term_h[idx], key_h[idx]
                    ap["span"] = arow_span[idx] + base
                    ap["where"], ap["vtype"], ap["num"] = a["where"], a["vtype"], a["num"]
                    ap["batch"], ap["row"] = bi, idx
                    # string values stay where they are; only rare ones are copied, into their run
                    ap["toff"] = a["val_off"].astype(np.int64) + arena_base
                    ap["tlen"] = np.where(a["vtype"] == VT_STRING, a["val_len"], 0)
                    attr_parts.append(ap)
            arenas.append(np.frombuffer(batch.buf, np.uint8))
            arena_base += len(batch.buf)
            base += n
        sp = concat_rows(span_parts, _PREP_SPAN)
        n = len(sp)
        ords = np.arange(first, first + n, dtype=np.uint32)
        bufs = [b.buf for b, _r, _ri, _si in items]
        self._write_attrs = [b.attrs for b, _r, _ri, _si in items]
        # operations: distinct (service, name hash, kind); Python per new operation only
        okey = (sp["name"] ^ (sp["svc"].astype(np.uint64) * _GOLD)) + sp["kind"].astype(np.uint64)
        first_row, inverse = _groups(okey)
        op_of = np.empty(len(first_row), np.uint32)
        for u, r in enumerate(first_row.tolist()):
            svc, nh, kind = int(sp["svc"][r]), int(sp["name"][r]), int(sp["kind"][r])
            o = self.op_map.get((svc, nh, kind))
            if o is None:
                batch = items[int(sp["batch"][r])][0]
                row = int(sp["row"][r])
                off, ln = int(batch.spans["name_off"][row]), int(batch.spans["name_len"][row])
                o = self.op_map[(svc, nh, kind)] = len(self.ops)
                self.ops.append((svc, batch.buf[off:off + ln].decode("utf-8", "replace"), kind))
                self.op_svc.extend([svc])
                self.op_bm.append(BitMap())
            op_of[u] = o
        span_op = op_of[inverse]
        # traces: Python per trace of the write
        tid2 = np.ascontiguousarray(sp["tid"]).view("<u8").reshape(-1, 2)
        tfirst, tinv = _groups(tid2[:, 0], tid2[:, 1])
        t_of = np.empty(len(tfirst), np.uint32)
        new = []
        for u, tid in enumerate(sp["tid"][tfirst].tolist()):
            o = self.tmap.get(tid)
            if o is None:
                o = self.tmap[tid] = self.t_id.n + len(new)
                new.append(tid)
            t_of[u] = o
        if new:
            k = len(new)
            self.t_id.extend(np.frombuffer(b"".join(new), "V16"))
            self.t_start.extend(np.full(k, np.iinfo(np.uint64).max, np.uint64))
            self.t_end.extend(np.zeros(k, np.uint64))
            self.t_spans.extend(np.zeros(k, np.uint32))
            self.t_errors.extend(np.zeros(k, np.uint32))
            self.t_root.extend(np.full(k, -1, np.int64))
        cols = np.zeros(n, SPAN_COLS)
        cols["trace"] = t_of[tinv]
        for f in ("start", "end", "kind", "status", "res", "scope", "sid", "pid"):
            cols[f] = sp[f]
        cols["op"] = span_op
        self._apply(cols, ords, span_op)
        if attr_parts:
            ap = concat_rows(attr_parts, _PREP_ATTR)
            arena = arenas[0] if len(arenas) == 1 else np.concatenate(arenas)
            self._add_terms(bufs, ap, ords[ap["span"]], arena)
        self._write_attrs = []

    def _add_terms(self, bufs, ap, a_ords, arena: np.ndarray) -> None:
        """Frequent terms into bitmaps, rare ones into a postings run; learn new keys."""
        h = ap["hash"]
        first, inv = _groups(h)
        cnt = np.bincount(inv, minlength=len(first))
        uh = h[first]
        kh = ap["key"][first]  # a new key always comes with a new term: look at one row per term
        ukh, kfirst = np.unique(kh, return_index=True)
        for k, f in zip(ukh.tolist(), kfirst.tolist()):
            if k not in self.key_names:
                row = ap[first[f]]
                attr = self._write_attrs[int(row["batch"])][int(row["row"])]
                ko, kl = int(attr["key_off"]), int(attr["key_len"])
                self.key_names[k] = (int(row["where"]),
                                     bufs[int(row["batch"])][ko:ko + kl].decode("utf-8", "replace"))
                self._new_keys.append(k)
        to_bm = (cnt >= PROMOTE) | np.isin(uh, self.bm_hashes, assume_unique=True)
        row_bm = to_bm[inv]
        sel = np.flatnonzero(row_bm)
        if len(sel):
            bh, bo, bsel = h[sel], a_ords[sel], sel
            order = np.lexsort((bo, bh))
            bh, bo, bsel = bh[order], bo[order], bsel[order]
            starts = np.flatnonzero(np.concatenate(([True], bh[1:] != bh[:-1])))
            ends = np.append(starts[1:], len(bh))
            all_ords = _aa(bo)
            terms, dirty, created = self.terms, self._dirty, []
            for st, e, th in zip(starts.tolist(), ends.tolist(), bh[starts].tolist()):
                bm = terms.get(th)
                if bm is None:
                    bm = terms[th] = BitMap()
                    created.append(th)
                    row = ap[bsel[st]]
                    attr = self._write_attrs[int(row["batch"])][int(row["row"])]
                    self._learn_row(th, bufs[int(row["batch"])], attr)
                bm.update(all_ords[st:e])
                dirty.add(b"B" + _U64BE.pack(th))
            if created:
                self.bm_hashes = np.union1d(self.bm_hashes, np.array(created, np.uint64))
        rare = np.flatnonzero(~row_bm)
        if len(rare):
            self._add_run(take_rows(ap, rare), a_ords[rare], arena)

    def _add_run(self, ap, ords, arena: np.ndarray) -> None:
        rows = np.zeros(len(ap), RARE)
        rows["hash"], rows["key"], rows["ord"] = ap["hash"], ap["key"], ords
        rows["where"], rows["vtype"], rows["num"] = ap["where"], ap["vtype"], ap["num"]
        lens = ap["tlen"].astype(np.int64)
        starts = np.cumsum(lens) - lens
        total = int(lens.sum())
        if total:
            src = np.repeat(ap["toff"].astype(np.int64) - starts, lens) + np.arange(total)
            run_arena = arena[src].tobytes()
        else:
            run_arena = b""
        rows["toff"], rows["tlen"] = starts, lens
        rows = take_rows(rows, np.argsort(rows["hash"], kind="stable"))
        self._pending_runs.append((rows, run_arena))
        # merged FANOUT at a time by merge_step, off the writer thread
        self.levels[0].append((np.ascontiguousarray(rows["hash"]), rows, run_arena))

    @property
    def runs(self) -> list:
        return self.sealed + [run for level in self.levels for run in level]

    def _key_filter(self, buf, attrs) -> np.ndarray:
        keys = [buf[o:o + n].decode("utf-8", "replace")
                for o, n in zip(attrs["key_off"].tolist(), attrs["key_len"].tolist())]
        return np.fromiter((self._key_ok(k) for k in keys), bool, len(keys))

    def _learn_row(self, th: int, buf, row) -> None:
        ko, kl, vo, vl = int(row["key_off"]), int(row["key_len"]), int(row["val_off"]), int(row["val_len"])
        vtype, num = int(row["vtype"]), int(row["num"])
        key = buf[ko:ko + kl].decode("utf-8", "replace")
        self._learn(th, int(row["where"]), key, _value_str(vtype, buf[vo:vo + vl], num), vtype)

    def _apply(self, cols: np.ndarray, ords: np.ndarray, span_op: np.ndarray) -> None:
        """Append columns and fold them into the trace table and the per-name bitmaps."""
        self.cols.extend(cols)
        self._extend_max_start(cols["start"])
        tr = cols["trace"]
        timed = cols["start"] > 0  # a span without a start time (Zipkin allows it) does not move the trace's start
        np.minimum.at(self.t_start.a, tr[timed], cols["start"][timed])
        np.maximum.at(self.t_end.a, tr, cols["end"])
        np.add.at(self.t_spans.a, tr, 1)
        err = cols["status"] == 2
        if err.any():
            np.add.at(self.t_errors.a, tr[err], 1)
        root = cols["pid"] == 0
        if root.any():
            self.t_root.a[tr[root]] = cols["op"][root]
        self._group_into(span_op, ords, self.op_bm, b"o")
        self._group_into(cols["kind"], ords, self.kind_bm, b"k")
        self._group_into(cols["status"], ords, self.status_bm, b"t")
        self._group_into(cols["res"], ords, self.rec_bm, b"r")
        self._group_into(cols["scope"], ords, self.rec_bm, b"r")
        self._group_into(self.op_svc.view()[span_op], ords, self.svc_bm, b"s")

    def _extend_max_start(self, starts: np.ndarray) -> None:
        if not len(starts):
            return
        m = np.maximum.accumulate(starts)
        if self.max_start.n:
            m = np.maximum(m, self.max_start.a[self.max_start.n - 1])
        self.max_start.extend(m)

    def _group_into(self, values: np.ndarray, ords: np.ndarray, bitmaps: list, tag: bytes) -> None:
        order = np.argsort(values, kind="stable")
        v = values[order]
        starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
        ends = np.append(starts[1:], len(v))
        sorted_ords = _aa(ords[order])
        for s, e, val in zip(starts.tolist(), ends.tolist(), v[starts].tolist()):
            bitmaps[val].update(sorted_ords[s:e])
            self._dirty.add(tag + _U32BE.pack(val))

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> list | None:
        """Under the lock, cheaply: what changed since the last checkpoint, as ``(key, value)``
        pairs still to encode, with the watermark they cover; the bookkeeping is reset as if
        persisted.  ``encode_snapshot`` does the heavy part without the lock.  None: no change."""
        with self.lock:
            s = self._saved
            if self.indexed_seq <= self.watermark and not self._dirty:
                return None
            items = []
            if self.cols.n > s["spans"]:
                items.append((b"C" + _U32BE.pack(s["spans"]), self.cols.a[s["spans"]:self.cols.n].copy()))
            if self.t_id.n > s["traces"]:
                items.append((b"T" + _U32BE.pack(s["traces"]), self.t_id.a[s["traces"]:self.t_id.n].copy()))
            if len(self.services) > s["services"]:
                items.append((b"S" + _U32BE.pack(s["services"]), self.services[s["services"]:]))
            if len(self.ops) > s["ops"]:
                rows = [[self.ops[o][0], self.ops[o][1], kind, nh] for (svc, nh, kind), o
                        in self.op_map.items() if o >= s["ops"]]
                rows.sort(key=lambda r: self.op_map[(r[0], r[3], r[2])])
                items.append((b"O" + _U32BE.pack(s["ops"]), rows))
            if len(self.records) > s["records"]:
                items.append((b"R" + _U32BE.pack(s["records"]), [
                    [*r, self.rec_hashes[i]] for i, r in enumerate(self.records[s["records"]:], s["records"])]))
            if self._new_terms:
                items.append((b"D" + _U32BE.pack(len(self.dictionary)),
                              [[h, *self.dictionary[h]] for h in self._new_terms]))
            if self._new_keys:
                items.append((b"K" + _U32BE.pack(len(self.key_names)),
                              [[k, *self.key_names[k]] for k in self._new_keys]))
            if self._pending_runs:
                items.append((b"P" + _U32BE.pack(self._saved_runs), list(self._pending_runs)))
                self._saved_runs += 1
            # Bitmaps only ever gain new ordinals: persist what each gained since the last
            # checkpoint, so a checkpoint costs what changed, not the size of the partition.
            fresh = BitMap()
            fresh.add_range(s["spans"], max(self.cols.n, s["spans"]))
            suffix = _U32BE.pack(self._checkpoints)
            for key in self._dirty:
                delta = self._bitmap_for(key) & fresh
                if delta:
                    items.append((key + suffix, delta))
            self._checkpoints += 1
            head = {"format": FORMAT, "watermark": self.indexed_seq, "spans": self.cols.n,
                    "traces": self.t_id.n, "services": len(self.services), "ops": len(self.ops),
                    "records": len(self.records), "max_value_len": self.max_value_len,
                    "runs": self._saved_runs, "checkpoints": self._checkpoints,
                    "dictionary": len(self.dictionary), "keys": len(self.key_names)}
            items.append((b"H", head))
            self._saved = {k: head[k] for k in s}
            self._new_terms = []
            self._new_keys = []
            self._pending_runs = []
            self._dirty = set()
            self.watermark = self.indexed_seq
            return items

    def export(self) -> list[tuple[bytes, bytes]]:
        """The whole index as the entries of one checkpoint (whole bitmaps, one postings run),
        sorted by key: the index section of a cold file (``collector/store/cold.py``), read back
        by ``load_entries``.  The index itself is not changed."""
        return [(key, value if isinstance(value, (bytes, bytearray)) else bytes(value))
                for key, value in self.export_parts()]

    def export_parts(self, pace=None) -> list[tuple[bytes, object]]:
        """``export`` for writing a cold file: the large values (span columns, the merged
        postings run and its arena) are ``Parts`` that produce their bytes in slices of about
        ``EXPORT_SLICE_BYTES`` when iterated, calling ``pace()`` between slices, so no single
        step holds the interpreter long (the merge sorts one range of term hashes at a time).
        The rest is encoded at once (small next to those)."""
        with self.lock:
            z = _U32BE.pack(0)
            cols = self.cols.a[:self.cols.n]  # columns are only appended: this prefix stays as is
            items = [(b"T" + z, self.t_id.a[:self.t_id.n].copy())]
            if self.services:
                items.append((b"S" + z, list(self.services)))
            if self.ops:
                rows = sorted(([svc, self.ops[o][1], kind, nh, o] for (svc, nh, kind), o
                               in self.op_map.items()), key=lambda r: r[4])
                items.append((b"O" + z, [r[:4] for r in rows]))
            if self.records:
                items.append((b"R" + z, [[*r, self.rec_hashes[i]] for i, r in enumerate(self.records)]))
            if self.dictionary:
                items.append((b"D" + _U32BE.pack(len(self.dictionary)),
                              [[h, *v] for h, v in self.dictionary.items()]))
            if self.key_names:
                items.append((b"K" + _U32BE.pack(len(self.key_names)),
                              [[k, *v] for k, v in self.key_names.items()]))
            runs = list(self.runs)  # runs are replaced, never changed
            for h, bm in self.terms.items():
                if bm:
                    items.append((b"B" + _U64BE.pack(h) + z, BitMap(bm)))
            for tag, bitmaps in ((b"o", self.op_bm), (b"k", self.kind_bm), (b"t", self.status_bm),
                                 (b"r", self.rec_bm), (b"s", self.svc_bm)):
                for i, bm in enumerate(bitmaps):
                    if bm:
                        items.append((tag + _U32BE.pack(i) + z, BitMap(bm)))
            items.append((b"H", {
                "format": FORMAT, "watermark": self.indexed_seq, "spans": self.cols.n,
                "traces": self.t_id.n, "services": len(self.services), "ops": len(self.ops),
                "records": len(self.records), "max_value_len": self.max_value_len,
                "runs": 1 if runs else 0, "checkpoints": 1, "dictionary": len(self.dictionary),
                "keys": len(self.key_names)}))
        out = self.encode_snapshot(items)
        out.append((b"C" + z, Parts(cols.nbytes, lambda: _array_slices(cols, pace))))
        if runs:
            rows = sum(len(r) for _h, r, _a in runs)
            out.append((b"P" + z, Parts(rows * RARE.itemsize, lambda: _merged_rows(runs, pace))))
            out.append((b"A" + z, Parts(sum(len(a) for _h, _r, a in runs),
                                        lambda: _arena_slices(runs, pace))))
        out.sort(key=lambda e: e[0])
        return out

    def load_entries(self, entries: list[tuple[bytes, bytes]]) -> bool:
        """Load an index from ``export``'s sorted entries (a cold file's index section)."""
        table = dict(entries)

        class _Txn:  # the part of an LMDB transaction ``_load`` uses
            def get(self, key, db=None):
                return table.get(key)

            def cursor(self, db=None):
                return iter(entries)

        return self._load(_Txn(), None)

    @staticmethod
    def encode_snapshot(items: list, compress: int = 0) -> list[tuple[bytes, bytes]]:
        """A ``snapshot`` as database entries (heavy: run it outside any write transaction).
        With ``compress`` (a zstd level), every value but the header is one zstd frame and the
        header says ``"zstd": 1``."""
        out = []
        zc = zstandard.ZstdCompressor(level=compress) if compress else None
        for key, value in items:
            if key[:1] == b"P":  # the runs written since the last checkpoint, merged into one
                _h, rows, arena = _merge_runs(value)
                out += [(key, rows.tobytes()), (b"A" + key[1:], arena)]
            elif key == b"H":
                out.append((key, json.dumps(dict(value, zstd=1) if zc else value).encode()))
            elif isinstance(value, np.ndarray):
                out.append((key, value.tobytes()))
            elif isinstance(value, BitMap):
                out.append((key, value.serialize()))
            else:
                out.append((key, json.dumps(value).encode()))
        if zc:
            out = [(k, v if k == b"H" else zc.compress(v)) for k, v in out]
        return out

    def merge_step(self) -> bool:
        """Merge one full level of postings runs into the next (False: nothing to merge).

        Runs are taken and put back under the lock; the merge itself runs without it (numpy
        releases the GIL for the sort and copies), so the writer keeps going meanwhile."""
        with self.lock:
            for level, runs in enumerate(self.levels):
                if len(runs) >= FANOUT:
                    taken = runs[:FANOUT]
                    break
            else:
                return False
        if sum(len(r) for _h, r, _a in taken) > MAX_RUN_ROWS:
            merged = None
        else:
            merged = _merge_runs([(r, a) for _h, r, a in taken])
        with self.lock:
            runs = self.levels[level]
            assert all(a is b for a, b in zip(runs, taken))  # only this method removes runs
            del runs[:FANOUT]
            if merged is None:
                self.sealed.extend(taken)
            else:
                if level + 1 == len(self.levels):
                    self.levels.append([])
                self.levels[level + 1].append(merged)
        return True

    def _bitmap_for(self, key: bytes) -> BitMap:
        tag = key[:1]
        if tag == b"B":
            return self.terms[_U64BE.unpack(key[1:])[0]]
        ident = _U32BE.unpack(key[1:])[0]
        return {b"o": self.op_bm, b"k": self.kind_bm, b"t": self.status_bm, b"r": self.rec_bm,
                b"s": self.svc_bm}[tag][ident]

    def load(self, env, db) -> bool:
        """Read a checkpoint; False when there is none (or it is of another format: rebuild)."""
        with env.begin(buffers=True) as txn:  # values are views of the map: copied once below
            return self._load(txn, db)

    def _load(self, txn, db) -> bool:
        head = txn.get(b"H", db=db)
        if head is None:
            return False
        head = json.loads(bytes(head))
        if head.get("format") != FORMAT or head.get("max_value_len") != self.max_value_len:
            return False
        segs = {b"C": [], b"T": [], b"S": [], b"O": [], b"R": [], b"D": [], b"K": [], b"P": [],
                b"A": []}
        bitmaps = []
        # A segment is ``tag ‖ u32`` (its start, or its count after it); a large one is split
        # into parts ``tag ‖ u32 ‖ u16`` written in several transactions.  Only segments the
        # header counts belong to a committed checkpoint; anything past them is ignored.
        limit = {b"C": ("<", "spans"), b"T": ("<", "traces"), b"S": ("<", "services"),
                 b"O": ("<", "ops"), b"R": ("<", "records"), b"D": ("<=", "dictionary"),
                 b"K": ("<=", "keys"), b"P": ("<", "runs"), b"A": ("<", "runs")}
        for key, value in txn.cursor(db=db):
            key = bytes(key)
            tag = key[:1]
            if tag in segs:
                op, field = limit[tag]
                n = _U32BE.unpack(key[1:5])[0]
                if n < head[field] or (op == "<=" and n == head[field]):
                    if segs[tag] and segs[tag][-1][0] == key[:5]:
                        segs[tag][-1][1].append(value)  # the next part
                    else:
                        segs[tag].append((key[:5], [value]))
            elif tag in (b"B", b"o", b"k", b"t", b"r", b"s"):
                bitmaps.append((key, bytes(value)))
        self.compressed_checkpoints = bool(head.get("zstd"))  # later checkpoints stay alike
        if head.get("zstd"):  # values are zstd frames (hot checkpoints)
            zd = zstandard.ZstdDecompressor()
            unpack = lambda v: zd.decompress(v)  # noqa: E731
        else:
            unpack = lambda v: v  # noqa: E731
        segs = {tag: [(k, unpack(_joined(parts))) for k, parts in found] for tag, found in segs.items()}
        bitmaps = [(k, unpack(v)) for k, v in bitmaps]
        cols = np.frombuffer(b"".join(v for _, v in segs[b"C"]), SPAN_COLS)[:head["spans"]]
        tids = np.frombuffer(b"".join(v for _, v in segs[b"T"]), "V16")[:head["traces"]]
        for _, v in segs[b"S"]:
            for name in json.loads(v):
                self._service(name)
        for _, v in segs[b"O"]:
            for svc, name, kind, nh in json.loads(v):
                self.op_map[(svc, nh, kind)] = len(self.ops)
                self.ops.append((svc, name, kind))
                self.op_svc.extend([svc])
                self.op_bm.append(BitMap())
        for _, v in segs[b"R"]:
            for where, rid, svc, hashes in json.loads(v):
                o = self.rec_map[(where, rid)] = len(self.records)
                self.records.append((where, rid, svc))
                self.rec_hashes.append(hashes)
                for h in hashes:
                    self.rec_terms.setdefault(h, set()).add(o)
                self.rec_svc.extend([svc])
                self.rec_bm.append(BitMap())
        for _, v in segs[b"D"]:
            for h, where, key, text, vtype in json.loads(v):
                self.dictionary[h] = (where, key, text, vtype)
                self.keys.setdefault((where, key), []).append(h)
        for _, v in segs[b"K"]:
            for k, where, key in json.loads(v):
                self.key_names[k] = (where, key)
        for (_, rows), (_, arena) in zip(segs[b"P"], segs[b"A"]):
            rows = np.frombuffer(rows, RARE)  # one sorted run per checkpoint
            self.sealed.append((np.ascontiguousarray(rows["hash"]), rows, arena))
        self._saved_runs = head["runs"]
        written = head["checkpoints"]
        for key, value in bitmaps:  # deltas: tag, identity, checkpoint number
            if _U32BE.unpack(key[-4:])[0] >= written:
                continue  # from a checkpoint whose header never committed
            bm = BitMap.deserialize(value)
            tag = key[:1]
            if tag == b"B":
                h = _U64BE.unpack(key[1:9])[0]
                have = self.terms.get(h)
                self.terms[h] = bm if have is None else have | bm
            else:
                ident = _U32BE.unpack(key[1:5])[0]
                target = {b"o": self.op_bm, b"k": self.kind_bm, b"t": self.status_bm,
                          b"r": self.rec_bm, b"s": self.svc_bm}[tag]
                if ident < len(target):
                    target[ident] |= bm
        self._checkpoints = written
        self.bm_hashes = np.array(sorted(self.terms), np.uint64)
        # span columns and the trace table they imply
        for i, tid in enumerate(tids.tolist()):
            self.tmap[tid] = i
        k = len(tids)
        self.t_id.extend(tids)
        self.t_start.extend(np.full(k, np.iinfo(np.uint64).max, np.uint64))
        self.t_end.extend(np.zeros(k, np.uint64))
        self.t_spans.extend(np.zeros(k, np.uint32))
        self.t_errors.extend(np.zeros(k, np.uint32))
        self.t_root.extend(np.full(k, -1, np.int64))
        self.cols.extend(cols)
        self._extend_max_start(cols["start"])
        if len(cols):
            tr = cols["trace"]
            timed = cols["start"] > 0  # a span without a start time does not move the trace's start
            np.minimum.at(self.t_start.a, tr[timed], cols["start"][timed])
            np.maximum.at(self.t_end.a, tr, cols["end"])
            self.t_spans.a[:k] = np.bincount(tr, minlength=k)[:k]
            self.t_errors.a[:k] = np.bincount(tr[cols["status"] == 2], minlength=k)[:k]
            root = cols["pid"] == 0
            self.t_root.a[tr[root]] = cols["op"][root]
        self._saved = {key: head[key] for key in self._saved}
        self.watermark = self.indexed_seq = head["watermark"]
        return True

    # ------------------------------------------------------------------ searching

    def _term_spans(self, h: int, where: int) -> BitMap:
        if where in (W_RESOURCE, W_SCOPE):
            recs = self.rec_terms.get(h)
            if not recs:
                return _EMPTY
            return BitMap.union(*(self.rec_bm[r] for r in recs)) if len(recs) > 1 else self.rec_bm[next(iter(recs))]
        bm = self.terms.get(h, _EMPTY)
        found = []
        key = np.uint64(h)  # a Python int would make numpy compare as float64 over a copy
        for hashes, rows, _arena in self.runs:
            lo = np.searchsorted(hashes, key, "left")
            hi = np.searchsorted(hashes, key, "right")
            if hi > lo:
                found.append(rows["ord"][lo:hi])
        if not found:
            return bm
        return bm | BitMap(_aa(np.concatenate(found)))

    def rare_values(self, where: int, key: str):
        """``(rows, arena, row indices)`` of each postings run holding values of the key."""
        kh = np.uint64(key_hash(where, key.encode()))
        for _hashes, rows, arena in self.runs:
            sel = np.flatnonzero(rows["key"] == kh)
            if len(sel):
                yield rows, arena, sel

    def attr_spans(self, cond: C.Cond) -> BitMap:
        """Spans with the attribute condition true somewhere in its scope."""
        attr = cond.field
        wheres = SCOPE_WHERE[attr.scope]
        if cond.op == "=":
            text = _text_of(cond.value).encode()
            key = attr.key.encode()
            parts = [self._term_spans(term_hash(w, key, text), w) for w in wheres]
        else:
            match = _matcher(cond)
            numeric = cond.op in ("<", "<=", ">", ">=") and not isinstance(cond.value, str)
            parts = []
            for w in wheres:
                for h in self.keys.get((w, attr.key), ()):
                    _w, _k, text, vtype = self.dictionary[h]
                    if numeric and vtype not in (VT_INT, VT_DOUBLE):
                        continue
                    if match(text):
                        parts.append(self._term_spans(h, w))
                if w in (W_RESOURCE, W_SCOPE):
                    continue
                for rows, arena, sel in self.rare_values(w, attr.key):
                    if cond.op == "exists":
                        hit = sel
                    elif numeric:
                        vt, num = rows["vtype"][sel], rows["num"][sel]
                        val = np.where(vt == VT_INT, num.astype(np.float64), num.view(np.float64))
                        ok = (vt == VT_INT) | (vt == VT_DOUBLE)
                        ok &= {"<": np.less, "<=": np.less_equal, ">": np.greater,
                               ">=": np.greater_equal}[cond.op](val, float(cond.value))
                        hit = sel[ok]
                    else:
                        # rows are sorted by term hash: test each distinct value once
                        h = rows["hash"][sel]
                        first = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1])))
                        ok = np.fromiter((bool(match(_rare_text(rows, arena, i)))
                                          for i in sel[first].tolist()), bool, len(first))
                        group = np.cumsum(np.concatenate(([True], h[1:] != h[:-1]))) - 1
                        hit = sel[ok[group]]
                    if len(hit):
                        parts.append(BitMap(_aa(rows["ord"][hit])))
        parts = [p for p in parts if p]
        if not parts:
            return BitMap()
        return parts[0].copy() if len(parts) == 1 else BitMap.union(*parts)

    def _names_spans(self, cond: C.Cond, names: list[str], bitmaps: list[BitMap]) -> BitMap:
        if cond.op == "=":
            try:
                return bitmaps[names.index(_text_of(cond.value))].copy()
            except ValueError:
                return BitMap()
        match = _matcher(cond)
        parts = [bitmaps[i] for i, n in enumerate(names) if match(n)]
        return BitMap.union(*parts) if parts else BitMap()

    def _index_spans(self, cond: C.Cond) -> BitMap:
        f = cond.field
        if isinstance(f, C.Attr):
            return self.attr_spans(cond)
        if f == C.SERVICE:
            if cond.op == "=":
                o = self.svc_map.get(_text_of(cond.value))
                return self.svc_bm[o].copy() if o is not None else BitMap()
            return self._names_spans(cond, self.services, self.svc_bm)
        if f == C.NAME:
            match = _matcher(cond)
            parts = [self.op_bm[o] for o, (_s, name, _k) in enumerate(self.ops) if match(name)]
            return BitMap.union(*parts) if parts else BitMap()
        if f == C.STATUS:
            return self._names_spans(cond, list(STATUS_NAMES), self.status_bm)
        if f == C.KIND:
            return self._names_spans(cond, list(KIND_NAMES), self.kind_bm)
        raise C.CriteriaError(f"field {f!r} is not indexed")

    def _column_mask(self, cond: C.Cond, cand: np.ndarray) -> np.ndarray:
        cols = self.cols.a
        start = cols["start"][cand]
        if cond.field == C.DURATION:
            return self._compare_column(cond, cols["end"][cand].astype(np.int64) - start.astype(np.int64))
        return self._compare_column(cond, start)

    @staticmethod
    def _compare_column(cond: C.Cond, x: np.ndarray) -> np.ndarray:
        if cond.op == "exists":
            return np.ones(len(x), bool)
        v = int(cond.value)
        if x.dtype == np.uint64 and v < 0:
            x = x.astype(np.int64)
        return {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                ">": np.greater, ">=": np.greater_equal}[cond.op](x, v)

    def eval(self, node, within: BitMap | None) -> BitMap:
        """Spans (ordinals) satisfying ``node``, restricted to ``within`` when given."""
        if isinstance(node, C.Cond):
            if node.field in (C.DURATION, C.START):
                cand = _np(within) if within is not None else np.arange(self.cols.n, dtype=np.uint32)
                return BitMap(_aa(cand[self._column_mask(node, cand)]))
            bm = self._index_spans(node)
            return bm & within if within is not None else bm
        if isinstance(node, C.And):
            # index conditions first (cheap, shrink the set), column conditions on what is left
            parts = sorted(node.parts, key=lambda p: isinstance(p, C.Cond) and p.field in (C.DURATION, C.START))
            cur = within
            for p in parts:
                cur = self.eval(p, cur)
                if not cur:
                    return BitMap()
            return cur if cur is not None else BitMap(range(self.cols.n))
        if isinstance(node, C.Or):
            out = BitMap()
            for p in node.parts:
                out |= self.eval(p, within)
            return out
        raise C.CriteriaError(f"cannot evaluate {node!r}")

    def _filter_columns(self, columns: list, cand: np.ndarray) -> np.ndarray:
        """The candidates passing every column condition, in one pass over the columns."""
        if not columns or not len(cand):
            return cand
        cols = self.cols.a
        start = cols["start"][cand]
        dur = None
        keep = np.ones(len(cand), bool)
        for c in columns:
            if c.field == C.DURATION and dur is None:
                dur = cols["end"][cand].astype(np.int64) - start.astype(np.int64)
            keep &= self._compare_column(c, dur if c.field == C.DURATION else start)
        return cand[keep]

    def top_traces(self, query: C.TraceQuery, keep: int):
        """``(trace ordinals, their first starts, matched spans)``: the ``keep`` newest traces.

        Matching spans are taken newest ordinal first in growing chunks; the walk stops once
        ``keep`` traces are known whose first start is no older than any span not yet seen
        could give (the running maximum of span starts bounds it)."""
        indexed, columns = _split(query)
        with self.lock:
            cand = _np(self.eval(C.all_of(*indexed), None)) if indexed else None
            total = len(cand) if cand is not None else self.cols.n
            traces, spans = [], []
            hi, step = total, 4096
            best = np.zeros(0, np.uint32)
            while hi > 0:
                lo = max(0, hi - step)
                chunk = cand[lo:hi] if cand is not None else np.arange(lo, hi, dtype=np.uint32)
                chunk = self._filter_columns(columns, chunk)
                if len(chunk):
                    spans.append(chunk)
                    traces.append(self._trace_filter(query, np.unique(self.cols.a["trace"][chunk])))
                    best = np.unique(np.concatenate(traces))
                    traces = [best]
                hi, step = lo, step * 2
                if hi == 0 or len(best) < keep:
                    continue
                below = int(cand[hi - 1]) if cand is not None else hi - 1
                st = self._sortable_start(best)
                if np.partition(st, len(st) - keep)[len(st) - keep] >= self.max_start.a[below]:
                    break
            if not len(best):
                return best, np.zeros(0, np.uint64), np.zeros(0, np.uint32)
            st = self._sortable_start(best)
            if len(best) > keep:
                top = np.argpartition(st, len(best) - keep)[len(best) - keep:]
                best, st = best[top], st[top]
            return best, st, np.concatenate(spans)

    def _sortable_start(self, t: np.ndarray) -> np.ndarray:
        st = self.t_start.a[t]
        return np.where(st == np.iinfo(np.uint64).max, 0, st)  # only untimed spans: oldest

    def _trace_filter(self, query: C.TraceQuery, t: np.ndarray) -> np.ndarray:
        """The traces (ordinals) passing the trace conditions, as this partition sees them."""
        if query.trace_min_duration_ns is not None or query.trace_max_duration_ns is not None:
            st = self.t_start.a[t]
            st = np.where(st == np.iinfo(np.uint64).max, self.t_end.a[t], st)  # untimed spans only
            d = self.t_end.a[t].astype(np.int64) - st.astype(np.int64)
            keep = np.ones(len(t), bool)
            if query.trace_min_duration_ns is not None:
                keep &= d >= query.trace_min_duration_ns
            if query.trace_max_duration_ns is not None:
                keep &= d <= query.trace_max_duration_ns
            t = t[keep]
        if query.root_service is not None or query.root_name is not None:
            roots = self.t_root.a[t]
            ok_ops = np.zeros(len(self.ops) + 1, bool)
            for o, (svc, name, _k) in enumerate(self.ops):
                ok_ops[o] = ((query.root_service is None or self.services[svc] == query.root_service)
                             and (query.root_name is None or name == query.root_name))
            t = t[(roots >= 0) & ok_ops[np.where(roots >= 0, roots, len(self.ops))]]
        return t

    def op_name(self, o: int) -> tuple[str, str]:
        svc, name, _k = self.ops[o]
        return self.services[svc], name
