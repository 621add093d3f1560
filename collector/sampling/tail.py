"""Sample stage: tail sampling — each trace is held until it is decided by the policies.

Held spans are written to the store at once, in its ``pending`` table (durable: a held span is
acknowledged only after that commit, and survives ``kill -9``; readable by trace ID), but are
not indexed.  A trace is decided when it has been quiet for ``decision_wait_s`` or
``root_grace_s`` after its root span arrived; when more than ``max_pending_traces`` are held,
the oldest are decided at once (early).  Deciding reads the trace's held spans back, evaluates
the policies (``policies``) over whole traces in order, then the head probabilities (a trace
with a span the head stage would keep is kept, as "head"), and on the writer thread moves a kept
trace's spans into the chunk log (where they are indexed) or deletes a dropped trace's.

Decisions are remembered (``decision_cache`` traces): a span that arrives after its trace was
decided follows the decision at once (kept spans are stored and indexed; dropped spans are not
stored).  A span that arrives while its trace is being decided is held, and follows the
decision in the next round.

All of this runs on the event loop, except the evaluation (an executor thread) and the store
changes (the writer thread), so the tables here need no locks.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import time

import numpy as np


log = logging.getLogger("clew.sampling")

ROUND_TRACES = 1_000  # traces decided per round at most, so one round never holds the writer long
TICK_S = 0.1
RESOLVE_SLICE = 200  # kept and dropped traces resolved per writer-thread task


class _Held:
    __slots__ = ("first", "last", "root_at")

    def __init__(self, now: float):
        self.first = now
        self.last = now
        self.root_at: float | None = None


class TailStage:
    def __init__(self, store, writer, stats, metrics=None, clock=time.monotonic, head=None):
        self.store = store
        self.head = head  # the head sampler: a trace with a head-kept span is kept (reason "head")
        self.writer = writer
        self.stats = stats
        self.metrics = metrics
        self.clock = clock
        self.enabled = False
        self.wait_s = 10.0
        self.grace_s = 2.0
        self.max_pending = 100_000
        self.cache_size = 200_000
        self.policies = None
        self.baseline = 1.0  # the overload controller's factor for probabilistic policies
        self.probabilistic: set[str] = set()
        self.pending: dict[bytes, _Held] = {}  # in order of last arrival (oldest first)
        self._roots: list = []  # heap of (root arrival + grace, trace ID)
        self.deciding: set[bytes] = set()
        self._late: set[bytes] = set()  # spans arrived while their trace was being decided
        self.cache: dict[bytes, bool] = {}
        self.kept_spans = 0  # since the controller last looked (stored by tail decisions)
        self.baseline_spans = 0  # of those, kept only by a probabilistic policy

    def configure(self, tail: dict, policies) -> None:
        self.enabled = bool(tail["enabled"])
        self.wait_s = float(tail["decision_wait_s"])
        self.grace_s = float(tail["root_grace_s"])
        self.max_pending = int(tail["max_pending_traces"])
        self.cache_size = int(tail["decision_cache"])
        self.policies = policies
        self.probabilistic = {p["name"] for p in policies.to_json() if p.get("type") == "probabilistic"}

    def recover(self) -> int:
        """Hold again the traces the store still holds (after a restart): they are decided once
        they have been quiet for ``decision_wait_s`` from now."""
        now = self.clock()
        for tid in self.store.pending_trace_ids():
            self.pending.setdefault(tid, _Held(now))
        return len(self.pending)

    # ------------------------------------------------------------------ ingest

    def route(self, batch) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Sort a head-sampled batch's spans: returns (held mask, dropped mask), each None when
        no span is in it.  Spans in neither are stored and indexed as they come."""
        spans = batch.spans
        if not len(spans) or (not self.enabled and not self.cache):
            return None, None
        tids, inverse = np.unique(spans["trace_id"], return_inverse=True)
        roots = set(spans["trace_id"][spans["parent_id_len"] == 0].tolist())
        verdict = np.zeros(len(tids), np.int8)  # 0 stored now, 1 held, 2 dropped
        now = self.clock()
        cache, pending = self.cache, self.pending
        for t, tid in enumerate(tids.tolist()):
            decided = cache.get(tid)
            if decided is not None and tid not in pending:
                if not decided:
                    verdict[t] = 2
                continue
            if not self.enabled and decided is None:
                continue
            verdict[t] = 1
            if tid in self.deciding:
                self._late.add(tid)
                continue
            held = pending.pop(tid, None)
            if held is None:
                held = _Held(now)
            held.last = now
            pending[tid] = held  # to the end: the order stays by last arrival
            if tid in roots and held.root_at is None:
                held.root_at = now
                heapq.heappush(self._roots, (now + self.grace_s, tid))
        if not verdict.any():
            return None, None
        per_span = verdict[inverse]
        held = per_span == 1
        dropped = per_span == 2
        return (held if held.any() else None), (dropped if dropped.any() else None)

    # ------------------------------------------------------------------ deciding

    async def run(self) -> None:
        """Decide what is due, every ``TICK_S``, until cancelled."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.decide_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tail sampling round failed; the traces stay held and are retried")

    def _due(self) -> tuple[list, set]:
        now = self.clock()
        due: dict[bytes, None] = {}
        early: set[bytes] = set()
        if not self.enabled:  # tail turned off: everything held is kept, nothing is lost
            for tid in list(self.pending)[:ROUND_TRACES]:
                due[tid] = None
            return list(due), early
        over = len(self.pending) - self.max_pending
        for tid, held in self.pending.items():
            if len(due) >= ROUND_TRACES:
                break
            if held.last + self.wait_s <= now:
                due[tid] = None
            elif over > 0:
                due[tid] = None
                early.add(tid)
                over -= 1
            else:
                break
        while self._roots and self._roots[0][0] <= now and len(due) < ROUND_TRACES:
            _at, tid = heapq.heappop(self._roots)
            if tid in self.pending:
                due[tid] = None
        return list(due), early

    async def decide_due(self) -> int:
        """Decide every trace that is due; returns how many were decided."""
        if not self.pending:
            return 0
        due, early = self._due()
        if not due:
            return 0
        now = self.clock()
        held = {tid: self.pending.pop(tid) for tid in due}
        again = {tid for tid in due if self.enabled and tid in self.cache}  # late spans, decided
        self.deciding.update(due)
        applied: list[bytes] = []
        try:
            verdicts, services, counts = await self._evaluate(due)
            present = [t for t in due if t in counts]  # others have nothing held any more
            keep = [t for t in present if verdicts[t] is not None]
            drop = [t for t in present if verdicts[t] is None]
            # in slices, so the writer commits the requests that arrive between them
            for i in range(0, max(len(keep), len(drop)), RESOLVE_SLICE):
                k, d = keep[i:i + RESOLVE_SLICE], drop[i:i + RESOLVE_SLICE]
                await self.writer.run(lambda k=k, d=d: self.store.resolve_pending(k, d))
                applied += k + d
        except BaseException:
            done = set(applied)
            for tid in due:  # not decided: hold them again
                if tid not in done:
                    self.pending[tid] = held[tid]
            raise
        finally:
            self.deciding.difference_update(due)
            if applied:
                self._account(applied, verdicts, services, counts, again, early, held, now)
        for tid in self._late & set(due):  # held while deciding: decided again by the cache
            self.pending[tid] = _Held(now - self.wait_s)
        self._late.difference_update(due)
        return len(due)

    def _account(self, applied, verdicts, services, counts, again, early, held, now) -> None:
        """Remember and count the decisions the store has applied."""
        for tid in applied:
            verdict = verdicts[tid]
            self._remember(tid, verdict is not None)
            service = services.get(tid, "")
            n = counts.get(tid, 0)
            if tid in again:  # spans that followed an earlier decision: the trace is counted
                if verdict is None:
                    self.stats.dropped(service, n, 0, "decided")
                else:
                    self.stats.kept(service, n, 0, "decided")
                    self.kept_spans += n
                continue
            if verdict is None:
                self.stats.dropped(service, n, 1, "no_policy")
            else:
                self.stats.kept(service, n, 1, verdict)
                self.kept_spans += n
                if verdict in self.probabilistic:
                    self.baseline_spans += n
            self.stats.decided(service, now - held[tid].first, tid in early)

    async def _evaluate(self, due: list) -> tuple[dict, dict, dict]:
        """Per trace: the keeping policy's name or None; its service; its held span count."""
        forced = {}
        ask = []
        for tid in due:
            decided = self.cache.get(tid)
            if decided is not None or not self.enabled:
                forced[tid] = ("decided" if decided else None) if self.enabled else "tail_off"
            else:
                ask.append(tid)
        verdicts: dict[bytes, str | None] = dict(forced)
        services: dict[bytes, str] = {}
        counts: dict[bytes, int] = {}
        if not due:
            return verdicts, services, counts
        policies, baseline, head = self.policies, self.baseline, self.head
        wall = time.time()

        def work():
            batch, index, found = self.store.read_pending(due)
            spans = batch.spans
            out = {}
            asked = np.array([tid not in forced for tid in found], bool)
            if asked.any():
                sub = batch if asked.all() else batch.select(asked[index])
                ids = [tid for tid, a in zip(found, asked.tolist()) if a]
                renum = np.cumsum(asked) - 1
                sub_index = renum[index[asked[index]]]
                names = policies.evaluate(sub, sub_index, ids, wall, baseline)
                if head is not None and None in names:  # the head decision, over the whole trace
                    kept = head.sample(sub, baseline).kept
                    by_head = np.bincount(sub_index[kept], minlength=len(ids)) > 0
                    names = [n if n is not None or not h else "head" for n, h in zip(names, by_head.tolist())]
                out = dict(zip(ids, names))
            # each trace's service (its root span's, else its first span's) and span count
            svc = np.array([s for _r, s in batch.resources] or [""], object)
            first = np.zeros(len(found), np.int64)
            if len(found):
                _u, at = np.unique(index, return_index=True)
                first[_u] = at
                roots = np.flatnonzero(spans["parent_id_len"] == 0)
                first[index[roots]] = roots
            names_of = svc[spans["resource"][first]] if len(found) else []
            n = np.bincount(index, minlength=len(found))
            return out, dict(zip(found, names_of)), {tid: int(n[i]) for i, tid in enumerate(found)}

        out, services, counts = await asyncio.get_running_loop().run_in_executor(None, work)
        for tid in due:
            if tid not in verdicts:
                verdicts[tid] = out.get(tid)
        return verdicts, services, counts

    def _remember(self, tid: bytes, keep: bool) -> None:
        cache = self.cache
        cache.pop(tid, None)
        cache[tid] = keep
        if len(cache) > self.cache_size:
            for old in list(cache)[:len(cache) - self.cache_size // 2 or 1]:
                del cache[old]

    def take_counts(self) -> tuple[int, int]:
        """(spans kept, of them by probabilistic policies) since the last call."""
        out = (self.kept_spans, self.baseline_spans)
        self.kept_spans = self.baseline_spans = 0
        return out
