"""Analytics: service-graph edges at ingest, from client/server and producer/consumer span pairs.

Like the OpenTelemetry Collector's service-graph connector, every batch is looked at before
sampling drops anything.  A client (or producer) span and a server (or consumer) span pair up
when they are in the same trace and the server span's parent is the client span; the two
halves usually arrive in different requests (each service exports its own spans) and in either
order, so an unpaired half waits in a bounded in-memory table:

* a half waits at most ``analytics.edge_wait_s`` seconds (default 10) for its other half;
* at most ``analytics.max_pending_edges`` halves (default 100,000) wait; past that the oldest
  is given up to make room (counted in ``stats()["evicted"]``);
* a client half that expires (or is given up) unpaired and names its peer — the span attribute
  ``peer.service``, else ``server.address`` — counts as an edge to that peer (a database, a
  third-party API: a service that sends no spans);
* a pair within one service is not an edge (both halves are dropped).

A paired edge is added to the ``SeriesStore`` as the series ``("edge", client service, server
service, "request" | "messaging")`` (producer/consumer pairs are ``messaging``): at the client
span's start, with the client span's duration (the server's when the client span has none),
as an error when either side's status is error.

Pairing is one to one: a second server span under the same client span (a retry that reused
the span ID, or a second consumer of one message) waits, then expires uncounted.

``observe`` runs on the event loop, once per decoded batch; it touches Python objects only for
the client/server/producer/consumer spans of the batch.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import numpy as np

from collector.model import AT_SPAN, STATUS_ERROR, VT_STRING

NO_SERVICE = "OTLP_ResourceNoServiceName"  # the store's name for a resource without service.name
FAMILY = "edge"
KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 2, 3, 4, 5
CONNECTION = {KIND_CLIENT: "request", KIND_PRODUCER: "messaging"}
PEER_ATTRIBUTES = (b"peer.service", b"server.address")  # a lone client half's peer, first found
DEFAULT_WAIT_S = 10.0
DEFAULT_MAX_PENDING = 100_000
SWEEP_INTERVAL_S = 1.0


class EdgeTracker:
    """Pairs client and server halves across batches and records each edge in ``series``."""

    def __init__(self, series, wait_s: float = DEFAULT_WAIT_S, max_pending: int = DEFAULT_MAX_PENDING,
                 clock=time.monotonic):
        self.series = series
        self.wait_s = float(wait_s)
        self.max_pending = int(max_pending)
        self.clock = clock
        # key (trace ID + span ID of the client span) → (deadline, service, kind, start, end, error, peer)
        self.clients: OrderedDict[bytes, tuple] = OrderedDict()
        # key (trace ID + parent span ID) → (deadline, service, kind, start, end, error)
        self.servers: OrderedDict[bytes, tuple] = OrderedDict()
        self.counts = {"paired": 0, "same_service": 0, "expired": 0, "evicted": 0, "peer_edges": 0}
        self._ids: dict[tuple, int] = {}
        self._next_sweep = 0.0
        self._timer = None  # asyncio handle of the next sweep while halves wait

    @classmethod
    def from_config(cls, series, config) -> "EdgeTracker":
        return cls(series, wait_s=config.analytics.edge_wait_s, max_pending=config.analytics.max_pending_edges)

    # ------------------------------------------------------------------ ingest

    def observe(self, batch) -> None:
        """Pair the batch's client/server halves with each other and with waiting halves."""
        now = self.clock()
        spans = batch.spans
        edges: list[tuple] = []
        if now >= self._next_sweep:  # halves past their wait go first: none pairs late
            self._expire(now, edges)
            self._next_sweep = now + SWEEP_INTERVAL_S
        if len(spans):
            kind = spans["kind"]
            ci = np.flatnonzero((kind == KIND_CLIENT) | (kind == KIND_PRODUCER))
            si = np.flatnonzero(((kind == KIND_SERVER) | (kind == KIND_CONSUMER)) & (spans["parent_id_len"] > 0))
            if len(ci) or len(si):
                self._pair(batch, ci, si, now, edges)
        self._record(edges)
        if self._timer is None and (self.clients or self.servers):
            self._schedule()

    def _schedule(self) -> None:
        """Sweep again in a second on the running loop, so waiting halves expire (and lone
        client halves become peer edges) even when no batch arrives."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside an event loop: sweeps happen on observe only
            return
        self._timer = loop.call_later(SWEEP_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.expire()
        if self.clients or self.servers:
            self._schedule()

    def close(self) -> None:
        """Stop the sweeps (halves still waiting are dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pair(self, batch, ci, si, now, edges) -> None:
        spans = batch.spans
        services = [r[1] or NO_SERVICE for r in batch.resources]
        deadline = now + self.wait_s

        def halves(idx, id_field):
            rows = spans[idx]
            keys = np.empty(len(idx), dtype=[("t", "V16"), ("s", "V8")])
            keys["t"] = rows["trace_id"]
            keys["s"] = rows[id_field]
            raw = keys.tobytes()
            return ([raw[i:i + 24] for i in range(0, len(raw), 24)],
                    zip([services[r] for r in rows["resource"].tolist()], rows["kind"].tolist(),
                        rows["start_ns"].tolist(), rows["end_ns"].tolist(),
                        (rows["status_code"] == STATUS_ERROR).tolist()))

        ckeys, cvals = halves(ci, "span_id")
        skeys, svals = halves(si, "parent_span_id")
        here = dict(zip(ckeys, zip(range(len(ckeys)), cvals)))  # this batch's clients by key
        taken = set()
        waiting_clients, waiting_servers = self.clients, self.servers
        for key, (service, kind, start, end, error) in zip(skeys, svals):
            hit = here.get(key)
            if hit is not None and hit[0] not in taken:
                taken.add(hit[0])
                c = hit[1]
                self._edge(c[0], c[1], c[2], c[3], c[4], service, start, end, error, edges)
                continue
            c = waiting_clients.pop(key, None)
            if c is not None:
                self._edge(c[1], c[2], c[3], c[4], c[5], service, start, end, error, edges)
                continue
            waiting_servers[key] = (deadline, service, kind, start, end, error)
        lone = []
        for key, (_j, c) in here.items():
            if _j in taken:
                continue
            s = waiting_servers.pop(key, None)
            if s is not None:
                self._edge(c[0], c[1], c[2], c[3], c[4], s[1], s[3], s[4], s[5], edges)
            else:
                lone.append((key, _j, c))
        if lone:
            peers = self._peers(batch, ci[[j for _k, j, _c in lone]])
            for (key, _j, c), peer in zip(lone, peers):
                waiting_clients[key] = (deadline, *c, peer)
        excess = len(waiting_clients) + len(waiting_servers) - self.max_pending
        if excess > 0:
            self._evict(excess, edges)

    def _edge(self, client, kind, c_start, c_end, c_err, server, s_start, s_end, s_err, edges) -> None:
        if client == server:
            self.counts["same_service"] += 1
            return
        self.counts["paired"] += 1
        duration = c_end - c_start if c_end > c_start else max(0, s_end - s_start)
        edges.append((client, server, CONNECTION.get(kind, "request"), c_start, duration, c_err or s_err))

    def _peers(self, batch, rows: np.ndarray) -> list:
        """The ``peer.service`` (else ``server.address``) string attribute of each span row, or None."""
        out = [None] * len(rows)
        attrs = batch.attrs
        if not len(attrs) or not len(rows):
            return out
        lengths = {len(k) for k in PEER_ATTRIBUTES}
        at = np.flatnonzero((attrs["where"] == AT_SPAN) & (attrs["vtype"] == VT_STRING)
                            & np.isin(attrs["key_len"], list(lengths))
                            & np.isin(attrs["span"], rows))
        if not len(at):
            return out
        pos = {r: i for i, r in enumerate(rows.tolist())}
        buf = batch.buf
        rank = {k: i for i, k in enumerate(PEER_ATTRIBUTES)}
        best: dict[int, tuple[int, str]] = {}
        for span, koff, klen, voff, vlen in zip(*(attrs[f][at].tolist() for f in
                                                  ("span", "key_off", "key_len", "val_off", "val_len"))):
            r = rank.get(bytes(buf[koff:koff + klen]))
            if r is None or vlen == 0:
                continue
            have = best.get(span)
            if have is None or r < have[0]:
                best[span] = (r, bytes(buf[voff:voff + vlen]).decode("utf-8", "replace"))
        for span, (_r, value) in best.items():
            out[pos[span]] = value
        return out

    # ------------------------------------------------------------------ waiting halves

    def expire(self) -> None:
        """Give up on halves that waited ``wait_s`` (``observe`` and a timer on its loop call it)."""
        edges: list[tuple] = []
        self._expire(self.clock(), edges)
        self._record(edges)

    def _expire(self, now: float, edges: list) -> None:
        for table in (self.clients, self.servers):
            while table:
                key = next(iter(table))
                if table[key][0] > now:
                    break
                self._give_up(table is self.clients, table.popitem(last=False)[1], edges)
                self.counts["expired"] += 1

    def _evict(self, n: int, edges: list) -> None:
        for _ in range(n):
            c = next(iter(self.clients.values()), None)
            s = next(iter(self.servers.values()), None)
            if c is not None and (s is None or c[0] <= s[0]):
                self._give_up(True, self.clients.popitem(last=False)[1], edges)
            elif s is not None:
                self.servers.popitem(last=False)
            else:
                return
            self.counts["evicted"] += 1

    def _give_up(self, is_client: bool, half: tuple, edges: list) -> None:
        if not is_client:
            return
        _deadline, service, kind, start, end, error, peer = half
        if peer and peer != service:
            self.counts["peer_edges"] += 1
            edges.append((service, peer, CONNECTION.get(kind, "request"), start, max(0, end - start), error))

    # ------------------------------------------------------------------ series

    def _record(self, edges: list) -> None:
        if not edges:
            return
        ids = np.empty(len(edges), dtype=np.int64)
        cache = self._ids
        for i, (client, server, conn, *_rest) in enumerate(edges):
            key = (client, server, conn)
            sid = cache.get(key)
            if sid is None:
                sid = cache[key] = self.series.series_id((FAMILY, client, server, conn))
            ids[i] = sid
        _c, _s, _k, start, duration, error = zip(*edges)
        self.series.add(ids, np.array(start, dtype=np.uint64), np.array(duration, dtype=np.uint64),
                        np.array(error, dtype=bool))

    def stats(self) -> dict:
        """Counters since start, and how many halves wait now."""
        return {**self.counts, "waiting_clients": len(self.clients), "waiting_servers": len(self.servers)}
