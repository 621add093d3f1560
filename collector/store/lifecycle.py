"""Tier stage: what happens to stored data as it ages — the mover, retention, the disk budget,
pins, deletion and the audit log (docs/storage.md).

A background thread (``clew-lifecycle``) wakes every ``store.lifecycle_interval_s``:

1. **move**: a hot partition whose window ended more than ``store.hot_window_s`` ago becomes a
   cold file (``collector/store/cold.py``): written under a temporary name, fsynced, renamed,
   then the hot partition is removed.  The rename happens under the store's tier lock after
   checking nothing was written to the partition meanwhile.  Spans still held for a tail
   decision in a moved partition are expired (counted, logged).
2. **retention**: a partition older than ``store.cold_window_s`` is deleted;
3. **budget**: past ``store.max_disk_bytes``, the oldest cold files go first, then the oldest
   hot partitions (never the one taking writes);
4. **scrub**: one cold file not yet checked has every checksum verified.

Pinned traces (``Pins``: incidents and single pins) survive 2 and 3: a file that must go but
holds pinned traces is rewritten to hold only those.  Deletion (compliance) removes traces from
both tiers so their bytes are gone from every file: cold files are rewritten (dictionary and
index rebuilt from what stays), hot partitions are compacted into a fresh LMDB copy and
re-indexed.  Deletions, pins and incidents are recorded in ``DATA_DIR/audit.log``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import lmdb
import numpy as np

from collector.config import StoreConfig
from collector.errors import StoreError
from collector.store.chunk import CONTINUES, MORE, ChunkCodec, forget_dictionary, gather, train_dictionary, whole
from collector.store.cold import (DICT_SAMPLE_BYTES, SUFFIX, ColdCorrupt, ColdPartition, ColdWriter,
                                  chunk_body, entries_of, fsync_dir)
from collector.store.hot import REINDEX_BYTES, HotStore, Partition
from collector.store.terms import W_RESOURCE

log = logging.getLogger("clew.store.lifecycle")

_SEQ = struct.Struct(">Q")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
DICT_SAMPLE_CHUNKS = 2000  # chunks sampled (evenly over the partition) to train a dictionary
RETIRE_S = 30.0  # replaced environments and maps stay open this long for readers still on them


class _Pace:
    """Keeps background work to a share of wall time: after each slice of work it sleeps so
    that work / (work + sleep) stays at ``duty``.  The mover competes with ingest for the
    interpreter; pausing keeps acknowledgement latency steady while a partition moves."""

    SLICE_S = 0.005

    def __init__(self, duty: float, stop: threading.Event):
        self.duty = duty
        self.stop = stop
        self.started = time.perf_counter()

    def step(self) -> None:
        worked = time.perf_counter() - self.started
        if worked < self.SLICE_S:
            return
        if self.duty < 1:
            self.stop.wait(worked * (1 - self.duty) / self.duty)
        self.started = time.perf_counter()


def _now_iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _atomic_json(path: Path, doc) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def du(path: Path) -> int:
    """Bytes the files under ``path`` take on disk."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Pins:
    """Incidents and pinned traces, kept in ``DATA_DIR/incidents.json`` (written atomically).

    A trace is pinned while at least one reason holds it: an incident listing it, or a single
    pin (reason ``""``).  Pinned traces are kept past retention and the disk budget."""

    def __init__(self, path: Path, clock=time.time):
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        doc = json.loads(path.read_text()) if path.exists() else {}
        self.incidents: dict[str, dict] = doc.get("incidents", {})
        self.pins: dict[str, list[str]] = doc.get("pins", {})  # trace ID hex → reasons

    def _save(self) -> None:
        _atomic_json(self.path, {"incidents": self.incidents, "pins": self.pins})

    def pinned(self) -> set[bytes]:
        with self._lock:
            return {bytes.fromhex(t) for t, why in self.pins.items() if why}

    def reasons(self, trace_hex: str) -> list[str]:
        with self._lock:
            return list(self.pins.get(trace_hex, []))

    def incident_list(self, trace_hex: str | None = None) -> list[dict]:
        """Copies of the incidents (only those listing ``trace_hex`` when given)."""
        with self._lock:
            return [{**i, "trace_ids": list(i["trace_ids"])} for i in self.incidents.values()
                    if trace_hex is None or trace_hex in i["trace_ids"]]

    def incident(self, incident_id: str) -> dict | None:
        """A copy of one incident, or None."""
        with self._lock:
            i = self.incidents.get(incident_id)
            return None if i is None else {**i, "trace_ids": list(i["trace_ids"])}

    def pinned_reasons(self) -> dict[str, list[str]]:
        """Trace ID hex → the reasons holding it, for every pinned trace."""
        with self._lock:
            return {t: list(why) for t, why in self.pins.items() if why}

    def add_incident(self, incident: dict) -> dict:
        with self._lock:
            have = self.incidents.get(incident["id"])
            if have is not None:
                incident["created"] = have["created"]
                for t in have["trace_ids"]:
                    if t not in incident["trace_ids"]:
                        self._unpin(t, incident["id"])
            self.incidents[incident["id"]] = incident
            for t in incident["trace_ids"]:
                self._pin(t, incident["id"])
            self._save()
            return incident

    def remove_incident(self, incident_id: str) -> dict | None:
        with self._lock:
            incident = self.incidents.pop(incident_id, None)
            if incident is not None:
                for t in incident["trace_ids"]:
                    self._unpin(t, incident_id)
                self._save()
            return incident

    def pin(self, trace_hex: str, incident_id: str = "") -> list[str]:
        with self._lock:
            if incident_id:
                incident = self.incidents[incident_id]
                if trace_hex not in incident["trace_ids"]:
                    incident["trace_ids"].append(trace_hex)
            self._pin(trace_hex, incident_id)
            self._save()
            return list(self.pins[trace_hex])

    def unpin(self, trace_hex: str, incident_id: str | None = None) -> list[str]:
        """Drop one reason (``incident_id``; ``""`` the single pin) or, with None, every one."""
        with self._lock:
            for why in list(self.pins.get(trace_hex, [])):
                if incident_id is None or why == incident_id:
                    self._unpin(trace_hex, why)
                    if why:
                        ids = self.incidents[why]["trace_ids"]
                        if trace_hex in ids:
                            ids.remove(trace_hex)
            self._save()
            return list(self.pins.get(trace_hex, []))

    def _pin(self, trace_hex: str, why: str) -> None:
        reasons = self.pins.setdefault(trace_hex, [])
        if why not in reasons:
            reasons.append(why)

    def _unpin(self, trace_hex: str, why: str) -> None:
        reasons = self.pins.get(trace_hex, [])
        if why in reasons:
            reasons.remove(why)
        if not reasons:
            self.pins.pop(trace_hex, None)


class Audit:
    """``DATA_DIR/audit.log``: one JSON object a line, appended and fsynced before the action
    is reported done."""

    def __init__(self, path: Path, clock=time.time):
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()

    def record(self, action: str, **fields) -> dict:
        entry = {"time": _now_iso(self.clock()), "action": action, **fields}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return entry

    def entries(self, limit: int = 100, action: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        with self._lock:
            lines = self.path.read_text().splitlines()
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-append
            if action is None or entry.get("action") == action:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out


class Lifecycle:
    """The mover, retention, budget, scrub and deletion over one ``HotStore``'s two tiers."""

    def __init__(self, store: HotStore, data_dir: Path, config: StoreConfig, clock=time.time):
        self.store = store
        self.data_dir = Path(data_dir)
        self.config = config
        self.clock = clock
        self.pins = Pins(self.data_dir / "incidents.json", clock)
        self.audit = Audit(self.data_dir / "audit.log", clock)
        self.counters = {"moved_partitions": 0, "moved_spans": 0, "expired_pending_spans": 0,
                         "dropped_retention": 0, "dropped_budget": 0, "rewritten_files": 0,
                         "deleted_spans": 0, "move_failures": 0}
        self.last_move_s: float | None = None
        self.over_budget = False
        self._retired: list[tuple[float, object]] = []
        self._verified: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()  # one lifecycle operation at a time (thread or API)

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clew-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._close_retired(force=True)

    def _run(self) -> None:
        while not self._stop.wait(self.config.lifecycle_interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("storage lifecycle pass failed; it runs again in %.0f s",
                              self.config.lifecycle_interval_s)

    def tick(self) -> None:
        """One pass: move, expire, keep to the budget, scrub one file."""
        with self._busy:
            self._close_retired()
            for part in self.due_for_move():
                if self._stop.is_set():
                    return
                self.move(part)
            self.expire()
            self.enforce_budget()
            self.warm()
            self.scrub_one()

    def _retire(self, thing) -> None:
        self._retired.append((time.monotonic(), thing))

    def _close_retired(self, force: bool = False) -> None:
        keep = []
        for when, thing in self._retired:
            if force or time.monotonic() - when >= RETIRE_S:
                try:
                    thing.close()
                except Exception:
                    log.exception("closing a replaced partition failed")
            else:
                keep.append((when, thing))
        self._retired = keep

    # ------------------------------------------------------------------ ages

    def _end_s(self, part) -> float:
        width = part.meta.get("partition_s", self.config.partition_s) if part.tier == "cold" \
            else self.config.partition_s
        return part.start_s + width

    def _current_start(self) -> int:
        width = self.config.partition_s
        return int(self.store.clock()) // width * width

    def due_for_move(self) -> list[Partition]:
        now = self.clock()
        current = self._current_start()
        with self.store._lock:
            hot = sorted(self.store.partitions.values(), key=lambda p: p.start_s)
        return [p for p in hot if p.start_s != current
                and self._end_s(p) + self.config.hot_window_s <= now]

    # ------------------------------------------------------------------ move

    def move(self, part: Partition) -> ColdPartition | None:
        """Convert a hot partition into a cold file, then remove it (crash-safe: see module)."""
        store = self.store
        store._await_index()
        for _attempt in range(3):
            seq0 = part.next_seq
            try:
                writer, pending_spans = self._write_from_hot(part)
            except (lmdb.Error, OSError, StoreError) as exc:
                self.counters["move_failures"] += 1
                log.error("moving partition %s failed (it stays hot, retried later): %s",
                          part.path.name, exc)
                return None
            with store.tier_lock:
                if part.next_seq != seq0 or store.partitions.get(part.start_s) is not part:
                    writer.abort()  # written to meanwhile (a late tail decision): convert again
                    continue
                writer.commit()
                cold = store.open_cold(writer.path)
                if cold is not None and not part.index_failed:
                    store.index_cache.put(cold, part.index)  # no need to load it back
                self._drop_hot(part)
            self.counters["moved_partitions"] += 1
            self.counters["moved_spans"] += cold.spans if cold else 0
            self.last_move_s = self.clock()
            if pending_spans:
                self.counters["expired_pending_spans"] += pending_spans
                log.warning("partition %s: %d spans still awaiting a tail decision expired with "
                            "the move", part.path.name, pending_spans)
            log.info("moved partition %s to the cold tier (%d spans, %d bytes)", part.path.name,
                     cold.spans if cold else 0, cold.size if cold else 0)
            return cold
        log.warning("partition %s kept changing; its move is retried later", part.path.name)
        return None

    def _cold_name(self, start_s: int) -> Path:
        """``cold/<start>.clew``, or ``<start>.<n>.clew`` when a file of that start exists (a
        partition re-opened after its window was moved, e.g. after the clock went back)."""
        root = self.store.cold_root
        path, n = root / f"{start_s}{SUFFIX}", 1
        while path.exists() or path.with_name(path.name + ".tmp").exists():
            path, n = root / f"{start_s}.{n}{SUFFIX}", n + 1
        return path

    def _write_from_hot(self, part: Partition) -> tuple[ColdWriter, int]:
        codec = ChunkCodec(0)
        cfg = self.config
        with part.env.begin(buffers=False) as txn:
            # a dictionary trained on chunks sampled evenly over the partition
            samples, size = [], 0
            last = part.next_seq - 1
            step = max(1, last // DICT_SAMPLE_CHUNKS)
            get = lambda q: txn.get(_SEQ.pack(q), db=part.dbs[b"chunks"])  # noqa: E731
            for seq in range(1, last + 1, step):
                first = get(seq)
                if first is None or first[0] & CONTINUES:
                    continue
                value = gather(get, seq)
                _h, spans = entries_of(codec.body(value))
                samples += spans
                size += sum(len(s) for s in spans)
                if size >= DICT_SAMPLE_BYTES:
                    break
            dictionary = train_dictionary(samples, cfg.cold_dict_bytes)
            writer = ColdWriter(self._cold_name(part.start_s),
                                level=cfg.cold_compression_level, block_bytes=cfg.cold_block_bytes,
                                dictionary=dictionary)
            try:
                chunks = part.dbs[b"chunks"]
                pace = _Pace(cfg.mover_duty, self._stop)
                tid, bodies = None, []
                for key in txn.cursor(part.dbs[b"traces"]).iternext(keys=True, values=False):
                    if key[:16] != tid:
                        if bodies:
                            writer.add(tid, *entries_of(b"".join(bodies)))
                            if self._stop.is_set():  # shutting down: the move is redone later
                                raise StoreError("the server is stopping")
                            pace.step()
                        tid, bodies = key[:16], []
                    value = gather(lambda q: txn.get(_SEQ.pack(q), db=chunks), _SEQ.unpack(key[16:])[0])
                    if value is None:
                        raise StoreError(f"partition {part.path.name}: chunk {key[16:].hex()} is missing")
                    bodies.append(codec.body(value))
                if bodies:
                    writer.add(tid, *entries_of(b"".join(bodies)))
                pending = sum(_U32.unpack_from(v)[0] for v in
                              txn.cursor(part.dbs[b"pending"]).iternext(keys=False, values=True))
                records = [(1, _U64.unpack(k)[0], bytes(v)) for k, v in txn.cursor(part.dbs[b"resources"])]
                records += [(2, _U64.unpack(k)[0], bytes(v)) for k, v in txn.cursor(part.dbs[b"scopes"])]
            except BaseException:
                writer.abort()
                raise
        index = self._index_from_hot(part) if part.index_failed else part.index
        try:
            meta = self._meta(part.start_s, part.min_start, part.max_end, index, "move")
            meta["source_id"] = part.uid
            # the index section (most of the work left) is made, compressed and written in paced
            # slices too: done at once it held the interpreter for seconds (ingest stalled)
            writer.finish(records, index.export_parts(pace.step), meta, pace=pace.step)
        except BaseException:
            writer.abort()
            raise
        return writer, pending

    def _meta(self, start_s: int, min_start: int, max_end: int, index, source: str,
              width: int | None = None, pinned_only: bool = False) -> dict:
        services = {}
        for where, rid, svc in index.records:
            if where == W_RESOURCE and svc >= 0:
                services[str(rid)] = index.services[svc]
        return {"partition_start_s": start_s, "partition_s": width or self.config.partition_s,
                "min_start_ns": int(min_start), "max_end_ns": int(max_end),
                "created_s": int(self.clock()), "source": source, "pinned_only": pinned_only,
                "resource_services": services}

    def _index_from_hot(self, part: Partition):
        """A fresh index of every chunk of a hot partition (when its own index failed)."""
        index = self.store._new_index_for_cold()
        codec = ChunkCodec(0)
        with part.env.begin() as txn:
            todo, size = [], 0
            for _seq, value in whole((_SEQ.unpack(k)[0], v) for k, v in txn.cursor(part.dbs[b"chunks"])):
                todo.append(value)
                size += len(value)
                if size >= REINDEX_BYTES:
                    batch, rids, sids = part.decode_stored(txn, codec.bodies(todo))
                    index.add(batch, np.arange(len(batch.spans)), rids, sids)
                    todo, size = [], 0
            if todo:
                batch, rids, sids = part.decode_stored(txn, codec.bodies(todo))
                index.add(batch, np.arange(len(batch.spans)), rids, sids)
        return index

    # ------------------------------------------------------------------ rewrite (cold)

    def rewrite(self, part: ColdPartition, keep, *, pinned_only: bool = False,
                source: str = "rewrite") -> tuple[ColdPartition | None, int]:
        """Rewrite a cold file with only the traces ``keep(trace_id)`` accepts (dictionary and
        index rebuilt from what stays, so nothing of the rest remains in the file).  Returns
        the new file (None: nothing stayed, the file is gone) and the spans removed."""
        store, cfg = self.store, self.config
        kept, removed, samples, size = [], 0, [], 0
        for i, tid in enumerate(part.trace_ids()):
            if keep(tid):
                kept.append(i)
            else:
                removed += int(part.table["count"][i])
        if not removed:
            return part, 0
        if not kept:
            self._drop_cold(part)
            return None, removed
        step = max(1, len(kept) // DICT_SAMPLE_CHUNKS)
        blocks: dict[int, tuple] = {}

        def entries(i):
            b = int(part.table["block"][i])
            if b not in blocks:
                blocks.clear()
                blocks[b] = part.block(b)
            hdr, offs, area = blocks[b]
            first, count = int(part.table["first"][i]), int(part.table["count"][i])
            return hdr[first:first + count], [bytes(area[int(offs[j]):int(offs[j]) + int(hdr["span_len"][j])])
                                              for j in range(first, first + count)]

        for i in kept[::step]:
            _h, spans = entries(i)
            samples += spans
            size += sum(len(s) for s in spans)
            if size >= DICT_SAMPLE_BYTES:
                break
        writer = ColdWriter(part.path, level=cfg.cold_compression_level, block_bytes=cfg.cold_block_bytes,
                            dictionary=train_dictionary(samples, cfg.cold_dict_bytes))
        try:
            index = store._new_index_for_cold()
            ids = part.trace_ids()
            todo, todo_bytes, used = [], 0, set()
            min_start, max_end = 2**64 - 1, 0
            pace = _Pace(cfg.mover_duty, self._stop)
            for i in kept:
                pace.step()
                hdr, spans = entries(i)
                writer.add(ids[i], hdr, spans)
                body = chunk_body(hdr, np.concatenate(([0], np.cumsum(hdr["span_len"].astype(np.int64))[:-1])),
                                  b"".join(spans), 0, len(hdr))
                todo.append(body)
                todo_bytes += len(body)
                used.update((1, r) for r in hdr["resource_id"].tolist())
                used.update((2, s) for s in hdr["scope_id"].tolist())
                if len(hdr):
                    min_start = min(min_start, int(hdr["start_ns"].min()))
                    max_end = max(max_end, int(hdr["end_ns"].max()))
                if todo_bytes >= REINDEX_BYTES:
                    self._index_body(index, part, b"".join(todo))
                    todo, todo_bytes = [], 0
            if todo:
                self._index_body(index, part, b"".join(todo))
            records = [(k, r, part.record(k, r)) for (k, r) in sorted(used)]
            meta = self._meta(part.start_s, min_start, max_end, index, source,
                              part.meta.get("partition_s"), pinned_only)
            meta["source_id"] = part.meta.get("source_id")
            writer.finish(records, index.export_parts(pace.step), meta, pace=pace.step)
        except BaseException:
            writer.abort()
            raise
        with store.tier_lock:
            writer.commit()
            store.index_cache.forget(part.path)
            with store._lock:
                store.cold.pop(part.path.name, None)
            new = store.open_cold(part.path)
        self._retire(part)
        self._verified.discard(part.path)
        self.counters["rewritten_files"] += 1
        return new, removed

    @staticmethod
    def _index_body(index, part: ColdPartition, body: bytes) -> None:
        batch, rids, sids = part.decode(body)
        index.add(batch, np.arange(len(batch.spans)), rids, sids)

    def _drop_cold(self, part: ColdPartition) -> None:
        store = self.store
        with store.tier_lock:
            with store._lock:
                store.cold.pop(part.path.name, None)
            part.path.unlink(missing_ok=True)
            fsync_dir(part.path.parent)
            store.index_cache.forget(part.path)
        self._retire(part)

    def _drop_hot(self, part: Partition) -> None:
        """Take a hot partition out of service and remove its directory (``<start>.drop`` first,
        so a crash midway leaves nothing that opens as a partition)."""
        store = self.store
        with store.tier_lock:
            with store._lock:
                store.partitions.pop(part.start_s, None)
            gone = part.path.with_name(part.path.name + ".drop")
            part.path.rename(gone)
        shutil.rmtree(gone, ignore_errors=True)
        self._retire(part)
        if part.dictionary is not None:
            forget_dictionary(part.dictionary.dict_id())

    # ------------------------------------------------------------------ retention and budget

    def _let_go(self, part, reason: str) -> int:
        """Remove a partition for retention or budget, keeping its pinned traces; returns the
        bytes freed (0: nothing could go)."""
        before = part.disk_bytes()
        if part.tier == "hot":
            pinned = [t for t in self.pins.pinned() if part.holds(t)]
            if not pinned:
                self._drop_hot(part)
                log.info("dropped hot partition %s (%s)", part.path.name, reason)
                self.counters[f"dropped_{reason}"] += 1
                return before
            part = self.move(part)  # pinned traces survive in a cold file
            if part is None:
                return 0
        pinned = {t for t in self.pins.pinned() if part.holds(t)}
        if pinned and part.meta.get("pinned_only") and part.traces == len(pinned):
            return 0  # only pinned traces left: kept
        new, _removed = self.rewrite(part, lambda t: t in pinned, pinned_only=True, source=reason) \
            if pinned else (None, self._drop_cold(part))
        self.counters[f"dropped_{reason}"] += 1
        log.info("%s: cold file %s %s", reason, part.path.name,
                 "rewritten to its pinned traces" if new else "deleted")
        return before - (new.disk_bytes() if new else 0)

    def expire(self) -> None:
        now = self.clock()
        with self.store._lock:
            parts = [*self.store.partitions.values(), *self.store.cold.values()]
        current = self._current_start()
        for part in sorted(parts, key=lambda p: p.start_s):
            if part.tier == "hot" and part.start_s == current:
                continue
            if self._end_s(part) + self.config.cold_window_s <= now:
                self._let_go(part, "retention")

    def usage(self) -> int:
        return du(self.data_dir)

    def enforce_budget(self) -> None:
        limit = self.config.max_disk_bytes
        if not limit:
            return
        used = self.usage()
        if used <= limit:
            self.over_budget = False
            return
        current = self._current_start()
        with self.store._lock:
            cold = sorted(self.store.cold.values(), key=lambda p: p.start_s)
            hot = sorted((p for p in self.store.partitions.values() if p.start_s != current),
                         key=lambda p: p.start_s)
        for part in [*cold, *hot]:  # the oldest cold data first, then the oldest hot
            if used <= limit:
                break
            used -= self._let_go(part, "budget")
        used = self.usage()
        if used > limit and not self.over_budget:
            log.warning("data directory uses %d bytes, over the %d-byte budget, and nothing more "
                        "can go (pinned traces and the partition taking writes stay)", used, limit)
        self.over_budget = used > limit

    def warm(self) -> None:
        """Load the newest cold indexes into the cache while it has room (after a start), so
        the first search over recent cold data does not pay for loading them."""
        cache = self.store.index_cache
        with self.store._lock:
            cold = sorted(self.store.cold.values(), key=lambda p: p.start_s, reverse=True)
        budget = time.monotonic() + 1.0  # a second a pass: the other duties come round too
        for part in cold:
            if self._stop.is_set() or cache.full() or time.monotonic() > budget:
                return
            if not part.corrupt and not cache.cached(part.path):
                cache.get(part)

    # ------------------------------------------------------------------ scrub

    def scrub_one(self) -> None:
        with self.store._lock:
            todo = [p for p in self.store.cold.values() if p.path not in self._verified and not p.corrupt]
        if not todo:
            return
        part = min(todo, key=lambda p: p.start_s)
        try:
            part.verify()
        except ColdCorrupt as exc:
            self.store.mark_corrupt(part, str(exc))
        self._verified.add(part.path)

    # ------------------------------------------------------------------ deletion

    def delete_hot(self, trace_ids: set[bytes]) -> dict:
        """Remove traces from the hot tier (run on the writer thread: partitions are compacted
        and reopened).  Returns spans removed and partitions rewritten."""
        store = self.store
        spans, touched = 0, []
        with store.tier_lock:
            for part in sorted(store.partitions.values(), key=lambda p: p.start_s):
                removed = self._delete_in(part, trace_ids)
                if removed is None:
                    continue
                spans += removed
                touched.append(part.path.name)
                self._compact(part)
            for tid in trace_ids:
                store._trace_counts.pop(tid, None)
        self.counters["deleted_spans"] += spans
        return {"spans": spans, "hot_partitions": touched}

    @staticmethod
    def _delete_in(part: Partition, trace_ids: set[bytes]) -> int | None:
        removed, found = 0, False
        with part.env.begin(write=True) as txn:
            for tid in sorted(trace_ids):
                for name in (b"traces", b"pending"):
                    cur = txn.cursor(part.dbs[name])
                    keys = []
                    if cur.set_range(tid):
                        for key, value in cur:
                            if key[:16] != tid:
                                break
                            keys.append(key)
                            removed += _U32.unpack_from(value)[0]
                    for key in keys:
                        txn.delete(key, db=part.dbs[name])
                        if name == b"traces":  # the chunk and its pieces
                            seq = _SEQ.unpack(key[16:])[0]
                            while True:
                                value = txn.get(_SEQ.pack(seq), db=part.dbs[b"chunks"])
                                txn.delete(_SEQ.pack(seq), db=part.dbs[b"chunks"])
                                if value is None or not value[0] & MORE:
                                    break
                                seq += 1
                        found = True
            if not found:
                return None
            txn.drop(part.dbs[b"index"], delete=False)  # it names the deleted values: rebuilt
            spans = _U64.unpack(txn.get(b"spans", db=part.dbs[b"meta"]) or _U64.pack(0))[0]
            txn.put(b"spans", _U64.pack(max(0, spans - removed)), db=part.dbs[b"meta"])
        return removed

    def _compact(self, part: Partition) -> None:
        """Copy the partition's live pages into a fresh environment (freed pages of an LMDB file
        keep old bytes) and reopen it, re-indexed from its chunks."""
        store = self.store
        fresh = part.path.with_name(part.path.name + ".compact")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        part.env.copy(str(fresh), compact=True)
        for f in fresh.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        old = part.path.with_name(part.path.name + ".old")
        part.path.rename(old)
        fresh.rename(part.path)
        fsync_dir(part.path.parent)
        reopened = Partition(part.path, part.start_s, store.config, store.index_config)
        with store._lock:
            store.partitions[part.start_s] = reopened
        shutil.rmtree(old, ignore_errors=True)
        self._retire(part)

    def delete_cold(self, trace_ids: set[bytes]) -> dict:
        spans, files = 0, []
        with self._busy:
            with self.store._lock:
                cold = sorted(self.store.cold.values(), key=lambda p: p.start_s)
            for part in cold:
                if not any(part.holds(t) for t in trace_ids):
                    continue
                _new, removed = self.rewrite(part, lambda t: t not in trace_ids, source="deletion")
                spans += removed
                files.append(part.path.name)
            self.counters["deleted_spans"] += spans
        return {"spans": spans, "cold_files": files}

    # ------------------------------------------------------------------ report

    def oldest(self) -> dict[str, int]:
        """Start (epoch s) of the oldest partition of each tier that has one."""
        with self.store._lock:
            parts = [*self.store.partitions.values(), *self.store.cold.values()]
        out: dict[str, int] = {}
        for p in parts:
            out[p.tier] = min(out.get(p.tier, p.start_s), p.start_s)
        return out

    def report(self) -> dict:
        """What ``GET /api/v1/storage`` answers."""
        store = self.store
        with store._lock:
            hot = sorted(store.partitions.values(), key=lambda p: p.start_s)
            cold = sorted(store.cold.values(), key=lambda p: p.start_s)
        pinned = self.pins.pinned()
        parts, tiers = [], {}
        for part in [*hot, *cold]:
            size = part.disk_bytes()
            row = {"tier": part.tier, "start": _now_iso(part.start_s),
                   "start_s": part.start_s, "end_s": int(self._end_s(part)),
                   "spans": int(part.spans), "bytes": size,
                   "bytes_per_span": round(size / part.spans, 1) if part.spans else None,
                   "oldest_span_ns": int(part.min_start) if part.spans else None,
                   "newest_span_end_ns": int(part.max_end) if part.spans else None}
            if part.tier == "cold":
                row.update(file=part.path.name, traces=part.traces, blocks=len(part.blocks),
                           pinned_only=bool(part.meta.get("pinned_only")),
                           source=part.meta.get("source"),
                           pinned_traces=sum(1 for t in pinned if part.holds(t)),
                           damaged=part.corrupt)
            parts.append(row)
            t = tiers.setdefault(part.tier, {"partitions": 0, "spans": 0, "bytes": 0, "oldest_s": None})
            t["partitions"] += 1
            t["spans"] += int(part.spans)
            t["bytes"] += size
            if t["oldest_s"] is None:
                t["oldest_s"] = part.start_s
        for name in ("hot", "cold"):
            t = tiers.setdefault(name, {"partitions": 0, "spans": 0, "bytes": 0, "oldest_s": None})
            t["bytes_per_span"] = round(t["bytes"] / t["spans"], 1) if t["spans"] else None
        used = self.usage()
        limit = self.config.max_disk_bytes
        return {
            "data_dir_bytes": used,
            "budget": {"max_bytes": limit or None, "used_bytes": used,
                       "used_fraction": round(used / limit, 4) if limit else None,
                       "over": self.over_budget},
            "hot_window_s": self.config.hot_window_s, "cold_window_s": self.config.cold_window_s,
            "tiers": tiers, "partitions": parts,
            "damaged_files": [{"file": name, "error": why} for name, why in sorted(store.broken.items())],
            "pinned_traces": len(pinned), "cold_index_cache_spans": store.index_cache.spans(),
            "last_move": _now_iso(self.last_move_s) if self.last_move_s else None,
            "counters": dict(self.counters),
        }
