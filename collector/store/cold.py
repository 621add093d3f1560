"""Tier stage: cold files (format v1) — one immutable, compressed file per moved partition.

The byte layout is specified in docs/cold-format.md; this module writes it (``ColdWriter``) and
reads it (``ColdPartition``) through mmap.  In short::

    header   "CLEWCOLD" u16 version u16 flags u32 0
    sections dict, blocks, block index, traces, filter, records, index, meta
    footer   per section: offset, stored length, raw length, xxh64, codec;
             xxh64 of that table, version, section count, "CLEWCEND"

Spans are sorted by trace ID into blocks of about ``store.cold_block_bytes``, each one zstd
frame (with a dictionary trained on this partition's spans, stored in the file); a trace never
crosses a block.  The trace table (sorted trace IDs → block, first entry, entry count) and a
Bloom filter over trace IDs find a trace with one block read.  The index section is the
partition's search index (``PartitionIndex.export``: columns, trace table, names, dictionary,
postings and portable Roaring bitmaps).  Every section and every block carries an xxh64; a
mismatch or a truncated file raises ``ColdCorrupt`` and the store skips the file.
"""
from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import xxhash
import zstandard

from collector.errors import StoreError
from collector.store.chunk import HEADER, HEADER_DTYPE, assemble
from collector.store.contract import StoredSpan
from collector.store.index import PartitionIndex

log = logging.getLogger("clew.store.cold")

MAGIC = b"CLEWCOLD"
END_MAGIC = b"CLEWCEND"
VERSION = 1
SUFFIX = ".clew"
SECTIONS = ("meta", "dict", "blocks", "block_index", "traces", "filter", "records", "index")
RAW, ZSTD = 0, 1  # section codecs
_HEAD = struct.Struct("<8sHHI")  # magic, version, flags, reserved
_SECTION = struct.Struct("<QQQQI4x")  # offset, stored length, raw length, xxh64 of stored bytes, codec
_TAIL = struct.Struct("<QHH4x8s")  # xxh64 of the section table, version, section count, magic
BLOCK_DTYPE = np.dtype([("offset", "<u8"), ("stored", "<u4"), ("raw", "<u4"), ("entries", "<u4"),
                        ("pad", "<u4"), ("xxh64", "<u8")])
TRACE_DTYPE = np.dtype([("hi", ">u8"), ("lo", ">u8"), ("block", "<u4"), ("first", "<u4"),
                        ("count", "<u4"), ("pad", "<u4")])
_U32 = struct.Struct("<I")
_RECORD = struct.Struct("<BQI")  # kind (1 resource, 2 scope), record ID, length
_KEYLEN = struct.Struct("<H")
BLOOM_BITS_PER_TRACE = 10
BLOOM_HASHES = 7
_BLOOM = struct.Struct("<IIQ")  # hashes k, reserved, bits m
DICT_SAMPLE_BYTES = 8 << 20  # span bytes sampled to train the dictionary
STREAM_BYTES = 1 << 20  # a larger section is compressed and written this much at a time
assert BLOCK_DTYPE.itemsize == 32 and TRACE_DTYPE.itemsize == 32


class ColdCorrupt(StoreError):
    """A cold file failed a checksum or is truncated; the store skips it."""


# ---------------------------------------------------------------------------- shared pieces

def bloom_positions(trace_ids: np.ndarray, m: int, k: int = BLOOM_HASHES) -> np.ndarray:
    """Bit positions (len × k) of trace IDs (``V16``/16-byte rows): h = xxh3_128(id), h1 its low
    64 bits, h2 its high 64 bits; position i = (h1 + i·h2) mod 2^64 mod m."""
    h = [xxhash.xxh3_128_intdigest(t) for t in trace_ids]
    h1 = np.array([x & 0xFFFFFFFFFFFFFFFF for x in h], np.uint64)
    h2 = np.array([x >> 64 for x in h], np.uint64)
    i = np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m)


def block_columns(raw) -> tuple[np.ndarray, np.ndarray, bytes | memoryview]:
    """A block's entries: (headers as ``HEADER_DTYPE``, span offsets into the span area, span
    area).  Layout: u32 n, then the columns resource_id u64[n], scope_id u64[n], start u64[n],
    end u64[n], flags u32[n], span_len u32[n], then the spans back to back."""
    n = _U32.unpack_from(raw, 0)[0]
    pos = 4
    hdr = np.empty(n, HEADER_DTYPE)
    for name, width in (("resource_id", 8), ("scope_id", 8), ("start_ns", 8), ("end_ns", 8),
                        ("flags", 4), ("span_len", 4)):
        if pos + n * width > len(raw):
            raise ColdCorrupt("block: truncated columns")
        hdr[name] = np.frombuffer(raw, HEADER_DTYPE[name], n, pos)
        pos += n * width
    lens = hdr["span_len"].astype(np.int64)
    offs = np.zeros(n, np.int64)
    if n:
        offs[1:] = np.cumsum(lens)[:-1]
        if pos + int(lens.sum()) != len(raw):
            raise ColdCorrupt("block: span area does not match the span lengths")
    return hdr, offs, memoryview(raw)[pos:]


def chunk_body(hdr: np.ndarray, offs: np.ndarray, spans, first: int, count: int) -> bytes:
    """Entries ``first .. first+count`` of a block in the chunk entry format (header + span)."""
    parts = []
    for i in range(first, first + count):
        o = int(offs[i])
        parts.append(hdr[i:i + 1].tobytes())
        parts.append(bytes(spans[o:o + int(hdr["span_len"][i])]))
    return b"".join(parts)


# ---------------------------------------------------------------------------- writing

class ColdWriter:
    """Writes one cold file.  Call ``add`` per trace in ascending trace-ID order, then ``finish``.

    Written to ``<path>.tmp``; ``finish`` fsyncs it, ``commit`` renames it into place and fsyncs
    the directory, so a crash leaves either no file under the final name or a whole one."""

    def __init__(self, path: Path, *, level: int, block_bytes: int, dictionary: bytes = b""):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.f = open(self.tmp, "wb")
        self.level = level
        self.block_bytes = block_bytes
        self.dictionary = dictionary
        zdict = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
        self._zc = zstandard.ZstdCompressor(level=level, dict_data=zdict) if zdict \
            else zstandard.ZstdCompressor(level=level)
        self._plain = zstandard.ZstdCompressor(level=level)
        self.f.write(_HEAD.pack(MAGIC, VERSION, 0, 0))
        self.sections: dict[str, tuple] = {}
        self._hdrs: list[np.ndarray] = []
        self._spans: list[bytes] = []
        self._block_raw = 0
        self._block_entries = 0
        self._blocks: list[tuple] = []
        self._traces: list[tuple] = []
        self.spans = 0
        self.last_tid = b""
        # the dictionary first; blocks stream out as they fill; the rest follows in ``finish``
        self._put("dict", dictionary, codec=RAW)
        self._blocks_start = self.f.tell()

    def _put(self, name: str, raw: bytes, codec: int = ZSTD) -> None:
        stored = self._plain.compress(raw) if codec == ZSTD and raw else raw
        if codec == ZSTD and not raw:
            codec = RAW
        offset = self.f.tell()
        self.f.write(stored)
        self.sections[name] = (offset, len(stored), len(raw), xxhash.xxh64_intdigest(stored), codec)

    def _put_stream(self, name: str, pieces, raw: int, pace=None) -> None:
        """``_put`` (zstd) of content given as pieces (buffers, or iterables of buffers) adding up
        to ``raw`` bytes: one frame recording its size, compressed and written ``STREAM_BYTES``
        at a time."""
        offset = self.f.tell()
        comp = self._plain.compressobj(size=raw)
        digest = xxhash.xxh64()
        stored = fed = 0
        todo, size = [], 0

        def emit(data) -> None:
            nonlocal stored
            if data:
                self.f.write(data)
                digest.update(data)
                stored += len(data)

        def feed(piece) -> None:
            nonlocal size, fed, todo
            todo.append(piece)
            size += len(piece)
            if size >= STREAM_BYTES:
                chunk = b"".join(todo)
                fed += len(chunk)
                todo, size = [], 0
                emit(comp.compress(chunk))
                if pace:
                    pace()

        for piece in pieces:
            if isinstance(piece, (bytes, bytearray, memoryview)):
                view = memoryview(piece)
                for at in range(0, len(view), STREAM_BYTES):
                    feed(view[at:at + STREAM_BYTES])
            else:
                for part in piece:
                    feed(part)
        chunk = b"".join(todo)
        fed += len(chunk)
        emit(comp.compress(chunk))
        emit(comp.flush())
        if fed != raw:
            raise ValueError(f"cold file: section {name} produced {fed} bytes, not {raw}")
        self.sections[name] = (offset, stored, raw, digest.intdigest(), ZSTD)

    def add(self, trace_id: bytes, hdr: np.ndarray, spans: list[bytes]) -> None:
        """One trace's entries: ``hdr`` (``HEADER_DTYPE``) and the span bytes, in the same order."""
        if trace_id <= self.last_tid:
            raise ValueError("cold file: traces must be added in ascending trace-ID order")
        self.last_tid = trace_id
        size = len(hdr) * HEADER.size + sum(len(s) for s in spans)
        if self._block_entries and self._block_raw + size > self.block_bytes:
            self._flush()
        self._traces.append((trace_id, len(self._blocks), self._block_entries, len(hdr)))
        self._hdrs.append(hdr)
        self._spans.extend(spans)
        self._block_raw += size
        self._block_entries += len(hdr)
        self.spans += len(hdr)

    def _flush(self) -> None:
        if not self._block_entries:
            return
        hdr = np.concatenate(self._hdrs)
        parts = [_U32.pack(len(hdr))]
        parts += [np.ascontiguousarray(hdr[name]).tobytes() for name in HEADER_DTYPE.names]
        parts += self._spans
        raw = b"".join(parts)
        stored = self._zc.compress(raw)
        self._blocks.append((self.f.tell(), len(stored), len(raw), len(hdr), 0, xxhash.xxh64_intdigest(stored)))
        self.f.write(stored)
        self._hdrs, self._spans, self._block_raw, self._block_entries = [], [], 0, 0

    def finish(self, records: list[tuple[int, int, bytes]], index_entries: list[tuple[bytes, bytes]],
               meta: dict, pace=None) -> int:
        """Write the remaining sections and the footer and fsync the temporary file; returns its
        size.  ``commit`` then puts it in place.  ``records``: (kind 1 resource / 2 scope, ID,
        record bytes).  Index values may be ``index.Parts`` (produced in slices); a large index
        section is compressed as it is produced, a slice at a time, calling ``pace()`` between
        slices (``PartitionIndex.export_parts``)."""
        self._flush()
        end = self.f.tell()
        self.sections["blocks"] = (self._blocks_start, end - self._blocks_start, end - self._blocks_start,
                                   0, RAW)  # each block carries its own checksum
        self._put("block_index", np.array(self._blocks, BLOCK_DTYPE).tobytes(), codec=RAW)
        table = np.zeros(len(self._traces), TRACE_DTYPE)
        if self._traces:
            ids = np.frombuffer(b"".join(t[0] for t in self._traces), ">u8").reshape(-1, 2)
            table["hi"], table["lo"] = ids[:, 0], ids[:, 1]
            table["block"] = [t[1] for t in self._traces]
            table["first"] = [t[2] for t in self._traces]
            table["count"] = [t[3] for t in self._traces]
        self._put("traces", table.tobytes(), codec=RAW)
        m = max(64, (len(self._traces) * BLOOM_BITS_PER_TRACE + 63) // 64 * 64)
        bits = np.zeros(m // 8, np.uint8)
        if self._traces:
            pos = bloom_positions([t[0] for t in self._traces], m).ravel()
            np.bitwise_or.at(bits, (pos >> np.uint64(3)).astype(np.int64),
                             (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)))
        self._put("filter", _BLOOM.pack(BLOOM_HASHES, 0, m) + bits.tobytes(), codec=RAW)
        out = []
        for kind, rid, record in records:
            out.append(_RECORD.pack(kind, rid, len(record)))
            out.append(record)
        self._put("records", b"".join(out))
        out = [_U32.pack(len(index_entries))]
        for key, value in index_entries:
            out += [_KEYLEN.pack(len(key)), key, _U32.pack(len(value)), value]
        raw = sum(len(p) for p in out)
        if raw <= STREAM_BYTES:
            self._put("index", b"".join(p if isinstance(p, (bytes, bytearray)) else bytes(p) for p in out))
        else:
            self._put_stream("index", out, raw, pace)
        meta = dict(meta, format=VERSION, spans=self.spans, traces=len(self._traces),
                    blocks=len(self._blocks), dictionary_bytes=len(self.dictionary))
        self._put("meta", json.dumps(meta, sort_keys=True).encode(), codec=RAW)
        footer = b"".join(_SECTION.pack(*self.sections[name]) for name in SECTIONS)
        self.f.write(footer)
        self.f.write(_TAIL.pack(xxhash.xxh64_intdigest(footer), VERSION, len(SECTIONS), END_MAGIC))
        self.f.flush()
        os.fsync(self.f.fileno())
        size = self.f.tell()
        self.f.close()
        return size

    def commit(self) -> None:
        """Rename the finished file into place (atomically replacing an older version) and make
        the rename durable."""
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def entries_of(body) -> tuple[np.ndarray, list]:
    """Chunk-format entries (``ChunkCodec.body``) as (headers ``HEADER_DTYPE``, span bytes)."""
    from collector.codec import twin  # the codec package imports the store's chunk module

    _rid, _sid, off, ln = twin("frames").walk(body)
    raw = np.frombuffer(body, np.uint8)
    at = (off - HEADER.size)[:, None] + np.arange(HEADER.size)
    hdr = raw[at].reshape(-1).view(HEADER_DTYPE) if len(off) else np.zeros(0, HEADER_DTYPE)
    return hdr, [bytes(body[o:o + n]) for o, n in zip(off.tolist(), ln.tolist())]


# ---------------------------------------------------------------------------- reading

class ColdPartition:
    """One cold file, read through mmap.  Quacks like a hot ``Partition`` for searches:
    ``start_s``, ``min_start``, ``max_end``, ``spans`` and ``index`` (loaded on first use
    through the store's ``IndexCache``).  Opening checks the footer and the small sections."""

    tier = "cold"

    def __init__(self, path: Path, cache: "IndexCache", index_factory):
        self.path = Path(path)
        self.start_s = int(self.path.name.split(".")[0])
        self._cache = cache
        self._factory = index_factory
        self._lock = threading.Lock()
        self._tls = threading.local()
        self.corrupt: str | None = None
        self._records: dict[tuple[int, int], bytes] | None = None
        self._hi: np.ndarray | None = None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            if self.size < _HEAD.size + _TAIL.size:
                raise ColdCorrupt(f"{self.path.name}: truncated ({self.size} bytes)")
            self.map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        magic, version, _flags, _r = _HEAD.unpack_from(self.map, 0)
        if magic != MAGIC:
            raise ColdCorrupt(f"{self.path.name}: not a cold file (magic {magic!r})")
        checksum, version2, count, end_magic = _TAIL.unpack_from(self.map, self.size - _TAIL.size)
        if end_magic != END_MAGIC:
            raise ColdCorrupt(f"{self.path.name}: truncated or damaged footer")
        if version != VERSION or version2 != VERSION:
            raise ColdCorrupt(f"{self.path.name}: format version {version}, this build reads {VERSION}")
        table_at = self.size - _TAIL.size - count * _SECTION.size
        if count != len(SECTIONS) or table_at < _HEAD.size:
            raise ColdCorrupt(f"{self.path.name}: footer lists {count} sections")
        footer = self.map[table_at:self.size - _TAIL.size]
        if xxhash.xxh64_intdigest(footer) != checksum:
            raise ColdCorrupt(f"{self.path.name}: footer checksum mismatch")
        self.sections = {name: _SECTION.unpack_from(footer, i * _SECTION.size)
                         for i, name in enumerate(SECTIONS)}
        for name, (off, stored, _raw, _x, _c) in self.sections.items():
            if off + stored > table_at:
                raise ColdCorrupt(f"{self.path.name}: section {name} lies past the footer")
        self.meta = json.loads(self.section("meta"))
        self.min_start = int(self.meta["min_start_ns"])
        self.max_end = int(self.meta["max_end_ns"])
        self.spans = int(self.meta["spans"])
        self.traces = int(self.meta["traces"])
        self.blocks = np.frombuffer(self.section("block_index"), BLOCK_DTYPE)
        self.table = np.frombuffer(self.section("traces"), TRACE_DTYPE)
        if len(self.table) != self.traces:
            raise ColdCorrupt(f"{self.path.name}: trace table holds {len(self.table)} of {self.traces}")
        bloom = self.section("filter")
        self._k, _r, self._m = _BLOOM.unpack_from(bloom, 0)
        self._bits = np.frombuffer(bloom, np.uint8, offset=_BLOOM.size)
        if self._m == 0 or len(self._bits) * 8 < self._m:
            raise ColdCorrupt(f"{self.path.name}: trace filter is damaged")
        d = self.section("dict")
        self._zdict = zstandard.ZstdCompressionDict(d) if d else None

    # -- sections and blocks

    def section(self, name: str) -> bytes:
        off, stored, raw, digest, codec = self.sections[name]
        data = self.map[off:off + stored]
        if name != "blocks" and xxhash.xxh64_intdigest(data) != digest:
            raise ColdCorrupt(f"{self.path.name}: section {name} checksum mismatch")
        if codec not in (RAW, ZSTD):
            raise ColdCorrupt(f"{self.path.name}: section {name} has unknown codec {codec}")
        if codec == ZSTD:
            try:
                data = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw)
            except zstandard.ZstdError as exc:
                raise ColdCorrupt(f"{self.path.name}: section {name}: {exc}") from None
        if len(data) != raw:
            raise ColdCorrupt(f"{self.path.name}: section {name} is {len(data)} bytes, not {raw}")
        return data

    def _decompressor(self):
        d = getattr(self._tls, "d", None)
        if d is None:
            d = self._tls.d = zstandard.ZstdDecompressor(dict_data=self._zdict) if self._zdict \
                else zstandard.ZstdDecompressor()
        return d

    def block(self, b: int):
        """Block ``b``'s columns (``block_columns``), checksum verified."""
        off, stored, raw, _n, _p, digest = self.blocks[b].tolist()
        data = self.map[off:off + stored]
        if xxhash.xxh64_intdigest(data) != digest:
            raise ColdCorrupt(f"{self.path.name}: block {b} checksum mismatch")
        try:
            data = self._decompressor().decompress(data, max_output_size=raw)
        except zstandard.ZstdError as exc:
            raise ColdCorrupt(f"{self.path.name}: block {b}: {exc}") from None
        if len(data) != raw:
            raise ColdCorrupt(f"{self.path.name}: block {b} is {len(data)} bytes, not {raw}")
        return block_columns(data)

    def verify(self) -> None:
        """Check every checksum in the file (raises ``ColdCorrupt``)."""
        for name in SECTIONS:
            if name != "blocks":
                self.section(name)
        for b in range(len(self.blocks)):
            self.block(b)

    # -- traces

    def might_hold(self, trace_id: bytes) -> bool:
        pos = bloom_positions([trace_id], self._m, self._k)[0]
        return bool(np.all(self._bits[(pos >> np.uint64(3)).astype(np.int64)]
                           & (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8))))

    def _find(self, trace_id: bytes) -> int | None:
        if self.corrupt or not self.might_hold(trace_id):
            return None
        if self._hi is None:
            self._hi = self.table["hi"].astype(np.uint64)
        hi, lo = struct.unpack(">QQ", trace_id)
        a = int(np.searchsorted(self._hi, np.uint64(hi), "left"))
        b = int(np.searchsorted(self._hi, np.uint64(hi), "right"))
        for i in range(a, b):
            if int(self.table["lo"][i]) == lo:
                return i
        return None

    def holds(self, trace_id: bytes) -> bool:
        return self._find(trace_id) is not None

    def read_trace(self, trace_id: bytes) -> list[StoredSpan]:
        i = self._find(trace_id)
        if i is None:
            return []
        row = self.table[i]
        hdr, offs, spans = self.block(int(row["block"]))
        first, count = int(row["first"]), int(row["count"])
        if first + count > len(hdr):
            raise ColdCorrupt(f"{self.path.name}: trace table points past block {int(row['block'])}")
        out = []
        for j in range(first, first + count):
            h = hdr[j]
            o = int(offs[j])
            out.append(StoredSpan(int(h["resource_id"]), int(h["scope_id"]), int(h["start_ns"]),
                                  int(h["end_ns"]), int(h["flags"]), bytes(spans[o:o + int(h["span_len"])])))
        return out

    def trace_ids(self) -> list[bytes]:
        ids = np.empty((len(self.table), 2), ">u8")
        ids[:, 0], ids[:, 1] = self.table["hi"], self.table["lo"]
        return [ids[i].tobytes() for i in range(len(ids))]

    def iter_traces(self):
        """Every trace in ID order: ``(trace_id, headers, offsets, span area, first, count)``."""
        current, cols = -1, None
        ids = self.trace_ids()
        for i, row in enumerate(self.table.tolist()):
            b = row[2]
            if b != current:
                cols, current = self.block(b), b
            yield ids[i], cols[0], cols[1], cols[2], row[3], row[4]

    # -- records and index

    @property
    def records(self) -> dict[tuple[int, int], bytes]:
        """(kind 1 resource / 2 scope, ID) → record bytes."""
        if self._records is None:
            with self._lock:
                if self._records is None:
                    raw, pos, out = self.section("records"), 0, {}
                    while pos < len(raw):
                        kind, rid, n = _RECORD.unpack_from(raw, pos)
                        pos += _RECORD.size
                        out[(kind, rid)] = bytes(raw[pos:pos + n])
                        pos += n
                    self._records = out
        return self._records

    def service_of(self, resource_id: int) -> str | None:
        return self.meta.get("resource_services", {}).get(str(resource_id))

    def record(self, kind: int, rid: int) -> bytes:
        return self.records.get((kind, rid), b"")

    def index_entries(self) -> list[tuple[bytes, bytes]]:
        raw = self.section("index")
        n = _U32.unpack_from(raw, 0)[0]
        pos, out = 4, []
        for _ in range(n):
            kl = _KEYLEN.unpack_from(raw, pos)[0]
            key = bytes(raw[pos + 2:pos + 2 + kl])
            pos += 2 + kl
            vl = _U32.unpack_from(raw, pos)[0]
            out.append((key, raw[pos + 4:pos + 4 + vl]))
            pos += 4 + vl
        return out

    def load_index(self) -> PartitionIndex:
        entries = self.index_entries()
        ix = self._factory()
        head = dict(entries).get(b"H")
        if head is not None:  # the bound the file was indexed with, whatever the setting is now
            ix.max_value_len = json.loads(bytes(head)).get("max_value_len", ix.max_value_len)
        if not ix.load_entries(entries):
            raise ColdCorrupt(f"{self.path.name}: index section is of another format or value bound")
        return ix

    @property
    def index(self) -> PartitionIndex:
        return self._cache.get(self)

    def decode(self, body: bytes):
        """Chunk-format entries of this file as a decoded batch (``chunk.assemble``)."""
        return assemble(body, lambda r: self.record(1, r), lambda s: self.record(2, s))

    def disk_bytes(self) -> int:
        return self.size

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # a reader still holds a view: the map goes with the last one
            pass


class IndexCache:
    """Cold indexes loaded for search, least recently used dropped past ``capacity`` spans.
    A file whose index cannot be read is marked corrupt and answers with an empty index."""

    def __init__(self, capacity_spans: int, on_corrupt):
        self.capacity = capacity_spans
        self.on_corrupt = on_corrupt
        self._lock = threading.Lock()
        self._loaded: OrderedDict[Path, tuple[PartitionIndex, int]] = OrderedDict()
        self._loading: dict[Path, threading.Lock] = {}
        self.loads = 0

    def get(self, part: ColdPartition) -> PartitionIndex:
        with self._lock:
            hit = self._loaded.get(part.path)
            if hit is not None:
                self._loaded.move_to_end(part.path)
                return hit[0]
            gate = self._loading.setdefault(part.path, threading.Lock())
        with gate:  # one load per file at a time
            with self._lock:
                hit = self._loaded.get(part.path)
                if hit is not None:
                    return hit[0]
            if part.corrupt:
                return part._factory()
            try:
                ix = part.load_index()
            except (ColdCorrupt, ValueError, KeyError, json.JSONDecodeError) as exc:
                self.on_corrupt(part, str(exc))
                return part._factory()
            with self._lock:
                self.loads += 1
                self._loaded[part.path] = (ix, len(ix))
                self._trim()
                self._loading.pop(part.path, None)
            return ix

    def put(self, part: ColdPartition, ix: PartitionIndex) -> None:
        """Cache an index already in memory (the mover hands over the hot partition's)."""
        with self._lock:
            self._loaded[part.path] = (ix, len(ix))
            self._trim()

    def cached(self, path: Path) -> bool:
        with self._lock:
            return path in self._loaded

    def full(self) -> bool:
        with self._lock:
            return sum(n for _ix, n in self._loaded.values()) >= self.capacity

    def _trim(self) -> None:
        total = sum(n for _ix, n in self._loaded.values())
        while total > self.capacity and len(self._loaded) > 1:
            _p, (_ix, n) = self._loaded.popitem(last=False)
            total -= n

    def forget(self, path: Path) -> None:
        with self._lock:
            self._loaded.pop(path, None)

    def spans(self) -> int:
        with self._lock:
            return sum(n for _ix, n in self._loaded.values())
