"""Store stage: group commit — one writer thread takes every queued batch into one transaction.

Receivers call ``submit`` on the event loop and await the result: the future resolves only after
the transaction holding the batch has committed (acknowledged means durable).  The queue is
bounded in spans; past the bound ``submit`` raises ``Busy`` at once so the receiver answers
"retry later" instead of queueing without limit.  ``run`` queues other work that must happen on
the writer thread (the tail stage's decisions), in order with the writes.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time

from collector.config import IngestConfig, StoreConfig
from collector.errors import Busy, StoreClosed, StoreError
from collector.model import SpanBatch
from collector.store.contract import SpanWriter, WriteResult

log = logging.getLogger("clew.writer")


class Writer:
    """Owns the writer thread; ``submit`` and ``close`` are called from the event loop."""

    def __init__(self, store: SpanWriter, ingest: IngestConfig, config: StoreConfig,
                 loop: asyncio.AbstractEventLoop, metrics=None):
        self.store = store
        self.max_queued = ingest.max_queued_spans
        self.retry_after = ingest.retry_after_s
        self.max_batch = config.max_batch_spans
        self.loop = loop
        self.metrics = metrics
        self._cond = threading.Condition()
        self._pending: collections.deque = collections.deque()
        self._queued_spans = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="clew-writer", daemon=True)
        self._thread.start()

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def submit(self, batch: SpanBatch, pending=None) -> "asyncio.Future[WriteResult]":
        """Queue a validated batch; the returned future resolves after its commit.  ``pending``:
        a bool array over the batch's spans marking traces held for a tail decision."""
        n = len(batch)
        fut = self.loop.create_future()
        with self._cond:
            if self._closing:
                raise StoreClosed("the server is shutting down")
            # An empty queue always takes one batch, so a batch larger than the bound can pass.
            if self._queued_spans and self._queued_spans + n > self.max_queued:
                raise Busy(f"ingest queue holds {self._queued_spans} spans (ingest.max_queued_spans"
                           f" = {self.max_queued}), retry later", self.retry_after)
            self._pending.append((batch, fut, pending))
            self._queued_spans += n
            self._cond.notify()
        return fut

    def run(self, fn) -> "asyncio.Future":
        """Run ``fn()`` on the writer thread after every write queued before it; the future
        resolves with its result (or its exception).  Not bounded: callers bound themselves."""
        fut = self.loop.create_future()
        with self._cond:
            if self._closing:
                raise StoreClosed("the server is shutting down")
            self._pending.append((fn, fut, None))
            self._cond.notify()
        return fut

    def _take(self) -> tuple[list, int] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            if callable(self._pending[0][0]):
                return [self._pending.popleft()], -1
            taken, spans = [], 0
            while (self._pending and not callable(self._pending[0][0])
                   and (not taken or spans + len(self._pending[0][0]) <= self.max_batch)):
                item = self._pending.popleft()
                taken.append(item)
                spans += len(item[0])
            return taken, spans

    def _run(self) -> None:
        while True:
            work = self._take()
            if work is None:
                return
            taken, spans = work
            if spans < 0:
                self._run_op(*taken[0][:2])
                continue
            started = time.perf_counter()
            results, error = None, None
            try:
                if any(p is not None for _b, _f, p in taken):
                    results = self.store.write([b for b, _f, _p in taken], [p for _b, _f, p in taken])
                else:
                    results = self.store.write([b for b, _f, _p in taken])
            except Exception as exc:  # the transaction did not commit: nothing is acknowledged
                log.exception("write of %d spans failed", spans)
                error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            elapsed = time.perf_counter() - started
            with self._cond:
                self._queued_spans -= spans
            if self.metrics is not None:
                self.metrics.commit_seconds.observe(elapsed)
                self.metrics.commit_batches.observe(len(taken))
            try:
                self.loop.call_soon_threadsafe(self._resolve, taken, results, error)
            except RuntimeError:  # loop closed under us: nobody is waiting any more
                return

    def _run_op(self, fn, fut) -> None:
        started = time.perf_counter()
        try:
            result, error = fn(), None
        except Exception as exc:
            log.exception("writer-thread task failed")
            result, error = None, exc
        if self.metrics is not None:
            self.metrics.writer_task_seconds.observe(time.perf_counter() - started)

        def settle():
            if not fut.done():
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)
        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass

    @staticmethod
    def _resolve(taken, results, error) -> None:
        for i, (_batch, fut, _pending) in enumerate(taken):
            if fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(results[i])

    async def close(self) -> None:
        """Stop taking batches, commit everything queued, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
