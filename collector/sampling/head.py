"""Sample stage: head sampling at ingest — a consistent decision per span from its trace ID.

Each span is kept when its trace's randomness R (``consistent.randomness``; the ``rv`` value of
its ``tracestate`` when it carries one) is at least the rejection threshold of the probability
that applies to it: its operation's, else its service's, else the default (the Jaeger strategy
model in ``strategies``; a rate-limiting service is not thinned here — its SDKs limit it, and
the tail stage has a per-service rate-limiting policy).  No state is kept: every span of a trace
and every node decide alike, and because thresholds nest, a trace kept at the lowest probability
on its path is kept whole.

With tail sampling on, nothing is dropped here: the same decision is taken again over the
whole trace when it is decided (``tail``), where it keeps every trace with a head-kept span, in
addition to what the tail policies keep — so a trace with an error is kept even at 1%.

A span whose ``tracestate`` says an SDK already sampled it at threshold ``th`` keeps that
threshold when it is higher (a lower probability than ours); what is reported as the traces a
kept root span *represents* (its adjusted count) uses the higher of the two thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collector.model import SpanBatch
from collector.sampling import consistent


@dataclass
class Rule:
    """The probabilities of one service: ``default`` (None: keep every span) and per operation."""

    default: float | None
    operations: dict[str, float] = field(default_factory=dict)


def rule_from_response(response: dict) -> Rule:
    """The collector's rule from a Jaeger strategy response (the shape SDKs receive)."""
    ops = {}
    opsampling = response.get("operationSampling") or {}
    for entry in opsampling.get("perOperationStrategies") or ():
        if "probabilisticSampling" in entry:  # absent numbers are zero, as in protobuf JSON
            ops[entry["operation"]] = float(entry["probabilisticSampling"].get("samplingRate", 0.0))
    if response.get("strategyType", 0) in (0, "PROBABILISTIC"):
        default = float((response.get("probabilisticSampling") or {}).get("samplingRate", 0.0))
    else:  # rate limiting: not thinned at the collector
        default = None
    return Rule(default, ops)


@dataclass
class HeadResult:
    """What one batch's head decision did, per service (for the statistics)."""

    kept: np.ndarray  # bool per span of the input batch
    services: list  # service name per resource index of the batch
    roots_kept_weight: np.ndarray  # per resource: summed adjusted counts of kept root spans


class HeadSampler:
    def __init__(self, rule_for):
        """``rule_for(service) -> Rule``; rules are cached until ``reset``."""
        self._rule_for = rule_for
        self._rules: dict[str, Rule] = {}
        self._compiled: dict[tuple[str, float], tuple[int, bool]] = {}

    def reset(self) -> None:
        """Forget cached rules (the settings changed)."""
        self._rules = {}
        self._compiled = {}

    def _threshold(self, service: str, factor: float) -> tuple[int, bool]:
        """(threshold of the service's default probability, whether it has operations)."""
        got = self._compiled.get((service, factor))
        if got is None:
            rule = self.rule(service)
            t = 0 if rule.default is None else consistent.threshold(rule.default * factor)
            got = self._compiled[(service, factor)] = (t, bool(rule.operations))
            if len(self._compiled) > 100_000:  # factors change under overload: stay bounded
                self._compiled = {}
        return got

    def rule(self, service: str) -> Rule:
        rule = self._rules.get(service)
        if rule is None:
            rule = self._rules[service] = self._rule_for(service)
        return rule

    def sample(self, batch: SpanBatch, factor: float = 1.0) -> HeadResult:
        """Decide every span; ``factor`` (0..1, the tail stage's overload factor) scales every
        probability."""
        spans = batch.spans
        n = len(spans)
        services = [svc for _rec, svc in batch.resources]
        # Threshold of each resource's default, and the spans whose operation has its own.
        compiled = [self._threshold(svc, factor) for svc in services]
        res_t = np.array([c[0] for c in compiled], np.uint64)
        any_ops = any(c[1] for c in compiled)
        t = res_t[spans["resource"]] if n else np.zeros(0, np.uint64)
        if any_ops:
            buf = batch.buf
            offs, lens, res = spans["name_off"].tolist(), spans["name_len"].tolist(), spans["resource"].tolist()
            for i in range(n):
                ops = self._rules[services[res[i]]].operations
                if ops:
                    p = ops.get(buf[offs[i]:offs[i] + lens[i]].decode("utf-8", "replace"))
                    if p is not None:
                        t[i] = consistent.threshold(p * factor)
        stated = np.flatnonzero(spans["state_len"]) if n else ()
        weight = np.zeros(len(services), np.float64)
        if not t.any() and not len(stated):  # keep everything: the common case when not sampling
            kept = np.ones(n, bool)
            roots = spans["parent_id_len"] == 0
            if roots.any():
                weight = np.bincount(spans["resource"][roots], minlength=len(services)).astype(np.float64)
            return HeadResult(kept, services, weight)
        r = consistent.randomness(spans["trace_id"])
        eff = t.copy()
        if len(stated):
            buf = batch.buf
            for i in stated.tolist():
                off, ln = int(spans["state_off"][i]), int(spans["state_len"][i])
                th, rv = consistent.parse_ot(buf[off:off + ln].decode("ascii", "replace"))
                if rv is not None:
                    r[i] = rv
                if th is not None and th > eff[i]:
                    eff[i] = th
        kept = r >= t
        roots = kept & (spans["parent_id_len"] == 0)
        if roots.any():
            adjusted = consistent.MAX / (consistent.MAX - eff[roots].astype(np.float64))
            weight = np.bincount(spans["resource"][roots], weights=adjusted, minlength=len(services))
        return HeadResult(kept, services, weight)
