"""Store stage: the hot tier — LMDB partitions by arrival time, an append-only chunk log per partition.

Each partition is its own LMDB environment under ``DATA_DIR/hot/<start epoch s>/`` so retention
and tiering handle whole files.  Named databases in a partition:

* ``chunks``: u64 big-endian sequence → chunk (collector/store/chunk.py); appended, never updated.
* ``traces``: trace ID (16 bytes) + sequence (8 bytes) → u32 span count of that chunk.
* ``resources`` / ``scopes``: xxh64 (8 bytes) → record bytes, stored once per partition.
* ``meta``: ``min_start``, ``max_end`` (ns), ``spans`` — for pruning and statistics.
* ``index``: the partition's search index checkpoint (collector/store/index.py).
* ``pending``: trace ID + sequence → u32 span count + chunk: spans of traces the tail stage has not
  decided yet (collector/sampling/tail.py).  Durable and readable by ID, but not indexed; a kept
  trace's entries move to ``chunks`` (and are indexed), a dropped trace's are deleted.
"""
from __future__ import annotations

import gc
import logging
import os
import queue
import shutil
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import lmdb
import numpy as np
import xxhash

from collector.config import IndexConfig, LimitsConfig, StoreConfig
from collector.errors import StoreError
from collector.model import SpanBatch, concat_batches, empty_batch
from collector.pipeline import Refusals
from collector.store.chunk import (ChunkCodec, assemble, forget_dictionary, gather, headers, pieces,
                                   register_dictionary, train_dictionary, whole)
from collector.store.cold import SUFFIX, ColdCorrupt, ColdPartition, IndexCache
from collector.store.contract import Trace, WriteResult, dedupe
from collector.store.index import PartitionIndex
from collector.store.search import SearchMixin
from collector.store.terms import W_RESOURCE

log = logging.getLogger("clew.store")

_SEQ = struct.Struct(">Q")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U16 = struct.Struct(">H")
_DBS = (b"chunks", b"traces", b"resources", b"scopes", b"meta", b"index", b"pending")
DICT_SAMPLE_BYTES = 4 << 20  # span bytes a new partition collects before training its dictionary
REINDEX_BYTES = 8 << 20  # stored chunk bytes re-indexed per decoded batch when a partition opens
CHECKPOINT_TXN_BYTES = 4 << 20  # index checkpoint data per write transaction
CHECKPOINT_ZSTD_LEVEL = 3  # index checkpoint values are compressed (they are most of a hot partition)
INDEX_QUEUE_WRITES = 8  # committed writes waiting for the indexer before the writer waits too
INDEX_WAIT_S = 1.0  # how long a search waits for the indexer to catch up with acknowledged writes


def _record_id(record: bytes) -> int:
    return xxhash.xxh64_intdigest(record)


class Partition:
    """One LMDB environment holding the spans that arrived in one time window."""

    def __init__(self, path: Path, start_s: int, config: StoreConfig, index: IndexConfig):
        self.path = path
        self.start_s = start_s
        self._checkpoint_lock = threading.Lock()
        path.mkdir(parents=True, exist_ok=True)
        self.uid = self.read_id(path)
        if self.uid is None:  # names this partition in the cold file it becomes (crash recovery)
            self.uid = uuid.uuid4().hex
            tmp = path / "id.tmp"
            tmp.write_text(self.uid)
            os.replace(tmp, path / "id")
        self.env = lmdb.open(str(path), map_size=config.map_size_bytes, max_dbs=len(_DBS),
                             max_readers=1024, sync=config.fsync, metasync=config.fsync,
                             readahead=False)
        self.dbs = {name: self.env.open_db(name) for name in _DBS}
        with self.env.begin() as txn:
            cur = txn.cursor(self.dbs[b"chunks"])
            self.next_seq = _SEQ.unpack(cur.key())[0] + 1 if cur.last() else 1
            self.known_records = set()
            for name in (b"resources", b"scopes"):
                for key in txn.cursor(self.dbs[name]).iternext(keys=True, values=False):
                    self.known_records.add((name, key))
            self.min_start = _U64.unpack(txn.get(b"min_start", db=self.dbs[b"meta"]) or _U64.pack(2**64 - 1))[0]
            self.max_end = _U64.unpack(txn.get(b"max_end", db=self.dbs[b"meta"]) or _U64.pack(0))[0]
            self.spans = _U64.unpack(txn.get(b"spans", db=self.dbs[b"meta"]) or _U64.pack(0))[0]
            zdict = txn.get(b"zdict", db=self.dbs[b"meta"])
        # chunks are compressed with a dictionary trained on this partition's first spans
        self.dictionary = register_dictionary(zdict) if zdict else None
        self.codec = ChunkCodec(config.compression_level, self.dictionary)  # writer thread only
        self.dict_samples: list[bytes] = []
        self.dict_sample_bytes = 0
        self.dict_bytes = config.hot_dict_bytes
        self.level = config.compression_level
        self.index = self._new_index(index)
        try:
            loaded = self.index.load(self.env, self.dbs[b"index"])
        except Exception:  # derived data: a checkpoint that cannot be read is rebuilt
            log.exception("partition %s: index checkpoint unreadable; rebuilding", path.name)
            loaded = False
        if not loaded:
            self.index = self._new_index(index)
        self.checkpointed_at = time.monotonic()
        self.index_failed = False
        self.checkpoint_failed = False  # e.g. the disk filled: indexing goes on, checkpoints stop
        self._reindex()

    @staticmethod
    def _new_index(config: IndexConfig) -> PartitionIndex:
        return PartitionIndex(config.max_value_len, config.key_list("allow_keys"),
                              config.key_list("deny_keys"))

    def _reindex(self) -> None:
        """Index the chunks past the index watermark (written after the last checkpoint)."""
        codec = ChunkCodec(0)
        done = 0
        with self.env.begin() as txn:
            cur = txn.cursor(self.dbs[b"chunks"])
            if not cur.set_range(_SEQ.pack(self.index.watermark + 1)):
                return
            todo, size, count, last = [], 0, 0, self.index.watermark
            for _seq, value in whole((_SEQ.unpack(k)[0], v) for k, v in cur):
                todo.append(value)
                size += len(value)
                last = self.next_seq - 1  # the last stored piece
                if size >= REINDEX_BYTES:
                    count += self._index_stored(txn, codec.bodies(todo))
                    todo, size = [], 0
            if todo:
                count += self._index_stored(txn, codec.bodies(todo))
            done = count
            self.index.indexed_seq = last  # the next checkpoint persists these
        if done:
            log.info("partition %s: re-indexed %d spans past the checkpoint", self.path.name, done)

    def _index_stored(self, txn, body: bytes) -> int:
        """Index stored spans by decoding them as one OTLP request, as they arrived."""
        batch, rids, sids = self.decode_stored(txn, body)
        self.index.add(batch, np.arange(len(batch.spans)), rids, sids)
        return len(batch.spans)

    def decode_stored(self, txn, body: bytes) -> tuple[SpanBatch, np.ndarray, np.ndarray]:
        """Chunk entries (decompressed, joined) as one decoded OTLP request (``chunk.assemble``)
        with this partition's resource and scope records."""
        res, scopes = self.dbs[b"resources"], self.dbs[b"scopes"]
        return assemble(body, lambda r: txn.get(_U64.pack(r), db=res) or b"",
                        lambda s: txn.get(_U64.pack(s), db=scopes) or b"")

    def checkpoint(self) -> bool:
        """Persist what the index gained since the last checkpoint (any thread); True if it did."""
        with self._checkpoint_lock:  # the maintenance thread and the mover both checkpoint
            return self._checkpoint()

    def _checkpoint(self) -> bool:
        if self.index_failed or self.checkpoint_failed:
            return False
        self.checkpointed_at = time.monotonic()
        items = self.index.snapshot()  # under the index lock, quick
        if not items:
            return False
        try:  # encoding runs without the index lock, before the write transactions
            entries = self.index.encode_snapshot(
                items, compress=CHECKPOINT_ZSTD_LEVEL if self.index.compressed_checkpoints else 0)
            head = [e for e in entries if e[0] == b"H"]
            parts = []
            for key, value in entries:
                if key == b"H":
                    continue
                if len(value) <= CHECKPOINT_TXN_BYTES:
                    parts.append((key, value))
                else:  # a large segment in parts, so no transaction holds the writer up long
                    for i, off in enumerate(range(0, len(value), CHECKPOINT_TXN_BYTES)):
                        parts.append((key + _U16.pack(i), value[off:off + CHECKPOINT_TXN_BYTES]))
            db = self.dbs[b"index"]
            with self.env.begin(write=True) as txn:  # parts left by an interrupted checkpoint
                cur = txn.cursor(db)
                for key in {k[:5] for k, _v in parts if k[:1] in b"CTSORDKPA"}:
                    if cur.set_range(key):
                        while cur.key()[:5] == key and cur.delete():
                            pass
            group, size = [], 0
            for key, value in parts:
                group.append((key, value))
                size += len(value)
                if size >= CHECKPOINT_TXN_BYTES:
                    with self.env.begin(write=True) as txn:
                        txn.cursor(db).putmulti(group)
                    group, size = [], 0
            with self.env.begin(write=True) as txn:  # the header last: the checkpoint counts now
                txn.cursor(db).putmulti(group + head)
            return True
        except Exception:
            # The index now believes unsaved data saved: no later checkpoint may build on it.  The
            # spans are durable; the next start re-indexes past the last complete checkpoint.
            self.checkpoint_failed = True
            raise

    tier = "hot"
    corrupt = None

    def learn(self, txn, buf, offs: list, lens: list, members: list) -> None:
        """Collect span samples until there are enough, then train the partition's dictionary,
        save it in ``meta`` (in the write's transaction) and compress later chunks with it."""
        for i in members:
            self.dict_samples.append(bytes(buf[offs[i]:offs[i] + lens[i]]))
            self.dict_sample_bytes += lens[i]
        if self.dict_sample_bytes < DICT_SAMPLE_BYTES:
            return
        raw = train_dictionary(self.dict_samples, self.dict_bytes, dict_id=max(1, self.start_s) & 0xFFFFFFFF)
        self.dict_samples, self.dict_sample_bytes = [], 0
        if not raw:
            self.dict_bytes = 0  # nothing to learn from these spans: no dictionary
            return
        txn.put(b"zdict", raw, db=self.dbs[b"meta"])
        self.dictionary = register_dictionary(raw)
        self.codec = ChunkCodec(self.level, self.dictionary)

    @staticmethod
    def read_id(path: Path) -> str | None:
        try:
            return (path / "id").read_text().strip() or None
        except FileNotFoundError:
            return None

    def holds(self, trace_id: bytes) -> bool:
        """Is the trace in this partition's index (stored and kept)?"""
        return trace_id in self.index.tmap

    def service_of(self, resource_id: int) -> str | None:
        ix = self.index
        o = ix.rec_map.get((W_RESOURCE, resource_id))
        if o is None or ix.records[o][2] < 0:
            return None
        return ix.services[ix.records[o][2]]

    def close(self) -> None:
        self.env.close()

    def disk_bytes(self) -> int:
        """Bytes the partition's files take on disk (LMDB files are sparse until written)."""
        return sum(f.stat().st_blocks * 512 for f in self.path.iterdir() if f.is_file())


class HotStore(SearchMixin):
    """The writer and reader of the hot tier (implements SpanWriter, SpanReader and SpanSearcher)."""

    def __init__(self, data_dir: Path, config: StoreConfig, limits: LimitsConfig,
                 clock=time.time, index: IndexConfig | None = None):
        self.root = Path(data_dir) / "hot"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.limits = limits
        self.clock = clock
        self.index_config = index = index or IndexConfig()
        self._lock = threading.Lock()  # guards the partition lists (the writer adds, readers list)
        # Held by writes, tail decisions, deletions and the mover's swaps: a partition changes
        # tier or is rewritten only while nothing writes to it.
        self.tier_lock = threading.RLock()
        self.cold_root = Path(data_dir) / "cold"
        self.cold_root.mkdir(parents=True, exist_ok=True)
        self.index_cache = IndexCache(config.cold_index_cache_spans, self.mark_corrupt)
        self.cold: dict[str, ColdPartition] = {}  # by file name
        self.broken: dict[str, str] = {}  # cold file name → what is wrong with it (skipped)
        self._recover_tiers()
        for child in sorted(self.cold_root.iterdir()):
            if child.name.endswith(SUFFIX) and child.name.split(".")[0].isdigit():
                self.open_cold(child)
        moved = {p.meta.get("source_id") for p in self.cold.values()}
        self.partitions: dict[int, Partition] = {}
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and child.name.isdigit():
                if Partition.read_id(child) in moved:
                    # the move finished (the cold file is complete: renamed after fsync) but the
                    # hot partition was not removed yet
                    shutil.rmtree(child)
                    log.info("removed hot partition %s already moved to the cold tier", child.name)
                    continue
                self.partitions[int(child.name)] = Partition(child, int(child.name), config, index)
        self._local = threading.local()  # per-reader-thread decompressors
        self._trace_counts: dict[bytes, int] = {}
        self._closed = False
        self._maintainer = threading.Thread(target=self._maintain, name="clew-index", daemon=True)
        self._maintain_stop = threading.Event()
        self._maintainer.start()
        # Indexing runs on its own thread, after the commit: acknowledgements do not wait for it,
        # searches do (they wait until every write committed before they began is indexed).
        self._index_queue: queue.Queue = queue.Queue(maxsize=INDEX_QUEUE_WRITES)
        self._index_cond = threading.Condition()
        self._written = 0  # writes committed and handed to the indexer
        self._indexed = 0  # of those, indexed (or given up on)
        self._indexer = threading.Thread(target=self._index_loop, name="clew-indexer", daemon=True)
        self._indexer.start()

    # ---------------------------------------------------------------- tiers

    def _space_note(self) -> str:
        """Why a commit may have failed, when the disk is (nearly) full."""
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return ""
        if free < 16 << 20:
            return f" (the data directory's disk is full: {free} bytes free; retry once space frees)"
        return ""

    def _recover_tiers(self) -> None:
        """Finish or undo what a crash interrupted (docs/storage.md, "Crash safety")."""
        for child in list(self.cold_root.iterdir()):
            if child.name.endswith(".tmp"):  # a cold file never renamed into place
                child.unlink()
                log.info("removed unfinished cold file %s", child.name)
        for child in list(self.root.iterdir()):
            name = child.name
            if name.endswith(".compact"):  # a compaction never swapped in: the original stands
                shutil.rmtree(child)
            elif name.endswith(".old"):
                live = self.root / name[:-4]
                if live.exists():  # the compacted copy is in place
                    shutil.rmtree(child)
                else:
                    child.rename(live)
            elif name.endswith(".drop"):  # a removal that did not finish
                shutil.rmtree(child)

    def _new_index_for_cold(self) -> PartitionIndex:
        return Partition._new_index(self.index_config)

    def open_cold(self, path: Path) -> ColdPartition | None:
        try:
            part = ColdPartition(path, self.index_cache, self._new_index_for_cold)
        except (ColdCorrupt, OSError, ValueError, KeyError) as exc:
            self.broken[path.name] = str(exc)
            log.error("cold file %s skipped: %s", path.name, exc)
            return None
        with self._lock:
            self.cold[part.path.name] = part
            self.broken.pop(path.name, None)
        return part

    def mark_corrupt(self, part, why: str) -> None:
        """A cold file failed a check while being read: report it and skip it from now on."""
        if part.corrupt is None:
            part.corrupt = why
            log.error("cold file %s is damaged and skipped: %s", part.path.name, why)
        self.broken[part.path.name] = why

    def _readable(self) -> list:
        """Partitions of both tiers, newest first (what searches and reads look at)."""
        with self._lock:
            parts = [*self.partitions.values(), *(p for p in self.cold.values() if not p.corrupt)]
        return sorted(parts, key=lambda p: (p.start_s, p.tier == "hot"), reverse=True)

    def _index_loop(self) -> None:
        while True:
            work = self._index_queue.get()
            if work is None:
                return
            part, items, seq = work
            self._index(part, items, seq)
            with self._index_cond:
                self._indexed += 1
                self._index_cond.notify_all()

    def _await_index(self) -> None:
        """Wait until every write committed before this call is searchable (bounded)."""
        with self._index_cond:
            target = self._written
            if not self._index_cond.wait_for(lambda: self._indexed >= target, INDEX_WAIT_S):
                log.warning("search answered before the indexer caught up (%d writes behind)",
                            target - self._indexed)

    def _maintain(self) -> None:
        """Index upkeep off the writer thread: merge postings runs, checkpoint now and then."""
        while not self._maintain_stop.wait(0.05):
            for part in self._snapshot():
                try:
                    while not self._maintain_stop.is_set() and part.index.merge_step():
                        pass
                except Exception:
                    log.exception("partition %s: index upkeep failed; it will be re-indexed on "
                                  "restart", part.path.name)
                    part.index_failed = True
                try:
                    if (not part.index_failed and not part.checkpoint_failed
                            and time.monotonic() - part.checkpointed_at >= self.index_config.checkpoint_s):
                        if part.checkpoint():
                            # What the index built is long-lived: keep the cyclic collector from
                            # walking it in every full collection (queries pay for those pauses).
                            gc.freeze()
                except Exception as exc:
                    log.error("partition %s: index checkpoint failed (%s); searches are unaffected, "
                              "checkpoints of this partition stop and it is re-indexed past the last "
                              "one on restart", part.path.name, exc)

    # ---------------------------------------------------------------- writing

    def _partition_for_now(self) -> Partition:
        width = self.config.partition_s
        start = int(self.clock()) // width * width
        part = self.partitions.get(start)
        if part is None:
            part = Partition(self.root / str(start), start, self.config, self.index_config)
            with self._lock:
                self.partitions[start] = part
            log.info("opened partition %s", part.path)
        return part

    def _count_in(self, part: Partition, txn, trace_id: bytes) -> int:
        """Spans of a trace already in the partition (on a miss of the in-memory counts)."""
        total = 0
        for name in (b"traces", b"pending"):
            cur = txn.cursor(part.dbs[name])
            if cur.set_range(trace_id):
                for key, value in cur:
                    if key[:16] != trace_id:
                        break
                    total += _U32.unpack_from(value)[0]
        return total

    def write(self, batches: Sequence[SpanBatch], pending: Sequence | None = None) -> list[WriteResult]:
        """``pending[i]``, when given, is None or a bool array over ``batches[i]``'s spans: the
        spans of traces the tail stage holds (stored durably, not indexed until kept)."""
        with self.tier_lock:
            return self._write(batches, pending)

    def _write(self, batches: Sequence[SpanBatch], pending: Sequence | None) -> list[WriteResult]:
        if self._closed:
            raise StoreError("store is closed")
        try:
            part = self._partition_for_now()
        except (lmdb.Error, OSError) as exc:  # e.g. no space left for a new partition
            raise StoreError(f"cannot open a partition: {exc}") from exc
        had_dictionary = part.dictionary is not None
        learning = not had_dictionary and part.dict_bytes > 0 and part.level > 0
        limit = self.limits.max_spans_per_trace
        counts = self._trace_counts
        results = []
        chunk_items = []  # (seq key, chunk value) in sequence order
        trace_items = []  # (trace id + seq key, span count)
        record_items = {b"resources": [], b"scopes": []}
        pending_items = []  # (trace id + seq key, span count + chunk) of held traces
        to_index = []  # (batch, accepted rows, resource ids, scope ids)
        seq = part.next_seq
        min_start, max_end, total = part.min_start, part.max_end, 0
        try:
            with part.env.begin(write=True) as txn:
                for b, batch in enumerate(batches):
                    held = pending[b] if pending is not None else None
                    refusals = Refusals()
                    spans = batch.spans
                    if not len(spans):
                        results.append(WriteResult(0, refusals))
                        continue
                    rids = np.empty(len(batch.resources), np.uint64)
                    for i, (record, _service) in enumerate(batch.resources):
                        rids[i] = rid = _record_id(record)
                        self._remember(part, record_items, b"resources", rid, record)
                    sids = np.empty(len(batch.scopes), np.uint64)
                    for i, (record, _resource) in enumerate(batch.scopes):
                        sids[i] = sid = _record_id(record)
                        self._remember(part, record_items, b"scopes", sid, record)
                    hdr = headers(spans, rids, sids)
                    buf = batch.buf
                    offs = spans["span_off"].tolist()
                    lens = spans["span_len"].tolist()
                    tids, inverse = np.unique(spans["trace_id"], return_inverse=True)
                    order = np.argsort(inverse, kind="stable")
                    bounds = np.searchsorted(inverse[order], np.arange(len(tids) + 1)).tolist()
                    order = order.tolist()
                    accepted = 0
                    kept = []
                    for t, tid in enumerate(tids.tolist()):
                        members = order[bounds[t]:bounds[t + 1]]
                        have = counts.get(tid)
                        if have is None:
                            have = self._count_in(part, txn, tid)
                        room = limit - have
                        if len(members) > room:
                            cut = max(room, 0)
                            refusals.add("trace_too_many_spans",
                                         f"trace has more than {limit} spans (limits.max_spans_per_trace)",
                                         len(members) - cut)
                            members = members[:cut]
                            if not members:
                                counts[tid] = have
                                continue
                        if learning:
                            part.learn(txn, buf, offs, lens, members)
                            learning = part.dictionary is None and part.dict_bytes > 0
                        pack = part.codec.pack
                        parts = []
                        for i in members:
                            parts.append(hdr[i * 40:i * 40 + 40])
                            parts.append(buf[offs[i]:offs[i] + lens[i]])
                        key = _SEQ.pack(seq)
                        seq += 1
                        counts[tid] = have + len(members)
                        accepted += len(members)
                        if held is not None and held[members[0]]:
                            pending_items.append((tid + key, _U32.pack(len(members)) + pack(b"".join(parts))))
                            continue
                        stored = pieces(pack(b"".join(parts)))
                        chunk_items.append((key, stored[0]))
                        for piece in stored[1:]:
                            chunk_items.append((_SEQ.pack(seq), piece))
                            seq += 1
                        trace_items.append((tid + key, _U32.pack(len(members))))
                        kept.extend(members)
                    if accepted:
                        min_start = min(min_start, int(spans["start_ns"].min()))
                        max_end = max(max_end, int(spans["end_ns"].max()))
                    total += len(kept)
                    results.append(WriteResult(accepted, refusals))
                    if kept:
                        kept.sort()
                        to_index.append((batch, np.array(kept, np.int64), rids, sids))
                txn.cursor(part.dbs[b"chunks"]).putmulti(chunk_items, append=True)
                trace_items.sort()
                txn.cursor(part.dbs[b"traces"]).putmulti(trace_items)
                if pending_items:
                    pending_items.sort()
                    txn.cursor(part.dbs[b"pending"]).putmulti(pending_items)
                for name, items in record_items.items():
                    if items:
                        txn.cursor(part.dbs[name]).putmulti(items, overwrite=False)
                meta = part.dbs[b"meta"]
                txn.put(b"min_start", _U64.pack(min_start), db=meta)
                txn.put(b"max_end", _U64.pack(max_end), db=meta)
                txn.put(b"spans", _U64.pack(part.spans + total), db=meta)
        except lmdb.Error as exc:
            # The transaction was aborted: forget what it would have recorded.
            for name, items in record_items.items():
                for key, _ in items:
                    part.known_records.discard((name, key))
            for key, _ in trace_items:
                counts.pop(key[:16], None)
            if not had_dictionary and part.dictionary is not None:  # its save was rolled back
                forget_dictionary(part.dictionary.dict_id())
                part.dictionary, part.codec = None, ChunkCodec(part.level)
            raise StoreError(f"commit failed: {exc}{self._space_note()}") from exc
        part.next_seq = seq
        part.min_start, part.max_end, part.spans = min_start, max_end, part.spans + total
        with self._index_cond:
            self._written += 1
        self._index_queue.put((part, to_index, part.next_seq - 1))  # waits if the indexer lags
        if len(counts) > self.config.trace_count_cache:
            self._trim_counts()
        return results

    # ---------------------------------------------------------------- held traces (tail stage)

    def pending_trace_ids(self) -> list[bytes]:
        """Every trace with spans held for a tail decision, oldest partition first (on start)."""
        seen: dict[bytes, None] = {}
        for part in reversed(self._snapshot()):
            with part.env.begin() as txn:
                for key in txn.cursor(part.dbs[b"pending"]).iternext(keys=True, values=False):
                    seen[key[:16]] = None
        return list(seen)

    def _held(self, txn, part: Partition, trace_id: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        cur = txn.cursor(part.dbs[b"pending"])
        if cur.set_range(trace_id):
            for key, value in cur:
                if key[:16] != trace_id:
                    break
                out.append((key, value))
        return out

    def read_pending(self, trace_ids: Sequence[bytes]) -> tuple[SpanBatch, np.ndarray, list[bytes]]:
        """The held spans of ``trace_ids`` as one decoded batch, for the tail policies: returns
        (batch, trace index of each span row, the IDs that had held spans, in index order).
        Any thread."""
        codec = self._codec_for_thread()
        bodies, found = [], []
        seen: set[bytes] = set()
        for part in self._snapshot():
            with part.env.begin() as txn:
                values = []
                for tid in trace_ids:
                    for _key, value in self._held(txn, part, tid):
                        values.append(value[4:])
                        if tid not in seen:
                            seen.add(tid)
                            found.append(tid)
                if values:
                    bodies.append(part.decode_stored(txn, codec.bodies(values))[0])
        if not bodies:
            return empty_batch(), np.zeros(0, np.int64), []
        batch = concat_batches(bodies)
        # decode_stored groups spans by resource and scope: map each decoded span back to its
        # trace by its trace ID rather than by position.
        index = {tid: i for i, tid in enumerate(found)}
        tids = batch.spans["trace_id"].tolist()
        return batch, np.fromiter((index[t] for t in tids), np.int64, len(tids)), found

    def resolve_pending(self, keep: Sequence[bytes], drop: Sequence[bytes]) -> tuple[int, int]:
        """Apply tail decisions in one transaction per partition: the held spans of ``keep`` move
        to the chunk log and are indexed; those of ``drop`` are deleted.  Writer thread only.
        Returns (spans kept, spans dropped)."""
        with self.tier_lock:
            return self._resolve_pending(keep, drop)

    def _resolve_pending(self, keep: Sequence[bytes], drop: Sequence[bytes]) -> tuple[int, int]:
        if self._closed:
            raise StoreError("store is closed")
        kept = dropped = 0
        codec = self._codec_for_thread()
        for part in self._snapshot():
            moved, chunk_items, trace_items, deletes = [], [], [], []
            moved_spans = 0
            seq = part.next_seq
            try:
                with part.env.begin(write=True) as txn:
                    for tid in drop:
                        for key, value in self._held(txn, part, tid):
                            deletes.append(key)
                            dropped += _U32.unpack_from(value)[0]
                    for tid in keep:
                        for key, value in self._held(txn, part, tid):
                            deletes.append(key)
                            count = _U32.unpack_from(value)[0]
                            seq_key = _SEQ.pack(seq)
                            for piece in pieces(value[4:]):
                                chunk_items.append((_SEQ.pack(seq), piece))
                                seq += 1
                            trace_items.append((tid + seq_key, value[:4]))
                            moved.append(value[4:])
                            moved_spans += count
                            kept += count
                    if not deletes:
                        continue
                    pend = part.dbs[b"pending"]
                    for key in deletes:
                        txn.delete(key, db=pend)
                    if chunk_items:
                        txn.cursor(part.dbs[b"chunks"]).putmulti(chunk_items, append=True)
                        trace_items.sort()
                        txn.cursor(part.dbs[b"traces"]).putmulti(trace_items)
                        txn.put(b"spans", _U64.pack(part.spans + moved_spans), db=part.dbs[b"meta"])
                    to_index = []
                    if moved:
                        batch, rids, sids = part.decode_stored(txn, codec.bodies(moved))
                        to_index.append((batch, np.arange(len(batch.spans)), rids, sids))
            except lmdb.Error as exc:
                raise StoreError(f"tail decision commit failed: {exc}") from exc
            if not deletes:
                continue
            part.next_seq = seq
            part.spans += moved_spans
            with self._index_cond:
                self._written += 1
            self._index_queue.put((part, to_index, seq - 1))
        return kept, dropped

    def _index(self, part: Partition, items: list, seq: int) -> None:
        """Index what was committed up to chunk ``seq`` (indexer thread).  An indexing failure is
        logged and never fails the write: the spans are durable and re-indexed on restart."""
        if part.index_failed:
            return  # logged once; the partition is re-indexed from its chunks on restart
        try:
            part.index.add_many(items, seq)
        except Exception:
            part.index_failed = True  # never checkpoint past spans the index missed
            log.exception("partition %s: indexing failed; the spans are stored and will be "
                          "re-indexed on restart", part.path.name)

    @staticmethod
    def _remember(part: Partition, items: dict, name: bytes, rid: int, record: bytes) -> None:
        key = _U64.pack(rid)
        if (name, key) not in part.known_records:
            part.known_records.add((name, key))
            items[name].append((key, record))

    def _trim_counts(self) -> None:
        """Forget the older half of the per-trace counts (dicts keep insertion order)."""
        keep = len(self._trace_counts) // 2
        items = list(self._trace_counts.items())[-keep:]
        self._trace_counts = dict(items)

    def close(self) -> None:
        self._closed = True
        self._index_queue.put(None)  # index what is queued, then stop
        self._indexer.join()
        self._maintain_stop.set()
        self._maintainer.join()
        with self._lock:
            for part in self.partitions.values():
                try:
                    part.checkpoint()
                except Exception:
                    log.exception("partition %s: index checkpoint failed at close", part.path.name)
                part.close()
            self.partitions.clear()

    # ---------------------------------------------------------------- reading

    def _codec_for_thread(self) -> ChunkCodec:
        codec = getattr(self._local, "codec", None)
        if codec is None:
            codec = self._local.codec = ChunkCodec(0)
        return codec

    def _snapshot(self) -> list[Partition]:
        with self._lock:
            return sorted(self.partitions.values(), key=lambda p: p.start_s, reverse=True)

    def get_trace(self, trace_id: bytes) -> Trace | None:
        if len(trace_id) != 16:
            raise ValueError("trace ID must be 16 bytes")
        codec = self._codec_for_thread()
        trace = Trace(trace_id)
        found = []
        for part in self._readable():
            if part.tier == "cold":
                try:
                    spans = part.read_trace(trace_id)
                    records = [(s.resource_id, part.record(1, s.resource_id),
                                s.scope_id, part.record(2, s.scope_id)) for s in spans]
                except ColdCorrupt as exc:  # reported, skipped; the other files still answer
                    self.mark_corrupt(part, str(exc))
                    continue
                for rid, resource, sid, scope in records:
                    trace.resources.setdefault(rid, resource)
                    trace.scopes.setdefault(sid, scope)
                found.extend(spans)
                continue
            with part.env.begin() as txn:
                cur = txn.cursor(part.dbs[b"traces"])
                seqs = []
                if cur.set_range(trace_id):
                    for key in cur.iternext(keys=True, values=False):
                        if key[:16] != trace_id:
                            break
                        seqs.append(key[16:])
                held = self._held(txn, part, trace_id)
                if not seqs and not held:
                    continue
                chunks = part.dbs[b"chunks"]
                spans = []
                for seq in seqs:
                    value = gather(lambda q: txn.get(_SEQ.pack(q), db=chunks), _SEQ.unpack(seq)[0])
                    if value is None:
                        raise StoreError(f"partition {part.path.name}: chunk {seq.hex()} is missing")
                    spans.extend(codec.unpack(value))
                for _key, value in held:  # spans awaiting a tail decision are readable by ID
                    spans.extend(codec.unpack(value[4:]))
                for name, table in ((b"resources", trace.resources), (b"scopes", trace.scopes)):
                    db = part.dbs[name]
                    for rid in {s.resource_id if name == b"resources" else s.scope_id for s in spans}:
                        if rid not in table:
                            table[rid] = txn.get(_U64.pack(rid), db=db) or b""
                found.extend(spans)
        if not found:
            return None
        trace.spans = dedupe(found)
        return trace

    def stats(self) -> dict:
        """Totals per tier (``/metrics``; ``Lifecycle.report`` gives the full picture)."""
        with self._lock:
            hot, cold = list(self.partitions.values()), list(self.cold.values())
        tiers = {name: {"partitions": len(parts), "spans": sum(p.spans for p in parts),
                        "disk_bytes": sum(p.disk_bytes() for p in parts)}
                 for name, parts in (("hot", hot), ("cold", cold))}
        return {"partitions": len(hot), "spans": sum(t["spans"] for t in tiers.values()),
                "disk_bytes": sum(t["disk_bytes"] for t in tiers.values()), "tiers": tiers,
                "broken_cold_files": len(self.broken)}
