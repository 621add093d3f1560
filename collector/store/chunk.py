"""Store stage: the chunk encoding (format v1) — the spans of one trace from one write batch.

A chunk value is one byte ``0x10 | flags`` (high nibble: format version 1; bit 0: a zstd frame
follows; bit 1: that frame was compressed with the partition's dictionary, named by the frame's
dictionary ID) and then a sequence of entries, each a 40-byte little-endian header
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


DICTIONARY = 0x02  # bit 1: the zstd frame needs a partition's dictionary (its ID is in the frame)
CONTINUES = 0x04  # bit 2: this value continues the chunk stored under the previous sequence
MORE = 0x08  # bit 3: the chunk goes on under the next sequence
PIECE_BYTES = 1900  # a chunk longer than this is stored as pieces, each sharing LMDB leaf pages
# (a value over about 2 KB would take whole 4 KiB overflow pages of its own)


def pieces(value: bytes) -> list[bytes]:
    """A chunk value as the values stored under consecutive sequences: itself when short;
    otherwise its format byte with ``MORE`` and the first bytes, then pieces that start with
    ``0x10 | CONTINUES`` (``| MORE`` but for the last)."""
    if len(value) <= PIECE_BYTES + 1:
        return [value]
    body = memoryview(value)[1:]
    n = (len(body) + PIECE_BYTES - 1) // PIECE_BYTES
    out = []
    for i in range(n):
        part = body[i * PIECE_BYTES:(i + 1) * PIECE_BYTES]
        flag = value[0] if i == 0 else VERSION | CONTINUES
        if i < n - 1:
            flag |= MORE
        out.append(bytes((flag,)) + part)
    return out


def gather(get, seq: int) -> bytes | None:
    """The whole chunk stored from sequence ``seq`` on; ``get(seq)`` reads one stored value."""
    value = get(seq)
    if value is None or not value[0] & MORE:
        return value
    parts = [bytes((value[0] & ~MORE,)), value[1:]]
    while value[0] & MORE:
        seq += 1
        value = get(seq)
        if value is None or not value[0] & CONTINUES:
            raise StoreError(f"chunk: piece {seq} is missing")
        parts.append(value[1:])
    return b"".join(parts)


def whole(items):
    """``(first sequence, chunk value)`` of every chunk in ``(sequence, stored value)`` items
    taken in sequence order (pieces joined)."""
    first, parts = None, []
    for seq, value in items:
        if value[0] & CONTINUES:
            if not parts:
                raise StoreError(f"chunk: piece {seq} has no start")
            parts.append(value[1:])
        else:
            if parts:
                raise StoreError(f"chunk: piece after {first} is missing")
            first, parts = seq, [bytes((value[0] & ~MORE,)), value[1:]]
        if not value[0] & MORE:
            yield first, b"".join(parts)
            parts = []
    if parts:
        raise StoreError(f"chunk: the pieces of chunk {first} end early")
_DICTIONARIES: dict[int, zstandard.ZstdCompressionDict] = {}  # dictionary ID → dictionary


def register_dictionary(raw: bytes) -> zstandard.ZstdCompressionDict:
    """Make a partition's dictionary known to every ``ChunkCodec`` (chunks name it by ID)."""
    d = zstandard.ZstdCompressionDict(raw)
    _DICTIONARIES[d.dict_id()] = d
    return d


def forget_dictionary(dict_id: int) -> None:
    _DICTIONARIES.pop(dict_id, None)


def train_dictionary(samples: list[bytes], size: int, dict_id: int = 0) -> bytes:
    """A zstd dictionary of ``size`` bytes learnt from span samples (empty when there is too
    little to learn from).  ``dict_id`` 0 lets zstd pick the ID."""
    if size <= 0 or len(samples) < 64:
        return b""
    try:
        return zstandard.train_dictionary(size, samples, k=200, d=8, steps=4, dict_id=dict_id).as_bytes()
    except zstandard.ZstdError:
        return b""


class ChunkCodec:
    """Compresses and decompresses chunk values; one per thread (zstd contexts are not shared).
    With ``dictionary`` (a registered one), ``pack`` compresses with it."""

    def __init__(self, level: int, dictionary: zstandard.ZstdCompressionDict | None = None):
        self.level = level
        if level > 0:
            self._c = zstandard.ZstdCompressor(level=level, dict_data=dictionary) if dictionary \
                else zstandard.ZstdCompressor(level=level)
        else:
            self._c = None
        self._flag = VERSION | COMPRESSED | (DICTIONARY if dictionary else 0)
        self._d = zstandard.ZstdDecompressor()
        self._with: dict[int, zstandard.ZstdDecompressor] = {}

    def pack(self, entries: bytes) -> bytes:
        if self._c is not None and len(entries) >= MIN_COMPRESS:
            packed = self._c.compress(entries)
            if len(packed) < len(entries):
                return bytes((self._flag,)) + packed
        return bytes((VERSION,)) + entries

    def _decompressor(self, frame) -> zstandard.ZstdDecompressor:
        did = zstandard.get_frame_parameters(frame).dict_id
        d = self._with.get(did)
        if d is None:
            zdict = _DICTIONARIES.get(did)
            if zdict is None:
                raise StoreError(f"chunk: compressed with dictionary {did}, which no open partition holds")
            d = self._with[did] = zstandard.ZstdDecompressor(dict_data=zdict)
        return d

    def body(self, value: bytes) -> bytes:
        """The entries of a chunk value, decompressed."""
        if not value or value[0] & 0xF0 != VERSION:
            raise StoreError(f"chunk: unknown format byte {value[:1].hex() or 'empty'}")
        if value[0] & COMPRESSED:
            try:
                if value[0] & DICTIONARY:
                    return self._decompressor(value[1:]).decompress(value[1:])
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
