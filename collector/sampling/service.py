"""Sample stage: ``Sampling``, the one object the server creates for every sampling concern.

It holds the current settings (``settings``) and hands each part what it needs: the head stage
at ingest (``head``), the tail stage's held traces and decisions (``tail``), the adaptive
calculator and the overload controller (``adaptive``), the strategies served to SDKs (Jaeger
remote sampling over HTTP on ``sampling.remote_port``, the query port and gRPC) and the
statistics (``stats``).  ``sample(batch)`` is the ingest path's one call.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from collector.config import SamplingConfig
from collector.model import SpanBatch
from collector.sampling import consistent
from collector.sampling import settings as settings_mod
from collector.sampling.adaptive import Adaptive, StoredRateController
from collector.sampling.head import HeadSampler, Rule, rule_from_response
from collector.sampling.stats import SamplingStats
from collector.sampling.tail import TailStage

log = logging.getLogger("clew.sampling")

POLL_MEMORY_S = 600.0  # an SDK that fetched its strategy this recently counts as "polling"


class _Census:
    """Per-service span and root-span counts of a batch, a few numpy calls each: the batch's
    resources mapped once to the distinct services they name."""

    def __init__(self, batch: SpanBatch):
        index: dict[str, int] = {}
        self.names: list[str] = []
        res_svc = np.empty(len(batch.resources), np.intp)
        for r, (_rec, svc) in enumerate(batch.resources):
            i = index.get(svc)
            if i is None:
                i = index[svc] = len(self.names)
                self.names.append(svc)
            res_svc[r] = i
        self.res_svc = res_svc

    def counts(self, batch: SpanBatch, mask: np.ndarray | None = None) -> tuple[list, list]:
        """(spans, root spans) per service of the batch's spans where ``mask`` holds."""
        spans = batch.spans if mask is None else batch.spans[mask]
        k = len(self.names)
        if not len(spans) or not k:
            return [0] * k, [0] * k
        svc = self.res_svc[spans["resource"]]
        return (np.bincount(svc, minlength=k).tolist(),
                np.bincount(svc[spans["parent_id_len"] == 0], minlength=k).tolist())

    def entries(self, batch, mask, decision: str, reason: str, weights=None, roots: bool = True):
        """Stats entries for the spans where ``mask`` holds (None: all); ``roots`` False counts
        spans only (they followed a decision already counted for their trace)."""
        n, r = self.counts(batch, mask)
        return [(name, decision, n[i], r[i] if roots else 0, reason, weights[i] if weights else 0.0)
                for i, name in enumerate(self.names) if n[i]]


class Sampling:
    def __init__(self, config: SamplingConfig, data_dir: Path, metrics=None, clock=time.time):
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._file = settings_mod.Store(Path(data_dir))
        self.settings, state = self._file.load(config)
        self.stats = SamplingStats(metrics, clock)
        self.head = HeadSampler(self._rule_for)
        self.tail: TailStage | None = None
        self._polls: dict[str, float] = {}  # service → when an SDK last fetched its strategy
        self._stored_direct = 0  # spans stored without a tail decision since the last interval
        self._tasks: list[asyncio.Task] = []
        self._make_adaptive(state.get("adaptive"))
        if metrics is not None:
            metrics.sampling_baseline.set(1.0)

    # ------------------------------------------------------------------ wiring

    def _make_adaptive(self, snapshot: dict | None = None) -> None:
        a = self.settings.adaptive
        old = getattr(self, "adaptive", None)
        self.adaptive = Adaptive(target_traces_per_s=a["target_traces_per_s"],
                                 min_probability=a["min_probability"],
                                 max_probability=a["max_probability"], tolerance=a["tolerance"],
                                 max_increase=a["max_increase"], interval_s=a["interval_s"])
        snapshot = snapshot if snapshot is not None else (old.snapshot() if old is not None else None)
        if snapshot:
            try:
                self.adaptive.restore(snapshot)
            except Exception:
                log.exception("adaptive sampling state could not be restored; starting afresh")
        self.controller = StoredRateController(a["target_stored_spans_per_s"])

    def attach(self, store, writer) -> None:
        """Give the tail stage the store and writer (absent on a null-sink server)."""
        self.tail = TailStage(store, writer, self.stats, self.metrics, head=self.head)
        self.tail.configure(self.settings.tail, self.settings.policies)
        held = self.tail.recover()
        if held:
            log.info("tail sampling: %d traces still held from before the restart; deciding them "
                     "after %.0f s", held, self.tail.wait_s)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._intervals())]
        if self.tail is not None:
            self._tasks.append(loop.create_task(self.tail.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._save()

    async def _intervals(self) -> None:
        """Every adaptive interval: recalculate, steer the tail baseline, save the state."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.adaptive["interval_s"])
            now = time.monotonic()
            try:
                self.interval(now - last)
            except Exception:
                log.exception("sampling interval work failed")
            last = now

    def interval(self, elapsed_s: float) -> None:
        a = self.settings.adaptive
        if a["enabled"]:
            self.adaptive.recalculate()
            if self.metrics is not None:
                for row in self.adaptive.stats():
                    self.metrics.sampling_probability.labels(row["service"], row["operation"]).set(
                        row["probability"])
            self._save()
        tail_spans, baseline_spans = self.tail.take_counts() if self.tail is not None else (0, 0)
        stored = self._stored_direct + tail_spans
        self._stored_direct = 0
        if a["target_stored_spans_per_s"] > 0 and self.tail is not None:
            self.tail.baseline = self.controller.update(stored, baseline_spans, elapsed_s)
            if self.metrics is not None:
                self.metrics.sampling_baseline.set(self.tail.baseline)

    def _save(self) -> None:
        try:
            self._file.save(self.settings, self.config, {"adaptive": self.adaptive.snapshot()})
        except Exception:
            log.exception("sampling settings could not be saved")

    # ------------------------------------------------------------------ settings

    def _rule_for(self, service: str) -> Rule:
        return rule_from_response(self.settings.strategies.response(service))

    def settings_json(self) -> dict:
        return self.settings.to_json()

    def update(self, change) -> dict:
        """Apply a partial settings document (validated whole; raises SamplingError), save it,
        log what changed; effective for the next span."""
        before = self.settings.to_json()
        new = settings_mod.merge(self.settings, change)
        if new.policies.to_json() == self.settings.policies.to_json():  # keeps rate-limit buckets
            new = dataclasses.replace(new, policies=self.settings.policies)
        after = new.to_json()
        adaptive_changed = before["adaptive"] != after["adaptive"]
        self.settings = new
        self.head.reset()
        if self.tail is not None:
            self.tail.configure(new.tail, new.policies)
        if adaptive_changed:
            self._make_adaptive()
        self._save()
        changes = settings_mod.diff(before, after)
        for line in changes:
            log.info("sampling setting changed: %s", line)
        if not changes:
            log.info("sampling settings written unchanged")
        return after

    # ------------------------------------------------------------------ remote sampling

    def strategy_for(self, service: str) -> dict:
        """The Jaeger strategy response for ``service`` (Jaeger's JSON shape, as a dict): with
        adaptive sampling on, the computed probabilities (a service not seen yet starts at the
        initial probability, as in Jaeger); else the configured strategies."""
        if self.settings.adaptive["enabled"]:
            return self.adaptive.strategy(service, unseen=True)
        return self.settings.strategies.response(service)

    def note_poll(self, service: str) -> None:
        """An SDK of ``service`` fetched its strategy."""
        self._polls[service] = self.clock()

    # ------------------------------------------------------------------ ingest

    def sample(self, batch: SpanBatch) -> tuple[SpanBatch, np.ndarray | None]:
        """Head-sample a validated batch and sort it for the tail stage: returns the spans to
        store and the mask of those held for a tail decision (None: none held)."""
        census = _Census(batch)
        entries = census.entries(batch, None, "received", "")
        if self.settings.adaptive["enabled"]:
            self._observe_roots(batch)
        tail = self.tail
        if tail is not None and tail.enabled:  # the head decision is taken with the tail's
            batch, held = self._route(batch, census, entries)
            stored = None if held is None else ~held
            if stored is None or stored.any():  # spans of traces already decided to be kept
                kept = census.entries(batch, stored, "kept", "decided", roots=False)
                entries += kept
                self._stored_direct += sum(e[2] for e in kept)
            self.stats.record(entries)
            return batch, held
        head = self.head.sample(batch)
        if not head.kept.all():
            entries += census.entries(batch, ~head.kept, "dropped", "head")
            batch = batch.select(head.kept)
        weights = [0.0] * len(census.names)
        for r, w in enumerate(head.roots_kept_weight.tolist()):
            if w:
                weights[census.res_svc[r]] += w
        held = None
        if tail is not None and tail.cache:  # off, but decisions taken while it was on still apply
            batch, held = self._route(batch, census, entries)
        kept = census.entries(batch, None if held is None else ~held, "kept", "head", weights)
        entries += kept
        self._stored_direct += sum(e[2] for e in kept)
        self.stats.record(entries)
        return batch, held

    def _route(self, batch: SpanBatch, census: _Census, entries: list) -> tuple[SpanBatch, np.ndarray | None]:
        """The tail stage's sorting: spans of traces decided earlier follow the decision (dropped
        ones leave the batch); returns the batch and the mask of spans to hold."""
        held, dropped = self.tail.route(batch)
        if dropped is not None:
            entries += census.entries(batch, dropped, "dropped", "decided")
            batch = batch.select(~dropped)
            held = held[~dropped] if held is not None else None
        return batch, held

    def _observe_roots(self, batch: SpanBatch) -> None:
        spans = batch.spans
        roots = np.flatnonzero(spans["parent_id_len"] == 0)
        if not len(roots):
            return
        counts: dict[tuple[str, str], int] = {}
        adjusted: dict[tuple[str, str], tuple[int, float]] = {}
        buf = batch.buf
        services = batch.resources
        for i in roots.tolist():
            row = spans[i]
            off = int(row["name_off"])
            key = (services[int(row["resource"])][1],
                   buf[off:off + int(row["name_len"])].decode("utf-8", "replace"))
            counts[key] = counts.get(key, 0) + 1
            if row["state_len"]:  # the SDK said at what probability it sampled (ot=th)
                so = int(row["state_off"])
                th, _rv = consistent.parse_ot(buf[so:so + int(row["state_len"])].decode("ascii", "replace"))
                if th is not None:
                    stated, weight = adjusted.get(key, (0, 0.0))
                    adjusted[key] = (stated + 1, weight + consistent.adjusted_count(th))
        self.adaptive.observe(counts, adjusted or None)

    # ------------------------------------------------------------------ statistics

    def report(self, window_s: float | None = None, service: str | None = None) -> dict:
        window_s = window_s or self.config.stats_window_s
        out = self.stats.report(window_s, service)
        adaptive_on = self.settings.adaptive["enabled"]
        for svc, row in out["services"].items():
            rule = self._rule_for(svc)
            row["target"] = {"head_probability": rule.default,
                             "head_operations": rule.operations or None,
                             "adaptive_traces_per_s": (self.settings.adaptive["target_traces_per_s"]
                                                       if adaptive_on else None)}
            polled = self._polls.get(svc)
            row["sdk_polled_s_ago"] = None if polled is None else round(self.clock() - polled, 3)
        out["pending_traces"] = len(self.tail.pending) if self.tail is not None else 0
        out["tail_enabled"] = self.settings.tail["enabled"]
        out["baseline_factor"] = self.tail.baseline if self.tail is not None else 1.0
        out["adaptive"] = self.adaptive.stats() if adaptive_on else []
        return out
