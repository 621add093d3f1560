"""Ingest path shared by every receiver: decode → validate → sample → queue for the writer → await the commit.

Receivers own transport only (bytes in, status out); they call ``Ingest.export`` and map its
outcome and errors (``DecodeError``, ``Busy``, ``StoreError``) onto their protocol's answers.
"""
from __future__ import annotations

import logging
from typing import Callable, NamedTuple

from collector.codec import decode_export_request
from collector.config import Config
from collector.metrics import Metrics
from collector.pipeline import Refusals, validate
from collector.store.writer import Writer


log = logging.getLogger("clew.ingest")


class Outcome(NamedTuple):
    accepted: int
    refusals: Refusals


class Ingest:
    def __init__(self, config: Config, writer: Writer | None, metrics: Metrics, sampling=None, red=None,
                 edges=None):
        self.config = config
        self.red = red  # collector.analytics.RedMetrics: counts every valid span before sampling
        self.edges = edges  # collector.analytics.graph.EdgeTracker: the service graph, before sampling
        self.sampling = sampling  # collector.sampling.service.Sampling
        self.writer = writer
        self.metrics = metrics
        self.null_sink = config.ingest.null_sink

    async def export(self, body: bytes, protocol: str,
                     to_otlp: Callable[[bytes], bytes] | None = None) -> Outcome:
        """Store the spans of one request; returns once they are committed.

        ``body`` is OTLP protobuf, or any format ``to_otlp`` translates into it (OTLP/JSON,
        Jaeger, Zipkin).  Raises ``DecodeError`` (nothing stored), ``Busy`` (nothing stored,
        retry later) or ``StoreError`` (the commit failed, nothing acknowledged).
        """
        if self.null_sink:
            return Outcome(0, Refusals())
        if to_otlp is not None:
            body = to_otlp(body)
        batch = decode_export_request(body)
        m = self.metrics
        m.spans_received.labels(protocol).inc(len(batch))
        batch, refusals = validate(batch, self.config.limits)
        accepted = 0
        held = None
        if self.red is not None and len(batch):
            self.red.observe(batch)
        if self.edges is not None and len(batch):
            try:
                self.edges.observe(batch)
            except Exception:  # derived data: never a reason to refuse the spans
                log.exception("service graph: a batch could not be paired")
        if self.sampling is not None and len(batch):
            batch, held = self.sampling.sample(batch)
        if len(batch):
            result = await self.writer.submit(batch, held)
            accepted = result.accepted
            refusals.merge(result.refusals)
        if accepted:
            m.spans_accepted.labels(protocol).inc(accepted)
        for code, count in refusals.counts.items():
            m.spans_refused.labels(protocol, code).inc(count)
        return Outcome(accepted, refusals)
