"""Store stage: the cold tier and the lifecycle — moves, queries across tiers, crash safety,
damaged files, retention, the disk budget, pins and deletion (collector/store/lifecycle.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.config import LimitsConfig, StoreConfig
from collector.store import criteria as C
from collector.store.cold import SECTIONS, ColdPartition
from collector.store.hot import HotStore
from collector.store.lifecycle import Lifecycle
from conformance import (FIXTURES, SearchConformance, StoreConformance, batch_of, fixture_request,
                         flat_spans, trace_id_of)

WIDTH = 60
HOUR0 = 1_700_000_040.0  # a partition boundary for WIDTH


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(**kw) -> StoreConfig:
    base = dict(map_size_bytes=1 << 30, partition_s=WIDTH, hot_window_s=WIDTH, cold_window_s=100 * WIDTH,
                cold_dict_bytes=4096)
    base.update(kw)
    return StoreConfig(**base)


def open_tiers(path, clock=None, **kw):
    clock = clock or Clock(HOUR0)
    cfg = config(**kw)
    store = HotStore(path, cfg, LimitsConfig(), clock=clock)
    return store, Lifecycle(store, path, cfg, clock=clock), clock


def age_out(store, life, clock, by: float = 3 * WIDTH) -> None:
    """Let every partition written so far pass the hot window, and run the lifecycle."""
    clock.now += by
    life.tick()


class MovedStore:
    """A store whose every write is moved to the cold tier at once: the conformance suites then
    judge the cold tier (and reads across many cold files)."""

    def __init__(self, path):
        self.hot, self.life, self.clock = open_tiers(path)

    def write(self, batches, pending=None):
        results = self.hot.write(batches, pending)
        age_out(self.hot, self.life, self.clock)
        assert not self.hot.partitions, "every partition moved"
        return results

    def __getattr__(self, name):
        return getattr(self.hot, name)

    def close(self):
        self.life.stop()
        self.hot.close()


class TestColdTierConformance(StoreConformance, SearchConformance):
    def open_store(self, path):
        return MovedStore(path)


def all_fixtures():
    return [(f.stem, fixture_request(f.stem)) for f in sorted(FIXTURES.glob("*.json"))]


def snapshot_answers(store, ids) -> dict:
    """What users see: traces by ID, searches, listings, dependencies."""
    out = {}
    for name, tid in ids.items():
        got = store.get_trace(tid)
        out[("trace", name)] = flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data()))
    for q in (C.TraceQuery(limit=50), C.TraceQuery(limit=3),
              C.TraceQuery(span=C.Cond(C.SERVICE, "=", "query"), limit=50),
              C.TraceQuery(span=C.Cond(C.SERVICE, "=", "query"), trace_min_duration_ns=1, limit=50)):
        found = store.find_traces(q)
        out[("search", repr(q))] = [(s.trace_id, s.span_count, s.error_count, s.root_service,
                                     s.root_name, sorted(s.services.items())) for s in found]
    out["services"] = store.services()
    out["operations"] = [store.operations(s) for s in store.services()]
    out["tag_keys"] = store.tag_keys()
    out["dependencies"] = store.dependencies(None, None)
    return out


def test_queries_answer_the_same_before_and_after_the_move(tmp_path):
    store, life, clock = open_tiers(tmp_path)
    ids = {}
    for i, (name, req) in enumerate(all_fixtures()):
        ids[name] = trace_id_of(req)
        store.write([batch_of(req)])
        if i % 5 == 4:
            clock.now += WIDTH  # several partitions
    store._await_index()
    before = snapshot_answers(store, ids)
    assert before["services"] and before[("search", repr(C.TraceQuery(limit=50)))]
    hot_parts = len(store.partitions)
    age_out(store, life, clock)
    assert not store.partitions and len(store.cold) == hot_parts
    assert sorted(p.name for p in (tmp_path / "hot").iterdir()) == []
    assert snapshot_answers(store, ids) == before
    life.stop()
    store.close()
    store, life, clock = open_tiers(tmp_path, clock)  # and after reopening
    assert snapshot_answers(store, ids) == before
    store.close()


def test_a_trace_straddling_tiers_and_partitions_comes_back_whole(tmp_path):
    store, life, clock = open_tiers(tmp_path)
    req = fixture_request("example_trace")
    parts = []
    for rs in req.resource_spans:  # each resource's spans in a partition of its own
        one = ExportTraceServiceRequest()
        one.resource_spans.append(rs)
        parts.append(one)
    assert len(parts) >= 2
    store.write([batch_of(parts[0])])
    age_out(store, life, clock)  # the first part is cold now
    for p in parts[1:]:
        clock.now += WIDTH
        store.write([batch_of(p)])
    assert len(store.cold) == 1 and store.partitions
    tid = trace_id_of(req)
    got = store.get_trace(tid)
    assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(req)
    store._await_index()
    found = store.find_traces(C.TraceQuery(limit=10))
    summary = next(s for s in found if s.trace_id == tid)
    assert summary.span_count == len(flat_spans(req))
    store.close()


# ------------------------------------------------------------------ crash safety

CRASH_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = {paths!r}
    from conformance import batch_of, fixture_request, FIXTURES
    import test_tiers as T
    from collector.store import cold, lifecycle
    import shutil

    point = sys.argv[2]
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "mid-block":
        real = cold.ColdWriter._flush
        calls = []
        def flush(self):
            calls.append(1)
            if len(calls) == 2:
                die()
            return real(self)
        cold.ColdWriter._flush = flush
    elif point == "before-rename":
        cold.ColdWriter.commit = die
    elif point == "after-rename":
        real_commit = cold.ColdWriter.commit
        def commit(self):
            real_commit(self)
            die()
        cold.ColdWriter.commit = commit
    elif point == "mid-removal":
        def rmtree(path, *a, **k):
            files = sorted(p for p in os.listdir(path))
            os.unlink(os.path.join(path, files[0]))
            die()
        lifecycle.shutil.rmtree = rmtree

    store, life, clock = T.open_tiers(sys.argv[1], cold_block_bytes=2048)
    for f in sorted(FIXTURES.glob("*.json")):
        store.write([batch_of(fixture_request(f.stem))])
    store._await_index()
    print("written", flush=True)
    T.age_out(store, life, clock)
    print("moved", flush=True)
""")


@pytest.mark.parametrize("point", ["mid-block", "before-rename", "after-rename", "mid-removal"])
def test_kill_during_the_move_loses_and_duplicates_nothing(tmp_path, point):
    here = Path(__file__).resolve().parent
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT.format(paths=[str(here), str(here.parent), str(here.parent.parent)]))
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, str(script), str(data), point], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert "written" in proc.stdout and "moved" not in proc.stdout
    store, life, clock = open_tiers(data, Clock(HOUR0 + 3 * WIDTH))
    hot = {p.name for p in (data / "hot").iterdir()}
    cold = {p.name for p in (data / "cold").iterdir()}
    assert not any(n.endswith(".tmp") for n in cold)
    assert len(store.partitions) + len(store.cold) == 1  # served once: either tier, never both
    if point in ("after-rename", "mid-removal"):
        assert len(store.cold) == 1 and not hot  # the finished move is completed on start
    else:
        assert len(store.partitions) == 1 and not cold
    for name, req in all_fixtures():
        got = store.get_trace(trace_id_of(req))
        assert got is not None, name
        assert sorted(flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data()))) == \
            sorted(flat_spans(req)), name
    life.tick()  # and the move can be done again
    assert not store.partitions and len(store.cold) == 1
    store.close()


# ------------------------------------------------------------------ damaged files

def two_cold_files(tmp_path):
    store, life, clock = open_tiers(tmp_path, cold_block_bytes=1024)
    reqs = all_fixtures()
    half = len(reqs) // 2
    for _n, req in reqs[:half]:
        store.write([batch_of(req)])
    clock.now += WIDTH
    for _n, req in reqs[half:]:
        store.write([batch_of(req)])
    age_out(store, life, clock)
    assert len(store.cold) == 2
    files = sorted((tmp_path / "cold").iterdir())
    return store, life, clock, reqs[:half], reqs[half:], files


def test_a_flipped_byte_is_reported_and_the_other_files_still_answer(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    life.stop()
    store.close()
    damaged = ColdPartition(files[0], None, None)
    off = int(damaged.blocks["offset"][0]) + 5  # inside the first block
    damaged.close()
    raw = bytearray(files[0].read_bytes())
    raw[off] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    store, life, clock = open_tiers(tmp_path, clock)
    for name, req in second:  # the undamaged file answers
        got = store.get_trace(trace_id_of(req))
        assert got is not None and sorted(flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data()))) \
            == sorted(flat_spans(req)), name
    answers = [store.get_trace(trace_id_of(req)) for _n, req in first]  # never raises
    assert any(a is None for a in answers)
    store.find_traces(C.TraceQuery(limit=50))
    life.scrub_one()
    life.scrub_one()
    report = life.report()
    assert [d["file"] for d in report["damaged_files"]] == [files[0].name]
    assert "checksum" in report["damaged_files"][0]["error"]
    store.close()


def test_a_truncated_file_is_skipped_at_open_and_reported(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    life.stop()
    store.close()
    raw = files[1].read_bytes()
    files[1].write_bytes(raw[:len(raw) // 2])
    store, life, clock = open_tiers(tmp_path, clock)
    assert list(store.broken) == [files[1].name]
    for name, req in first:
        assert store.get_trace(trace_id_of(req)) is not None, name
    assert all(store.get_trace(trace_id_of(req)) is None for _n, req in second)
    assert store.find_traces(C.TraceQuery(limit=50))
    store.close()


# ------------------------------------------------------------------ retention, budget, pins

def test_retention_deletes_expired_data_but_keeps_pinned_traces(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    pinned = trace_id_of(first[0][1])
    life.pins.pin(pinned.hex())
    clock.now += 100 * WIDTH  # past the cold window for both files
    life.tick()
    assert store.get_trace(pinned) is not None
    assert all(store.get_trace(trace_id_of(r)) is None for _n, r in first[1:] + second)
    left = sorted(p.name for p in (tmp_path / "cold").iterdir())
    assert left == [files[0].name]  # rewritten to its pinned trace; the other file deleted
    assert store.cold[files[0].name].meta["pinned_only"]
    life.tick()
    assert store.get_trace(pinned) is not None  # kept on later passes
    life.pins.unpin(pinned.hex())
    life.tick()
    assert store.get_trace(pinned) is None and not list((tmp_path / "cold").iterdir())
    store.close()


def test_budget_drops_the_oldest_cold_data_first_then_old_hot_partitions(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    for _n, req in first:  # a hot partition (not the current one) and the current one
        store.write([batch_of(req)])
    clock.now += WIDTH
    for _n, req in second:
        store.write([batch_of(req)])
    store._await_index()
    assert len(store.partitions) == 2 and len(store.cold) == 2
    oldest_hot = min(store.partitions)
    current = max(store.partitions)
    sizes = {f.name: f.stat().st_size for f in files}
    used = life.usage()
    life.config = config(max_disk_bytes=used - sizes[files[0].name] // 2)  # one file's worth over
    life.enforce_budget()
    assert sorted(p.name for p in (tmp_path / "cold").iterdir()) == [files[1].name]  # oldest went
    assert len(store.partitions) == 2
    life.config = config(max_disk_bytes=1)  # nothing fits: all but the writing partition go
    life.enforce_budget()
    assert not list((tmp_path / "cold").iterdir())
    assert list(store.partitions) == [current] and oldest_hot not in store.partitions
    assert life.over_budget
    for _n, req in second:  # ingest goes on
        assert store.write([batch_of(req)])[0].accepted
    store.close()


# ------------------------------------------------------------------ deletion

def decoded_bytes(root: Path) -> bytes:
    """Every file's bytes, and for cold files every section and block decompressed too."""
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        out.append(path.read_bytes())
        if path.suffix == ".clew":
            part = ColdPartition(path, None, None)
            out += [part.section(n) for n in SECTIONS if n != "blocks"]
            for b in range(len(part.blocks)):
                out.append(bytes(part.block(b)[2]))
            part.close()
    return b"".join(out)


def marked_request(marker: str) -> ExportTraceServiceRequest:
    req = fixture_request("example_trace")
    span = req.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add(key="user.email")
    kv.value.string_value = marker
    return req


def test_deleted_traces_are_gone_from_every_file(tmp_path):
    store, life, clock = open_tiers(tmp_path, compression_level=0)
    cold_marker, hot_marker = "cold-secret-4f1c9a@example.com", "hot-secret-77e2b0@example.com"
    cold_req = marked_request(cold_marker)
    others = [r for n, r in all_fixtures() if trace_id_of(r) != trace_id_of(cold_req)][:5]
    store.write([batch_of(cold_req)])
    for req in others[:3]:
        store.write([batch_of(req)])
    age_out(store, life, clock)
    hot_req = marked_request(hot_marker)
    hot_req.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x42" * 16
    for rs in hot_req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                sp.trace_id = b"\x42" * 16
    store.write([batch_of(hot_req)])
    for req in others[3:]:
        store.write([batch_of(req)])
    store._await_index()
    for p in store.partitions.values():
        p.checkpoint()  # the index checkpoint names the value too
    everything = decoded_bytes(tmp_path)
    assert cold_marker.encode() in everything and hot_marker.encode() in everything
    doomed = {trace_id_of(cold_req), b"\x42" * 16}
    hot = life.delete_hot(doomed)
    cold = life.delete_cold(doomed)
    assert hot["spans"] == len(flat_spans(hot_req)) and cold["spans"] == len(flat_spans(cold_req))
    everything = decoded_bytes(tmp_path)
    assert cold_marker.encode() not in everything and hot_marker.encode() not in everything
    assert all(store.get_trace(t) is None for t in doomed)
    for req in others:  # the rest is intact and searchable
        assert store.get_trace(trace_id_of(req)) is not None
    store._await_index()
    found = {s.trace_id for s in store.find_traces(C.TraceQuery(limit=50))}
    assert found == {trace_id_of(r) for r in others}
    store.close()
    store, life, clock = open_tiers(tmp_path, clock)  # and after a restart
    assert all(store.get_trace(t) is None for t in doomed)
    assert store.get_trace(trace_id_of(others[0])) is not None
    store.close()


def test_the_dictionary_and_level_settings_are_used(tmp_path):
    store, life, clock = open_tiers(tmp_path, cold_dict_bytes=0, cold_compression_level=1)
    for _n, req in all_fixtures():
        store.write([batch_of(req)])
    age_out(store, life, clock)
    part = next(iter(store.cold.values()))
    assert part.meta["dictionary_bytes"] == 0 and part.sections["dict"][1] == 0
    block = part.map[int(part.blocks["offset"][0]):int(part.blocks["offset"][0]) + int(part.blocks["stored"][0])]
    zstandard.ZstdDecompressor().decompress(block)  # a plain zstd frame without a dictionary
    store.close()


def test_pending_spans_of_a_moved_partition_expire(tmp_path):
    store, life, clock = open_tiers(tmp_path)
    req = fixture_request("example_trace")
    batch = batch_of(req)
    import numpy as np
    store.write([batch], [np.ones(len(batch.spans), bool)])  # held for a tail decision
    assert store.pending_trace_ids() == [trace_id_of(req)]
    age_out(store, life, clock)
    assert life.counters["expired_pending_spans"] == len(batch.spans)
    assert store.pending_trace_ids() == [] and store.get_trace(trace_id_of(req)) is None
    store.close()


def test_disk_env_stays_clean(tmp_path):
    """Nothing but the documented layout is left after moves, rewrites and deletes."""
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    life.delete_cold({trace_id_of(first[0][1])})
    names = sorted(os.listdir(tmp_path / "cold"))
    assert names == [f.name for f in files]
    store.close()


def test_cold_files_stay_searchable_after_the_index_value_bound_changes(tmp_path):
    from collector.config import IndexConfig
    store, life, clock = open_tiers(tmp_path)
    reqs = all_fixtures()
    for _n, req in reqs:
        store.write([batch_of(req)])
    age_out(store, life, clock)
    before = {s.trace_id for s in store.find_traces(C.TraceQuery(limit=50))}
    store.close()
    store = HotStore(tmp_path, config(), LimitsConfig(), clock=clock, index=IndexConfig(max_value_len=100))
    assert {s.trace_id for s in store.find_traces(C.TraceQuery(limit=50))} == before
    assert not store.broken and all(store.get_trace(trace_id_of(r)) is not None for _n, r in reqs)
    store.close()


def test_a_damaged_records_section_is_reported_not_raised(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    life.stop()
    store.close()
    part = ColdPartition(files[0], None, None)
    off = part.sections["records"][0] + 3
    part.close()
    raw = bytearray(files[0].read_bytes())
    raw[off] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    store, life, clock = open_tiers(tmp_path, clock)
    assert all(store.get_trace(trace_id_of(r)) is None for _n, r in first)
    assert all(store.get_trace(trace_id_of(r)) is not None for _n, r in second)
    assert files[0].name in store.broken
    store.close()


# ------------------------------------------------------------------ hot compression

def synthetic_requests(n: int, spans: int = 50):
    """``n`` requests of one trace each, ``spans`` spans of ~600 bytes with repeated attribute
    keys and varying values (enough bytes for a partition to train its dictionary)."""
    out = []
    for r in range(n):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add(key="service.name")
        kv.value.string_value = f"svc-{r % 7}"
        ss = rs.scope_spans.add()
        tid = (r + 1).to_bytes(4, "big") * 4
        for i in range(spans):
            sp = ss.spans.add(trace_id=tid, span_id=(r * 1000 + i + 1).to_bytes(8, "big"),
                              name=f"GET /api/items/{i % 13}", start_time_unix_nano=1_700_000_000_000_000_000 + i,
                              end_time_unix_nano=1_700_000_000_000_500_000 + i)
            for k in range(8):
                a = sp.attributes.add(key=f"app.attribute.{k}")
                a.value.string_value = f"value-{(r * 31 + i * 7 + k) % 997:04d}-" + "x" * 40
        out.append(req)
    return out


def test_hot_partitions_train_a_dictionary_and_read_back_after_restart(tmp_path):
    store, life, clock = open_tiers(tmp_path, hot_dict_bytes=16384)
    reqs = synthetic_requests(200)
    for req in reqs:
        store.write([batch_of(req)])
    part = next(iter(store.partitions.values()))
    assert part.dictionary is not None  # trained once 4 MiB of spans had arrived
    with part.env.begin() as txn:
        flags = {v[0] & ~0x08 for _k, v in txn.cursor(part.dbs[b"chunks"]) if not v[0] & 0x04}
        assert txn.get(b"zdict", db=part.dbs[b"meta"]) is not None
    assert 0x13 in flags and 0x11 in flags  # later chunks use it, earlier ones do not
    store._await_index()
    part.checkpoint()
    store.close()
    from collector.store import chunk
    chunk._DICTIONARIES.clear()  # a new process knows only what the partitions hold
    store, life, clock = open_tiers(tmp_path, clock)
    for req in reqs[::23]:
        got = store.get_trace(trace_id_of(req))
        assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(req)
    assert len(store.find_traces(C.TraceQuery(span=C.Cond(C.SERVICE, "=", "svc-3"), limit=100))) == \
        sum(1 for r in range(200) if r % 7 == 3)
    age_out(store, life, clock)  # and the mover reads them
    assert not store.partitions
    got = store.get_trace(trace_id_of(reqs[-1]))
    assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(reqs[-1])
    store.close()


def test_long_chunks_are_stored_as_pieces_that_share_leaf_pages(tmp_path):
    """A chunk over ~2 KB is split over consecutive sequences (an LMDB value that size would
    take whole overflow pages); reads, re-indexing, moves and deletion see whole chunks."""
    from collector.store.chunk import PIECE_BYTES
    store, life, clock = open_tiers(tmp_path, compression_level=0)
    reqs = synthetic_requests(12, spans=30)
    for req in reqs:
        store.write([batch_of(req)])
    part = next(iter(store.partitions.values()))
    with part.env.begin() as txn:
        values = [bytes(v) for _k, v in txn.cursor(part.dbs[b"chunks"])]
    assert max(len(v) for v in values) <= PIECE_BYTES + 1
    assert len(values) > 12 * 5  # each ~20 KB chunk became pieces
    for req in reqs:
        got = store.get_trace(trace_id_of(req))
        assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(req)
    store.close()
    store, life, clock = open_tiers(tmp_path, clock)  # no checkpoint: re-indexed from the pieces
    assert len(store.find_traces(C.TraceQuery(limit=100))) == 12
    life.delete_hot({trace_id_of(reqs[0])})
    part = next(iter(store.partitions.values()))
    with part.env.begin() as txn:
        left = sum(1 for _ in txn.cursor(part.dbs[b"chunks"]))
    assert left == len(values) - len(values) // 12  # every piece of the deleted chunk went
    age_out(store, life, clock)
    for req in reqs[1:]:
        got = store.get_trace(trace_id_of(req))
        assert flat_spans(trace_pb2.TracesData.FromString(got.to_traces_data())) == flat_spans(req)
    assert store.get_trace(trace_id_of(reqs[0])) is None
    store.close()


def test_a_partition_checkpointed_uncompressed_keeps_its_checkpoints_readable(tmp_path):
    store, life, clock = open_tiers(tmp_path)
    reqs = all_fixtures()
    for _n, req in reqs[:5]:
        store.write([batch_of(req)])
    store._await_index()
    part = next(iter(store.partitions.values()))
    part.index.compressed_checkpoints = False  # as written before checkpoints were compressed
    part.checkpoint()
    store.close()
    store, life, clock = open_tiers(tmp_path, clock)
    part = next(iter(store.partitions.values()))
    assert part.index.compressed_checkpoints is False  # later checkpoints stay alike
    for _n, req in reqs[5:]:
        store.write([batch_of(req)])
    store._await_index()
    part.checkpoint()
    store.close()
    store, life, clock = open_tiers(tmp_path, clock)
    part = next(iter(store.partitions.values()))
    assert part.index.watermark == part.next_seq - 1  # loaded from the checkpoint, nothing re-indexed
    found = {s.trace_id for s in store.find_traces(C.TraceQuery(limit=100))}
    assert found == {trace_id_of(r) for _n, r in reqs}
    store.close()


def test_cold_indexes_are_handed_over_by_the_mover_and_warmed_after_a_start(tmp_path):
    store, life, clock, first, second, files = two_cold_files(tmp_path)
    assert all(store.index_cache.cached(f) for f in files)  # the hot indexes, kept
    loads = store.index_cache.loads
    store.find_traces(C.TraceQuery(limit=50))
    assert store.index_cache.loads == loads  # nothing read back from the files
    life.stop()
    store.close()
    store, life, clock = open_tiers(tmp_path, clock, cold_index_cache_spans=1)
    life.warm()  # room for one file's spans: the newest is loaded
    assert store.index_cache.cached(files[1]) and not store.index_cache.cached(files[0])
    store.close()
