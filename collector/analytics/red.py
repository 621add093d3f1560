"""RED metrics at ingest: calls, errors and a latency histogram per (service, operation, span kind).

``RedMetrics.observe`` runs on the event loop for every request, after validation and before
sampling, so the counts hold every span received whatever fraction of traces is stored.  The work
is numpy over the batch's columns: span names are hashed in bulk from the request bytes; each
span's (service, name, kind) hash finds its series id in a dict (one lookup per span, which keeps
the GIL where a numpy sort or search would hand it to the writer and flush threads), and only keys
never seen before go through Python to intern their series.
"""
from __future__ import annotations

import logging

import numpy as np

from collector.analytics.series import SeriesStore
from collector.model import KIND_NAMES, STATUS_ERROR, SpanBatch

log = logging.getLogger("clew.analytics")

_SEED = 0x5EED_C1E3
_MIX_RES = np.uint64(0x9E3779B97F4A7C15)
_MIX_KIND = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX_LEN = np.uint64(0x165667B19E3779F9)
_MIX_WORD = np.uint64(0xFF51AFD7ED558CCD)
_STEPS = np.arange(0, 8 * 64, 8, dtype=np.int64)  # byte offsets of a name's 64-bit words
_BYTE_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], np.uint64)  # i low bytes kept


class RedMetrics:
    def __init__(self, store: SeriesStore):
        self.store = store
        # series ids by a 64-bit hash of (service, operation, kind)
        self._known: dict[int, int] = {}
        self._svc_hash: dict[str, int] = {}
        self._weights = np.zeros(0, np.uint64)
        self.failures = 0
        # called after each batch is counted: hook(series ids, start ns, duration ns, status code)
        self.hooks: list = []

    def _name_hashes(self, buf: bytes, off: np.ndarray, length: np.ndarray) -> np.ndarray:
        """A 64-bit hash of every span's name bytes, in bulk.  The name is read as little-endian
        64-bit words straight from the request bytes (an unaligned strided view: no copy per
        span); word ``j`` is multiplied by an odd constant of its own and mixed (xor-shift,
        multiply), and the mixed words and the length are summed."""
        n = len(off)
        h = length.astype(np.uint64) * _MIX_LEN
        if not n:
            return h
        nwords = (length + 7) >> 3
        w = int(nwords.max())
        if not w:
            return h
        size = len(buf)
        if int((off + 8 * (nwords - 1)).max()) + 8 > size:  # a name within 8 bytes of the end
            buf = bytes(buf) + bytes(8)
            size = len(buf)
        words = np.ndarray(shape=(size - 7,), dtype="<u8", buffer=buf, offset=0, strides=(1,))
        step = _STEPS[:w] if w <= len(_STEPS) else np.arange(0, 8 * w, 8, dtype=np.int64)
        x = words[np.minimum(off[:, None] + step, size - 8)]
        x &= _BYTE_MASKS[np.clip(length[:, None] - step, 0, 8)]  # bytes past the name → 0
        x *= self._word_keys(w)
        x ^= x >> np.uint64(31)
        x *= _MIX_WORD  # a zero word stays zero: padding adds nothing
        h += x.sum(axis=1, dtype=np.uint64)
        return h

    def _word_keys(self, w: int) -> np.ndarray:
        """An odd 64-bit multiplier per word position: splitmix64 of the position (stable)."""
        if len(self._weights) < w:
            z = (np.arange(max(w, 16), dtype=np.uint64) + np.uint64(_SEED)) * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            self._weights = (z ^ (z >> np.uint64(31))) | np.uint64(1)
        return self._weights[:w]

    def observe(self, batch: SpanBatch) -> None:
        """Count the batch's spans in their series ("span", service, operation, kind name).
        A failure here is logged and never fails the request: the spans are still stored."""
        try:
            self._observe(batch)
        except Exception:
            self.failures += 1
            log.exception("RED metrics: a batch of %d spans was not counted", len(batch))

    def _observe(self, batch: SpanBatch) -> None:
        spans = batch.spans
        if not len(spans):
            return
        length = spans["name_len"].astype(np.int64)
        h = self._name_hashes(batch.buf, spans["name_off"].astype(np.int64), length)
        svc_hash = self._svc_hash
        rh = np.array([svc_hash.get(svc) or self._hash_service(svc) for _rec, svc in batch.resources],
                      np.uint64)
        kind = spans["kind"].astype(np.uint64)
        kind[kind >= len(KIND_NAMES)] = 0
        key = h + rh[spans["resource"]] * _MIX_RES + (kind + np.uint64(1)) * _MIX_KIND
        # a dict lookup per span: cheaper than a sorted table's np.searchsorted at these sizes,
        # and it keeps the GIL (a sort or search in numpy hands it to the other threads)
        get = self._known.get
        found = [get(k, -1) for k in key.tolist()]
        if -1 in found:
            self._learn(batch, key, kind, np.array(found, np.int64) < 0)
            get = self._known.get
            found = [get(k, -1) for k in key.tolist()]
        sids = np.array(found, np.int64)
        start = spans["start_ns"].astype(np.int64)
        duration = spans["end_ns"].astype(np.int64) - start
        self.store.add(sids, start, duration, spans["status_code"] == STATUS_ERROR)
        for hook in self.hooks:
            hook(sids, start, duration, spans["status_code"])

    def _hash_service(self, svc: str) -> int:
        if len(self._svc_hash) > 100_000:
            self._svc_hash.clear()
        raw = svc.encode("utf-8", "surrogatepass")
        h = self._name_hashes(raw, np.zeros(1, np.int64), np.array([len(raw)], np.int64))
        v = self._svc_hash[svc] = int(h[0]) or 1
        return v

    def _learn(self, batch: SpanBatch, key: np.ndarray, kind: np.ndarray, miss: np.ndarray) -> None:
        """Find the series of keys not seen before (one per distinct key) and add them to the table."""
        where = np.flatnonzero(miss)
        uk, first = np.unique(key[where], return_index=True)
        spans = batch.spans
        if len(self._known) + len(uk) > 2 * self.store.config.max_series + 16:
            self._known = {}  # keys past max_series: start the table anew
        known = self._known
        for k, i in zip(uk.tolist(), where[first].tolist()):
            svc = batch.resources[int(spans["resource"][i])][1]
            known[k] = self.store.series_id(("span", svc, batch.name(i), KIND_NAMES[int(kind[i])]))
