"""Cold file format v1: a reader written from docs/cold-format.md alone reads the files the store writes.

The reader (first half of this module) uses struct, json, numpy, xxhash, zstandard and pyroaring
only, nothing of ``collector.store.cold`` or ``collector.store.index``: these tests fail when the
document and the files disagree.  The files come from the store itself: spans of the shared OTLP
example and Jaeger fixtures written to a ``HotStore``, moved to the cold tier by the lifecycle.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xxhash
import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from pyroaring import BitMap

from collector.codec.otlp_json import json_to_protobuf
from collector.config import LimitsConfig, StoreConfig
from collector.store.hot import HotStore
from collector.store.lifecycle import Lifecycle
from conformance import FIXTURES, batch_of, fixture_request
from conftest import CONFORMANCE

# ============================================================== the reader (from the document)

SECTION_ORDER = ("meta", "dict", "blocks", "block_index", "traces", "filter", "records", "index")
EMPTY_XXH64 = 0xEF46DB3751D8E999

SPAN_COLS = np.dtype([("trace", "<u4"), ("start", "<u8"), ("end", "<u8"), ("kind", "u1"),
                      ("status", "u1"), ("op", "<u4"), ("res", "<u4"), ("scope", "<u4"),
                      ("sid", "<u8"), ("pid", "<u8")])
RARE = np.dtype([("hash", "<u8"), ("key", "<u8"), ("ord", "<u4"), ("where", "u1"), ("vtype", "u1"),
                 ("num", "<i8"), ("toff", "<u8"), ("tlen", "<u4")])
assert SPAN_COLS.itemsize == 50 and RARE.itemsize == 42


class FormatError(Exception):
    pass


@dataclass
class Entry:
    resource_id: int
    scope_id: int
    start_ns: int
    end_ns: int
    flags: int
    span: bytes

    def key(self) -> tuple:
        return (self.resource_id, self.scope_id, self.start_ns, self.end_ns, self.flags, self.span)


class ColdFile:
    """One cold file in memory: footer and small sections checked on open, the rest on use."""

    def __init__(self, data: bytes):
        self.data = data
        if len(data) < 16 + 24:
            raise FormatError("truncated")
        magic, version, _flags, _reserved = struct.unpack_from("<8sHHI", data, 0)
        digest, version2, count, zero, end = struct.unpack_from("<QHHI8s", data, len(data) - 24)
        if magic != b"CLEWCOLD" or end != b"CLEWCEND":
            raise FormatError("bad magic")
        if version != 1 or version2 != 1:
            raise FormatError(f"version {version}/{version2}")
        if count != 8 or zero != 0:
            raise FormatError(f"section count {count}")
        self.table_at = len(data) - 24 - 40 * count
        table = data[self.table_at:len(data) - 24]
        if xxhash.xxh64_intdigest(table) != digest:
            raise FormatError("section table checksum")
        self.rows = {}
        for i, name in enumerate(SECTION_ORDER):
            offset, stored, raw, xxh, codec, pad = struct.unpack_from("<QQQQII", table, 40 * i)
            if pad != 0 or codec not in (0, 1) or offset < 16 or offset + stored > self.table_at:
                raise FormatError(f"section {name}: bad row")
            self.rows[name] = (offset, stored, raw, xxh, codec)
        self.meta = json.loads(self.section("meta"))
        self.dictionary = self.section("dict")
        index = self.section("block_index")
        self.block_rows = [struct.unpack_from("<QIIIIQ", index, 32 * i) for i in range(len(index) // 32)]
        table = self.section("traces")
        self.trace_rows = [(table[32 * i:32 * i + 16], *struct.unpack_from("<IIII", table, 32 * i + 16))
                           for i in range(len(table) // 32)]
        self.trace_ids = [row[0] for row in self.trace_rows]
        if len(self.trace_rows) != self.meta["traces"]:
            raise FormatError("trace table length")
        bloom = self.section("filter")
        self.k, _zero, self.m = struct.unpack_from("<IIQ", bloom, 0)
        self.bits = bloom[16:]
        if self.m == 0 or len(self.bits) * 8 < self.m:
            raise FormatError("filter")

    def section(self, name: str) -> bytes:
        offset, stored, raw, xxh, codec = self.rows[name]
        data = self.data[offset:offset + stored]
        if name != "blocks" and xxhash.xxh64_intdigest(data) != xxh:
            raise FormatError(f"section {name}: checksum")
        if codec == 1:
            data = zstandard.ZstdDecompressor().decompress(data)
        if len(data) != raw:
            raise FormatError(f"section {name}: {len(data)} bytes, not {raw}")
        return data

    def block(self, b: int) -> list[Entry]:
        offset, stored, raw, entries, pad, xxh = self.block_rows[b]
        frame = self.data[offset:offset + stored]
        if xxhash.xxh64_intdigest(frame) != xxh:
            raise FormatError(f"block {b}: checksum")
        d = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(self.dictionary)) \
            if self.dictionary else zstandard.ZstdDecompressor()
        data = d.decompress(frame)
        if len(data) != raw:
            raise FormatError(f"block {b}: {len(data)} bytes, not {raw}")
        n = struct.unpack_from("<I", data, 0)[0]
        if n != entries:
            raise FormatError(f"block {b}: {n} entries, the index says {entries}")
        cols, pos = [], 4
        for fmt, width in (("<Q", 8), ("<Q", 8), ("<Q", 8), ("<Q", 8), ("<I", 4), ("<I", 4)):
            cols.append([struct.unpack_from(fmt, data, pos + width * j)[0] for j in range(n)])
            pos += width * n
        if pos + sum(cols[5]) != len(data):
            raise FormatError(f"block {b}: span area")
        out = []
        for j in range(n):
            out.append(Entry(cols[0][j], cols[1][j], cols[2][j], cols[3][j], cols[4][j],
                             data[pos:pos + cols[5][j]]))
            pos += cols[5][j]
        return out

    def bloom_positions(self, trace_id: bytes) -> list[int]:
        h = xxhash.xxh3_128_intdigest(trace_id)
        h1, h2 = h & (2**64 - 1), h >> 64
        return [((h1 + i * h2) % 2**64) % self.m for i in range(self.k)]

    def might_hold(self, trace_id: bytes) -> bool:
        return all(self.bits[p >> 3] & (1 << (p & 7)) for p in self.bloom_positions(trace_id))

    def find(self, trace_id: bytes) -> int | None:
        i = bisect.bisect_left(self.trace_ids, trace_id)
        return i if i < len(self.trace_ids) and self.trace_ids[i] == trace_id else None

    def trace(self, trace_id: bytes) -> list[Entry]:
        if not self.might_hold(trace_id):
            return []
        i = self.find(trace_id)
        if i is None:
            return []
        _tid, block, first, count, _pad = self.trace_rows[i]
        return self.block(block)[first:first + count]

    def records(self) -> dict[tuple[int, int], bytes]:
        raw, pos, out = self.section("records"), 0, {}
        while pos < len(raw):
            kind, rid, n = struct.unpack_from("<BQI", raw, pos)
            pos += 13
            out[(kind, rid)] = raw[pos:pos + n]
            pos += n
        return out

    def index(self) -> list[tuple[bytes, bytes]]:
        raw = self.section("index")
        count, pos, out = struct.unpack_from("<I", raw, 0)[0], 4, []
        for _ in range(count):
            kl = struct.unpack_from("<H", raw, pos)[0]
            key = raw[pos + 2:pos + 2 + kl]
            pos += 2 + kl
            vl = struct.unpack_from("<I", raw, pos)[0]
            out.append((key, raw[pos + 4:pos + 4 + vl]))
            pos += 4 + vl
        if pos != len(raw):
            raise FormatError("index: trailing bytes")
        return out


def roaring_values(buf: bytes) -> list[int]:
    """A portable Roaring bitmap (RoaringFormatSpec) as its sorted values."""
    cookie = struct.unpack_from("<I", buf, 0)[0]
    if cookie == 12346:
        size, pos, runs = struct.unpack_from("<I", buf, 4)[0], 8, b""
        offsets = True
    elif cookie & 0xFFFF == 12347:
        size = (cookie >> 16) + 1
        runs = buf[4:4 + (size + 7) // 8]
        pos = 4 + len(runs)
        offsets = size >= 4
    else:
        raise FormatError(f"roaring cookie {cookie}")
    header = [struct.unpack_from("<HH", buf, pos + 4 * i) for i in range(size)]
    pos += 4 * size + (4 * size if offsets else 0)
    out = []
    for i, (key, card_minus_1) in enumerate(header):
        card = card_minus_1 + 1
        if runs and runs[i >> 3] & (1 << (i & 7)):
            n = struct.unpack_from("<H", buf, pos)[0]
            pairs = struct.unpack_from(f"<{2 * n}H", buf, pos + 2)
            low = [v for s, ln in zip(pairs[::2], pairs[1::2]) for v in range(s, s + ln + 1)]
            pos += 2 + 4 * n
        elif card <= 4096:
            low = list(struct.unpack_from(f"<{card}H", buf, pos))
            pos += 2 * card
        else:
            bits = buf[pos:pos + 8192]
            low = [x for x in range(65536) if bits[x >> 3] & (1 << (x & 7))]
            pos += 8192
        if len(low) != card:
            raise FormatError("roaring cardinality")
        out += [(key << 16) | v for v in low]
    return out


def term_hash(where: int, key: str, text: str) -> int:
    return xxhash.xxh64_intdigest(bytes((where,)) + key.encode() + b"\x00" + text.encode()) or 1


# ============================================================== a real cold file, made by the store

WIDTH = 60
T0 = 1_700_000_040.0  # a partition boundary for WIDTH
BLOCK_BYTES = 2048
COPIES = 4  # each fixture under 4 trace IDs: enough spans to train a dictionary


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def config() -> StoreConfig:
    return StoreConfig(map_size_bytes=1 << 30, partition_s=WIDTH, hot_window_s=WIDTH,
                       cold_window_s=100 * WIDTH, cold_dict_bytes=4096, cold_block_bytes=BLOCK_BYTES)


def source_requests() -> list[ExportTraceServiceRequest]:
    """The OTLP example, every Jaeger fixture under several trace IDs, and one trace larger than
    a block."""
    reqs = [ExportTraceServiceRequest.FromString(
        json_to_protobuf((CONFORMANCE / "otlp" / "trace.json").read_bytes()))]
    fixtures = [fixture_request(f.stem) for f in sorted(FIXTURES.glob("*.json"))]
    for copy in range(COPIES):
        for req in fixtures:
            r = ExportTraceServiceRequest()
            r.CopyFrom(req)
            if copy:
                for rs in r.resource_spans:
                    for ss in rs.scope_spans:
                        for sp in ss.spans:
                            sp.trace_id = hashlib.blake2b(sp.trace_id + bytes((copy,)), digest_size=16).digest()
            reqs.append(r)
    big = ExportTraceServiceRequest()
    big.resource_spans.add().CopyFrom(fixtures[0].resource_spans[0])
    spans = big.resource_spans[0].scope_spans[0].spans
    template = trace_pb2.Span()
    template.CopyFrom(spans[0])
    del spans[:]
    for i in range(60):
        sp = spans.add()
        sp.CopyFrom(template)
        sp.trace_id = b"\xbb" * 16
        sp.span_id = (i + 1).to_bytes(8, "big")
        sp.start_time_unix_nano += i
    reqs.append(big)
    return reqs


@dataclass
class Made:
    store: HotStore
    life: Lifecycle
    path: Path
    written: dict  # trace ID -> Counter of span bytes
    spans: list  # every written span: (trace ID, span bytes)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("cold-format")
    clock = Clock(T0)
    cfg = config()
    store = HotStore(root, cfg, LimitsConfig(), clock=clock)
    life = Lifecycle(store, root, cfg, clock=clock)
    written, spans = {}, []
    for req in source_requests():
        batch = batch_of(req)
        assert store.write([batch])[0].accepted == len(batch.spans)
        for row in batch.spans:
            tid = row["trace_id"].tobytes()
            span = bytes(batch.buf[int(row["span_off"]):int(row["span_off"]) + int(row["span_len"])])
            written.setdefault(tid, Counter())[span] += 1
            spans.append((tid, span))
    clock.now += 3 * WIDTH
    life.tick()
    assert not store.partitions, "the partition moved to the cold tier"
    path = root / "cold" / f"{int(T0)}.clew"
    assert path.exists() and not store.broken
    yield Made(store, life, path, written, spans)
    life.stop()
    store.close()


@pytest.fixture(scope="module")
def cold(made) -> ColdFile:
    return ColdFile(made.path.read_bytes())


# ============================================================== the tests

def test_footer_sections_and_every_checksum(cold, made):
    data = cold.data
    assert data[:8] == b"CLEWCOLD" and data[-8:] == b"CLEWCEND"
    assert cold.table_at == len(data) - 24 - 8 * 40
    # every section and every block checks out
    for name in SECTION_ORDER:
        if name != "blocks":
            cold.section(name)
    assert sum(len(cold.block(b)) for b in range(len(cold.block_rows))) == cold.meta["spans"]
    # codecs as documented; the empty-section checksum; the blocks row carries none
    codecs = {name: row[4] for name, row in cold.rows.items()}
    assert codecs == {"meta": 0, "dict": 0, "blocks": 0, "block_index": 0, "traces": 0, "filter": 0,
                      "records": 1, "index": 1}
    assert cold.rows["blocks"][3] == 0 and xxhash.xxh64_intdigest(b"") == EMPTY_XXH64
    # sections tile the file between header and footer (writer's order), blocks tile their section
    spans = sorted((row[0], row[1]) for row in cold.rows.values())
    assert spans[0][0] == 16
    assert all(a + n == b for (a, n), (b, _m) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] == cold.table_at
    offset, stored = cold.rows["blocks"][:2]
    assert cold.rows["blocks"][2] == stored
    for off, size, raw, entries, pad, _x in cold.block_rows:
        assert off == offset and pad == 0 and entries > 0
        offset += size
    assert offset == cold.rows["blocks"][0] + stored
    # the blocks use the trained dictionary, named in their frame headers
    assert cold.meta["dictionary_bytes"] == len(cold.dictionary) > 0
    assert cold.dictionary[:4] == b"\x37\xa4\x30\xec"
    dict_id = struct.unpack_from("<I", cold.dictionary, 4)[0]
    for off, size, *_rest in cold.block_rows:
        params = zstandard.get_frame_parameters(data[off:off + size])
        assert params.dict_id == dict_id and not params.has_checksum
    with pytest.raises(zstandard.ZstdError):  # without the dictionary a block does not decode
        off, size, *_rest = cold.block_rows[0]
        zstandard.ZstdDecompressor().decompress(data[off:off + size])
    assert len(cold.block_rows) > 3


def test_meta_describes_the_file(cold, made):
    meta = cold.meta
    assert meta["format"] == 1 and meta["source"] == "move" and meta["pinned_only"] is False
    assert meta["spans"] == len(made.spans) == sum(row[3] for row in cold.block_rows)
    assert meta["traces"] == len(made.written)
    assert meta["blocks"] == len(cold.block_rows)
    assert meta["partition_start_s"] == int(made.path.name.split(".")[0]) == int(T0)
    assert meta["partition_s"] == WIDTH
    decoded = [trace_pb2.Span.FromString(s) for _t, s in made.spans]
    assert meta["min_start_ns"] == min(s.start_time_unix_nano for s in decoded)
    assert meta["max_end_ns"] == max(s.end_time_unix_nano for s in decoded)
    assert isinstance(meta["source_id"], str) and meta["source_id"]
    records = cold.records()
    services = {r.resource.attributes[0].value.string_value for r in
                (trace_pb2.ResourceSpans.FromString(records[key]) for key in records if key[0] == 1)}
    assert set(meta["resource_services"].values()) == services
    for rid in meta["resource_services"]:
        assert (1, int(rid)) in records


def test_trace_table_lists_exactly_the_written_traces(cold, made):
    assert cold.trace_ids == sorted(made.written)
    assert len(set(cold.trace_ids)) == len(cold.trace_ids)
    # big-endian halves: the row's first 16 bytes are the ID, also as (hi, lo) integers in order
    his = [struct.unpack(">QQ", t) for t in cold.trace_ids]
    assert his == sorted(his)
    # rows of one block are consecutive and their entries follow each other
    expect = {}
    for _tid, block, first, count, pad in cold.trace_rows:
        assert pad == 0 and count >= 1
        assert first == expect.get(block, 0)
        expect[block] = first + count
    assert [b for _t, b, *_r in cold.trace_rows] == sorted(b for _t, b, *_r in cold.trace_rows)
    assert expect == {b: row[3] for b, row in enumerate(cold.block_rows)}


def test_spans_read_back_are_the_spans_written_and_what_the_store_returns(cold, made):
    records = cold.records()
    for tid in cold.trace_ids:
        entries = cold.trace(tid)
        assert Counter(e.span for e in entries) == made.written[tid]
        trace = made.store.get_trace(tid)
        assert Counter(e.key() for e in entries) == Counter(tuple(s) for s in trace.spans)
        for e in entries:
            sp = trace_pb2.Span.FromString(e.span)
            assert sp.trace_id == tid
            assert (e.start_ns, e.end_ns) == (sp.start_time_unix_nano, sp.end_time_unix_nano)
            assert e.flags == (sp.kind << 8) | (2 if not sp.parent_span_id else 0) \
                | (1 if sp.status.code == 2 else 0)
            resource, scope = records[(1, e.resource_id)], records[(2, e.scope_id)]
            assert xxhash.xxh64_intdigest(resource) == e.resource_id
            assert xxhash.xxh64_intdigest(scope) == e.scope_id
            assert trace.resources[e.resource_id] == resource and trace.scopes[e.scope_id] == scope
            assert not trace_pb2.ResourceSpans.FromString(resource).scope_spans
            assert not trace_pb2.ScopeSpans.FromString(scope).spans
    # a trace larger than a block has a block of its own
    big = cold.trace_rows[cold.find(b"\xbb" * 16)]
    assert big[3] == 60 and cold.block_rows[big[1]][3] == 60 and cold.block_rows[big[1]][2] > BLOCK_BYTES
    # an ID the file does not hold reads as nothing
    assert b"\xee" * 16 not in made.written and cold.trace(b"\xee" * 16) == []


def test_bloom_filter_holds_every_stored_trace(cold, made):
    n = len(cold.trace_ids)
    assert cold.k == 7 and cold.m == max(64, (10 * n + 63) // 64 * 64) and len(cold.bits) == cold.m // 8
    assert all(cold.might_hold(t) for t in cold.trace_ids)
    # the bits set are exactly those of the stored traces
    want = bytearray(cold.m // 8)
    for t in cold.trace_ids:
        for p in cold.bloom_positions(t):
            want[p >> 3] |= 1 << (p & 7)
    assert bytes(cold.bits) == bytes(want)
    absent = [hashlib.sha256(i.to_bytes(4, "little")).digest()[:16] for i in range(2000)]
    assert sum(cold.might_hold(t) for t in absent) < 100


def test_index_section_decodes_as_documented(cold, made):
    entries = cold.index()
    keys = [k for k, _v in entries]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    widths = {b"A": 5, b"B": 13, b"C": 5, b"D": 5, b"H": 1, b"K": 5, b"O": 5, b"P": 5, b"R": 5,
              b"S": 5, b"T": 5, b"k": 9, b"o": 9, b"r": 9, b"s": 9, b"t": 9}
    for k in keys:
        assert len(k) == widths[k[:1]], k
        assert k == b"H" or k[-4:] == b"\x00\x00\x00\x00" or k[:1] in b"DK"
    one = {k[:1]: v for k, v in entries if len(k) <= 5}
    head = json.loads(one[b"H"])
    spans, traces = head["spans"], head["traces"]
    assert head["format"] == 4 and spans == cold.meta["spans"] and traces == cold.meta["traces"]
    cols = np.frombuffer(one[b"C"], SPAN_COLS)
    tids = [one[b"T"][16 * i:16 * i + 16] for i in range(len(one[b"T"]) // 16)]
    services, ops = json.loads(one[b"S"]), json.loads(one[b"O"])
    recs, dictionary, knames = json.loads(one[b"R"]), json.loads(one[b"D"]), json.loads(one[b"K"])
    assert (len(cols), len(tids), len(services), len(ops), len(recs), len(dictionary), len(knames)) == (
        spans, traces, head["services"], head["ops"], head["records"], head["dictionary"], head["keys"])
    d_key = next(k for k in keys if k[:1] == b"D")
    k_key = next(k for k in keys if k[:1] == b"K")
    assert struct.unpack(">I", d_key[1:])[0] == len(dictionary)
    assert struct.unpack(">I", k_key[1:])[0] == len(knames)

    # span columns joined with the trace IDs are the spans of the blocks
    assert set(tids) == set(cold.trace_ids)
    from_blocks = Counter()
    for b in range(len(cold.block_rows)):
        for e in cold.block(b):
            sp = trace_pb2.Span.FromString(e.span)
            from_blocks[(sp.trace_id, sp.span_id, sp.parent_span_id.ljust(8, b"\x00"),
                         sp.start_time_unix_nano, sp.end_time_unix_nano, sp.kind)] += 1
    from_index = Counter()
    for row in cols:
        from_index[(tids[int(row["trace"])], struct.pack("<Q", int(row["sid"])),
                    struct.pack("<Q", int(row["pid"])), int(row["start"]), int(row["end"]),
                    int(row["kind"]))] += 1
    assert from_index == from_blocks

    # bitmaps: own Roaring parser agrees with pyroaring; partitions of the span ordinals
    bitmaps: dict[bytes, dict[int, BitMap]] = {}
    for k, v in entries:
        if k[:1] in b"Bkorst":
            bm = BitMap.deserialize(v)
            assert roaring_values(v) == list(bm) and bm
            ident = struct.unpack(">Q", k[1:9])[0] if k[:1] == b"B" else struct.unpack(">I", k[1:5])[0]
            bitmaps.setdefault(k[:1], {})[ident] = bm
    every = BitMap(range(spans))
    for tag in (b"s", b"k", b"t", b"o"):
        parts = list(bitmaps[tag].values())
        assert BitMap.union(*parts) == every, tag
        assert sum(len(p) for p in parts) == spans, tag  # disjoint
    assert sum(len(p) for p in bitmaps[b"r"].values()) == 2 * spans
    for kind, bm in bitmaps[b"k"].items():
        assert list(bm) == np.flatnonzero(cols["kind"] == kind).tolist()
    for status, bm in bitmaps[b"t"].items():
        assert list(bm) == np.flatnonzero(cols["status"] == status).tolist()
    for o, bm in bitmaps[b"o"].items():
        assert list(bm) == np.flatnonzero(cols["op"] == o).tolist()
        assert bm <= bitmaps[b"s"][ops[o][0]]
    for rec, bm in bitmaps[b"r"].items():
        assert list(bm) == np.flatnonzero((cols["res"] == rec) | (cols["scope"] == rec)).tolist()

    # names, records, dictionary and keys
    for svc, name, kind, nh in ops:
        assert nh == (xxhash.xxh64_intdigest(name.encode()) or 1) and 0 <= svc < len(services)
    records = cold.records()
    for where, rid, svc, hashes in recs:
        assert (where in (3, 4)) and (1 if where == 3 else 2, rid) in records
        assert (svc >= 0) == (where == 3)
        if where == 3:
            assert cold.meta["resource_services"][str(rid)] == services[svc]
    for h, where, key, text, vtype in dictionary:
        assert h == term_hash(where, key, text) and vtype in (1, 2, 3, 4)
    for kh, where, key in knames:
        assert kh == (xxhash.xxh64_intdigest(bytes((where,)) + key.encode()) or 1)
    assert set(bitmaps.get(b"B", {})) <= {h for h, *_r in dictionary}

    # rare terms: rows sorted by term hash, string values in the arena hash back to the term
    rows = np.frombuffer(one[b"P"], RARE)
    arena = one[b"A"]
    key_of = {kh: (where, key) for kh, where, key in knames}
    assert len(rows) and (np.diff(rows["hash"].astype(np.float64)) >= 0).all()
    assert (rows["ord"] < spans).all()
    for row in rows:
        where, key = key_of[int(row["key"])]
        assert where == int(row["where"])
        if int(row["vtype"]) == 1:
            text = arena[int(row["toff"]):int(row["toff"]) + int(row["tlen"])].decode()
            assert int(row["hash"]) == term_hash(where, key, text)
        elif int(row["vtype"]) == 3:
            assert int(row["hash"]) == term_hash(where, key, str(int(row["num"])))


def test_a_flipped_byte_in_a_block_fails_that_blocks_checksum(cold, made, tmp_path):
    b = len(cold.block_rows) // 2
    offset, stored, *_rest = cold.block_rows[b]
    damaged = bytearray(cold.data)
    damaged[offset + stored // 2] ^= 0x01
    bad = ColdFile(bytes(damaged))  # opening checks the footer and small sections, not blocks
    with pytest.raises(FormatError, match=f"block {b}: checksum"):
        bad.block(b)
    assert bad.block(b - 1) == cold.block(b - 1)  # the others still read

    # the store reports such a file as damaged and skips it
    (tmp_path / "cold").mkdir()
    (tmp_path / "cold" / made.path.name).write_bytes(damaged)
    clock = Clock(T0 + 3 * WIDTH)
    store = HotStore(tmp_path, config(), LimitsConfig(), clock=clock)
    life = Lifecycle(store, tmp_path, config(), clock=clock)
    try:
        victim = next(t for t, blk, *_r in cold.trace_rows if blk == b)
        assert store.get_trace(victim) is None
        report = life.report()
        assert [d["file"] for d in report["damaged_files"]] == [made.path.name]
        assert "checksum" in report["damaged_files"][0]["error"]
        other = next(t for t, blk, *_r in cold.trace_rows if blk != b)
        assert store.get_trace(other) is None  # the whole file is skipped from then on
    finally:
        life.stop()
        store.close()


def test_another_format_version_is_refused(cold, made, tmp_path):
    data = bytearray(cold.data)
    struct.pack_into("<H", data, 8, 2)
    struct.pack_into("<H", data, len(data) - 16, 2)
    with pytest.raises(FormatError, match="version"):
        ColdFile(bytes(data))
    (tmp_path / "cold").mkdir()
    (tmp_path / "cold" / made.path.name).write_bytes(data)
    store = HotStore(tmp_path, config(), LimitsConfig(), clock=Clock(T0 + 3 * WIDTH))
    try:
        assert not store.cold and "format version 2" in store.broken[made.path.name]
        assert store.get_trace(cold.trace_ids[0]) is None
    finally:
        store.close()
