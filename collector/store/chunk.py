"""Store stage: the chunk encoding (format v1) — the spans of one trace from one write batch.

A chunk value is one byte ``0x10 | compressed`` (high nibble: format version 1; bit 0: zstd
frame follows) and then a sequence of entries, each a 40-byte little-endian header
``resource_id u64, scope_id u64, start_ns u64, end_ns u64, flags u32, span_len u32`` followed by
``span_len`` bytes of the OTLP Span message.  See docs/storage.md.
"""
from __future__ import annotations

import struct

import numpy as np
import zstandard

from collector.errors import StoreError
from collector.store.contract import FLAG_ERROR, FLAG_ROOT, KIND_SHIFT, StoredSpan

VERSION = 0x10
COMPRESSED = 0x01
MIN_COMPRESS = 128  # smaller chunks are stored as they are: zstd cannot win on them

HEADER = struct.Struct("<QQQQII")
HEADER_DTYPE = np.dtype([("resource_id", "<u8"), ("scope_id", "<u8"), ("start_ns", "<u8"),
                         ("end_ns", "<u8"), ("flags", "<u4"), ("span_len", "<u4")])
assert HEADER_DTYPE.itemsize == HEADER.size == 40


def headers(spans: np.ndarray, resource_ids: np.ndarray, scope_ids: np.ndarray) -> bytes:
    """Entry headers of every span of a batch, in batch order, as one bytes object."""
    hdr = np.empty(len(spans), HEADER_DTYPE)
    hdr["resource_id"] = resource_ids[spans["resource"]]
    hdr["scope_id"] = scope_ids[spans["scope"]]
    hdr["start_ns"] = spans["start_ns"]
    hdr["end_ns"] = spans["end_ns"]
    flags = spans["kind"].astype(np.uint32) << KIND_SHIFT
    flags |= np.where(spans["status_code"] == 2, FLAG_ERROR, 0).astype(np.uint32)
    flags |= np.where(spans["parent_id_len"] == 0, FLAG_ROOT, 0).astype(np.uint32)
    hdr["flags"] = flags
    hdr["span_len"] = spans["span_len"]
    return hdr.tobytes()


class ChunkCodec:
    """Compresses and decompresses chunk values; one per thread (zstd contexts are not shared)."""

    def __init__(self, level: int):
        self.level = level
        self._c = zstandard.ZstdCompressor(level=level) if level > 0 else None
        self._d = zstandard.ZstdDecompressor()

    def pack(self, entries: bytes) -> bytes:
        if self._c is not None and len(entries) >= MIN_COMPRESS:
            packed = self._c.compress(entries)
            if len(packed) < len(entries):
                return bytes((VERSION | COMPRESSED,)) + packed
        return bytes((VERSION,)) + entries

    def body(self, value: bytes) -> bytes:
        """The entries of a chunk value, decompressed."""
        if not value or value[0] & 0xF0 != VERSION:
            raise StoreError(f"chunk: unknown format byte {value[:1].hex() or 'empty'}")
        if value[0] & COMPRESSED:
            try:
                return self._d.decompress(value[1:])
            except zstandard.ZstdError as exc:
                raise StoreError(f"chunk: corrupt zstd frame: {exc}") from None
        return value[1:]

    def bodies(self, values) -> bytes:
        """The entries of several chunk values, decompressed and joined (entries are
        self-delimiting, so the result is one entry stream: ``collector/store/frames.py``)."""
        return b"".join([self.body(v) for v in values])

    def unpack(self, value: bytes) -> list[StoredSpan]:
        body = self.body(value)
        out = []
        pos, end = 0, len(body)
        while pos < end:
            if end - pos < HEADER.size:
                raise StoreError("chunk: truncated entry header")
            rid, sid, start, stop, flags, n = HEADER.unpack_from(body, pos)
            pos += HEADER.size
            if end - pos < n:
                raise StoreError("chunk: truncated span")
            out.append(StoredSpan(rid, sid, start, stop, flags, bytes(body[pos:pos + n])))
            pos += n
        return out


def assemble(body, resource, scope):
    """Chunk entries (decompressed, joined: ``ChunkCodec.bodies``) as one decoded OTLP request,
    spans grouped by resource and scope, with the resource and scope IDs of its ResourceSpans
    and ScopeSpans (as ``PartitionIndex.add`` takes them): ``(SpanBatch, rids, sids)``.

    ``resource(id)`` and ``scope(id)`` give the stored record bytes of an ID (the tier's tables).
    """
    from collector.codec import decode_export_request, twin  # the codec package imports this one
    from collector.model import empty_batch
    from collector.store.contract import length_prefix

    frames = twin("frames")
    rid, sid, off, ln = frames.walk(body)
    if not len(rid):
        return empty_batch(), np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    order = np.lexsort((sid, rid))  # stable: spans keep their stored order within a group
    r_sorted, s_sorted = rid[order], sid[order]
    cuts = np.flatnonzero((r_sorted[1:] != r_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])) + 1
    bounds = [0, *cuts.tolist(), len(order)]
    out, rids, sids = [], [], []
    rs: list[bytes] = []

    def close_resource():
        if rs:
            payload = b"".join(rs)
            out.append(length_prefix(1, len(payload)))
            out.append(payload)

    for a, b in zip(bounds[:-1], bounds[1:]):
        r, s = int(r_sorted[a]), int(s_sorted[a])
        if not rids or r != rids[-1]:
            close_resource()
            rs = [resource(r)]
            rids.append(r)
        payload = scope(s) + frames.frame(body, off, ln, order[a:b])
        rs.append(length_prefix(2, len(payload)))
        rs.append(payload)
        sids.append(s)
    close_resource()
    batch = decode_export_request(b"".join(out))
    return batch, np.array(rids, np.uint64), np.array(sids, np.uint64)
