"""The canonical span batch: what every decoder yields and the pipeline and store consume.

A batch is columnar so that no Python object is made per span on the hot path:

* ``buf`` holds the OTLP ``ExportTraceServiceRequest`` protobuf bytes; every span, name and
  attribute is an (offset, length) slice of it, so OTLP input is stored without re-encoding.
* ``spans`` is a numpy structured array with one row per span (``SPAN_DTYPE``).
* ``attrs`` is a numpy structured array with one row per span, event or link attribute
  (``ATTR_DTYPE``), for the indexes.
* ``resources`` / ``scopes`` hold, per ResourceSpans / ScopeSpans, the record bytes (every field of
  the message except its repeated children), so they can be stored once and re-assembled.
"""
from __future__ import annotations

import numpy as np

# Span kinds and status codes, as OTLP numbers them.
KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

# AnyValue types, numbered as the AnyValue oneof fields.
VT_STRING, VT_BOOL, VT_INT, VT_DOUBLE, VT_ARRAY, VT_KVLIST, VT_BYTES = 1, 2, 3, 4, 5, 6, 7
# Where an attribute was found on its span.
AT_SPAN, AT_EVENT, AT_LINK = 0, 1, 2

# One row per span. Field order and widths mirror the packed C struct in _ext/_otlp.pyx.
SPAN_DTYPE = np.dtype(
    [
        ("trace_id", "V16"),  # left-aligned, zero padded; trace_id_len says how many bytes came
        ("span_id", "V8"),
        ("parent_span_id", "V8"),
        ("trace_id_len", "u1"),  # length seen on the wire (validation refuses != 16)
        ("span_id_len", "u1"),
        ("parent_id_len", "u1"),  # 0 for a root span
        ("kind", "u1"),
        ("status_code", "u1"),
        ("start_ns", "<u8"),
        ("end_ns", "<u8"),
        ("span_off", "<u4"),  # the Span message bytes: buf[span_off:span_off+span_len]
        ("span_len", "<u4"),
        ("name_off", "<u4"),
        ("name_len", "<u4"),
        ("resource", "<u4"),  # index into batch.resources
        ("scope", "<u4"),  # index into batch.scopes
        ("attr_start", "<u4"),  # rows attrs[attr_start:attr_start+attr_count] belong to this span
        ("attr_count", "<u4"),
        ("state_off", "<u4"),  # the span's W3C tracestate: buf[state_off:state_off+state_len]
        ("state_len", "<u4"),
    ]
)

ATTR_DTYPE = np.dtype(
    [
        ("span", "<u4"),  # row in batch.spans
        ("where", "u1"),  # AT_SPAN, AT_EVENT or AT_LINK
        ("vtype", "u1"),  # VT_*; 0 when the value was empty
        ("key_off", "<u4"),
        ("key_len", "<u4"),
        ("val_off", "<u4"),  # string/bytes payload, or the raw AnyValue for arrays and kvlists
        ("val_len", "<u4"),
        ("num", "<i8"),  # int value, bool as 0/1, or the IEEE-754 bits of a double
    ]
)


class SpanBatch:
    """Decoded spans of one request, as columns over the request's bytes."""

    __slots__ = ("buf", "spans", "attrs", "resources", "scopes")

    def __init__(self, buf: bytes, spans: np.ndarray, attrs: np.ndarray,
                 resources: list, scopes: list):
        self.buf = buf
        self.spans = spans
        self.attrs = attrs
        # resources[i] = (record bytes, service name); scopes[j] = (record bytes, resource index)
        self.resources = resources
        self.scopes = scopes

    def __len__(self) -> int:
        return len(self.spans)

    def span_bytes(self, i: int) -> bytes:
        row = self.spans[i]
        off = int(row["span_off"])
        return self.buf[off:off + int(row["span_len"])]

    def name(self, i: int) -> str:
        row = self.spans[i]
        off = int(row["name_off"])
        return self.buf[off:off + int(row["name_len"])].decode("utf-8", "replace")

    def select(self, mask: np.ndarray) -> "SpanBatch":
        """The same batch restricted to the spans where ``mask`` is true (attrs re-pointed)."""
        keep = np.flatnonzero(mask)
        spans = self.spans[keep].copy()
        if len(self.attrs):
            attr_mask = np.zeros(len(self.spans), dtype=bool)
            attr_mask[keep] = True
            attrs = self.attrs[attr_mask[self.attrs["span"]]].copy()
            remap = np.full(len(self.spans), 0, dtype=np.uint32)
            remap[keep] = np.arange(len(keep), dtype=np.uint32)
            attrs["span"] = remap[attrs["span"]]
            counts = np.bincount(attrs["span"], minlength=len(keep)).astype(np.uint32)
            starts = np.zeros(len(keep), dtype=np.uint32)
            if len(keep):
                starts[1:] = np.cumsum(counts)[:-1]
            spans["attr_start"] = starts
            spans["attr_count"] = counts
        else:
            attrs = self.attrs
        return SpanBatch(self.buf, spans, attrs, self.resources, self.scopes)


def take_rows(rows: np.ndarray, index) -> np.ndarray:
    """``rows[index]`` for a 1-D structured array, copying whole rows as bytes (numpy copies
    structured rows field by field, several times slower)."""
    rows = np.ascontiguousarray(rows)
    raw = rows.view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
    return np.ascontiguousarray(raw[index]).reshape(-1).view(rows.dtype)


def concat_rows(arrays: list, dtype: np.dtype) -> np.ndarray:
    """``np.concatenate`` of 1-D structured arrays of ``dtype``, as one copy of their bytes."""
    if not arrays:
        return np.zeros(0, dtype)
    return np.concatenate([np.ascontiguousarray(a).view(np.uint8) for a in arrays]).view(dtype)


def concat_batches(batches: list) -> SpanBatch:
    """One batch holding every span of ``batches`` in order (buffers joined, offsets moved)."""
    if len(batches) == 1:
        return batches[0]
    bases = np.cumsum([0] + [len(b.buf) for b in batches[:-1]], dtype=np.int64)
    span_bases = np.cumsum([0] + [len(b.spans) for b in batches[:-1]], dtype=np.int64)
    attr_bases = np.cumsum([0] + [len(b.attrs) for b in batches[:-1]], dtype=np.int64)
    res_bases = np.cumsum([0] + [len(b.resources) for b in batches[:-1]], dtype=np.int64)
    scope_bases = np.cumsum([0] + [len(b.scopes) for b in batches[:-1]], dtype=np.int64)
    spans = concat_rows([b.spans for b in batches], SPAN_DTYPE)
    attrs = concat_rows([b.attrs for b in batches], ATTR_DTYPE)
    ns = [len(b.spans) for b in batches]
    na = [len(b.attrs) for b in batches]
    span_buf = np.repeat(bases, ns).astype(np.uint32)
    spans["span_off"] += span_buf
    spans["name_off"] += span_buf
    spans["resource"] += np.repeat(res_bases, ns).astype(np.uint32)
    spans["scope"] += np.repeat(scope_bases, ns).astype(np.uint32)
    spans["attr_start"] += np.repeat(attr_bases, ns).astype(np.uint32)
    spans["state_off"] += span_buf
    attr_buf = np.repeat(bases, na).astype(np.uint32)
    attrs["span"] += np.repeat(span_bases, na).astype(np.uint32)
    attrs["key_off"] += attr_buf
    attrs["val_off"] += attr_buf
    resources = [r for b in batches for r in b.resources]
    scopes = [(rec, int(ri) + int(res_bases[i])) for i, b in enumerate(batches) for rec, ri in b.scopes]
    return SpanBatch(b"".join(b.buf for b in batches), spans, attrs, resources, scopes)


def empty_batch(buf: bytes = b"") -> SpanBatch:
    return SpanBatch(buf, np.zeros(0, SPAN_DTYPE), np.zeros(0, ATTR_DTYPE), [], [])
