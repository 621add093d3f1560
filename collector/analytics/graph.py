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

``observe`` runs on the event loop, once per decoded batch: halves that pair inside the batch
are matched with one dict of their keys and their edges computed as numpy columns; only halves
left over (their other half is in another request) become Python tuples in the waiting tables.
No numpy call that releases the GIL (sorts, searches, ``bincount``) runs here.
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
_MAX_SERVICES = 1 << 21  # service names numbered for the bulk pairing, at most (then renumbered)


_ROLE = np.zeros(256, np.uint8)  # span kind → its half: 1 client/producer, 2 server/consumer
_ROLE[[KIND_CLIENT, KIND_PRODUCER]] = 1
_ROLE[[KIND_SERVER, KIND_CONSUMER]] = 2


def _take(spans: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``spans[idx]``, copying whole rows as raw bytes (far cheaper than field by field)."""
    if spans.ndim == 1 and spans.flags.c_contiguous:
        return spans.view(np.dtype((np.void, spans.dtype.itemsize)))[idx].view(spans.dtype)
    return spans[idx]


_KEY_DTYPE = np.dtype([("t", "V16"), ("s", "V8")])


def _keys(rows: np.ndarray, id_field: str) -> np.ndarray:
    """The 24-byte pairing keys (trace ID + span ID) of span rows, as one void array."""
    keys = np.empty(len(rows), dtype=_KEY_DTYPE)
    keys["t"] = rows["trace_id"]
    keys["s"] = rows[id_field]
    return keys.view("V24")


_IOTA = np.arange(4096, dtype=np.int64)


def _iota(n: int) -> np.ndarray:
    """``np.arange(n)``, from a cached array when it is short enough."""
    return _IOTA[:n] if n <= len(_IOTA) else np.arange(n, dtype=np.int64)


def _split(keys: np.ndarray) -> list[bytes]:
    """The keys as ``bytes`` (the waiting tables' keys)."""
    raw = keys.tobytes()
    return [raw[i:i + 24] for i in range(0, len(raw), 24)]


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
        # services seen in pairs → a small integer; (client, server, connection) codes → series
        self._svc_index: dict[str, int] = {}
        self._names: list[str] = []
        self._code_sid: dict[int, int] = {}
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
        bulk = None
        if len(spans):
            role = _ROLE[spans["kind"]]  # 1 client or producer, 2 server or consumer, else 0
            ci = np.flatnonzero(role == 1)
            si = np.flatnonzero((role == 2) & (spans["parent_id_len"] > 0))
            if len(ci) or len(si):
                bulk = self._pair(batch, ci, si, now, edges)
        self._record(edges, bulk)
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

    def _pair(self, batch, ci, si, now, edges):
        """Pairs inside the batch are found with one dict of the clients' 24-byte keys and their
        edges computed as columns for ``_record``; only the halves left over touch the waiting
        tables one by one."""
        spans = batch.spans
        services = [r[1] or NO_SERVICE for r in batch.resources]
        deadline = now + self.wait_s
        crow, srow = _take(spans, ci), _take(spans, si)
        ck = _keys(crow, "span_id")
        sk = _keys(srow, "parent_span_id")
        ckeys, skeys = _split(ck), _split(sk)
        # this batch's clients by key (the last of equal keys is the one that can pair): a dict,
        # not a numpy sort or search, which would hand the GIL to the other threads
        here = {k: j for j, k in enumerate(ckeys)}
        get = here.get
        match = [get(k, -1) for k in skeys]  # per server, its client in this batch
        hits = [j for j in match if j >= 0]
        if len(set(hits)) < len(hits):  # one server per client: the first in the batch takes it
            taken: set = set()
            for i, j in enumerate(match):
                if j >= 0:
                    if j in taken:
                        match[i] = -1
                    else:
                        taken.add(j)
        m = np.array(match, np.int64)
        s_in = np.flatnonzero(m >= 0)
        srest = np.flatnonzero(m < 0)
        cleft = np.ones(len(ck), bool)  # clients for the waiting tables: not paired here, and
        if len(here) < len(ck):  # the last of equal keys
            cleft[:] = False
            cleft[list(here.values())] = True
        bulk = None
        if len(s_in):
            c_in = m[s_in]
            cleft[c_in] = False
            bulk = self._bulk_edges(services, _take(crow, c_in), _take(srow, s_in))
        waiting_clients, waiting_servers = self.clients, self.servers
        if len(srest):
            rows = _take(srow, srest)
            vals = zip([services[r] for r in rows["resource"].tolist()], rows["kind"].tolist(),
                       rows["start_ns"].tolist(), rows["end_ns"].tolist(),
                       (rows["status_code"] == STATUS_ERROR).tolist())
            for i, (service, kind, start, end, error) in zip(srest.tolist(), vals):
                key = skeys[i]
                c = waiting_clients.pop(key, None)
                if c is not None:
                    self._edge(c[1], c[2], c[3], c[4], c[5], service, start, end, error, edges)
                    continue
                waiting_servers[key] = (deadline, service, kind, start, end, error)
        crest = np.flatnonzero(cleft)  # clients left over, in batch order
        lone = []
        if len(crest):
            rows = _take(crow, crest)
            vals = zip([services[r] for r in rows["resource"].tolist()], rows["kind"].tolist(),
                       rows["start_ns"].tolist(), rows["end_ns"].tolist(),
                       (rows["status_code"] == STATUS_ERROR).tolist())
            for j, c in zip(crest.tolist(), vals):
                key = ckeys[j]
                s = waiting_servers.pop(key, None)
                if s is not None:
                    self._edge(c[0], c[1], c[2], c[3], c[4], s[1], s[3], s[4], s[5], edges)
                else:
                    lone.append((key, j, c))
        if lone:
            peers = self._peers(batch, ci[[j for _k, j, _c in lone]])
            for (key, _j, c), peer in zip(lone, peers):
                waiting_clients[key] = (deadline, *c, peer)
        excess = len(waiting_clients) + len(waiting_servers) - self.max_pending
        if excess > 0:
            self._evict(excess, edges)
        return bulk

    def _bulk_edges(self, services: list, c, s):
        """Edges of the pairs found inside one batch (client rows ``c``, server rows ``s``): the
        series ids, start, duration and error columns (same-service pairs counted and dropped)."""
        svc_index = self._svc_index
        if len(svc_index) >= _MAX_SERVICES:  # a bounded table: start anew (the codes too)
            svc_index.clear()
            self._names.clear()
            self._code_sid.clear()
        names = self._names
        ids = []
        for name in services:
            i = svc_index.get(name)
            if i is None:
                i = svc_index[name] = len(names)
                names.append(name)
            ids.append(i)
        svc = np.array(ids, np.int64)
        a = svc[c["resource"]]
        b = svc[s["resource"]]
        cross = a != b
        same = len(cross) - int(np.count_nonzero(cross))
        self.counts["same_service"] += same
        if same:
            c, s, a, b = c[cross], s[cross], a[cross], b[cross]
        n = len(c)
        self.counts["paired"] += n
        if not n:
            return None
        # (client, server, connection) as one integer; its series id from a dict
        code = (((a << 21) | b) << 1) | (c["kind"] == KIND_PRODUCER)
        code_sid = self._code_sid
        found = [code_sid.get(t, -1) for t in code.tolist()]
        if -1 in found:
            cache = self._ids
            for t in set(code.tolist()) - code_sid.keys():
                key = (names[t >> 22], names[(t >> 1) & (_MAX_SERVICES - 1)], "messaging" if t & 1 else "request")
                sid = cache.get(key)
                if sid is None:
                    sid = cache[key] = self.series.series_id((FAMILY, *key))
                code_sid[t] = sid
            found = [code_sid[t] for t in code.tolist()]
        c_start = c["start_ns"].astype(np.int64)
        c_dur = c["end_ns"].astype(np.int64) - c_start
        s_dur = np.maximum(s["end_ns"].astype(np.int64) - s["start_ns"].astype(np.int64), 0)
        duration = np.where(c_dur > 0, c_dur, s_dur)
        error = (c["status_code"] == STATUS_ERROR) | (s["status_code"] == STATUS_ERROR)
        return np.array(found, np.int64), c_start, duration, error

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
        # only the attributes of these spans (attrs[attr_start:attr_start + attr_count] each)
        sp = _take(batch.spans, rows)
        cnt = sp["attr_count"].astype(np.int64)
        total = int(cnt.sum())
        if not total:
            return out
        first = sp["attr_start"].astype(np.int64) - np.cumsum(cnt) + cnt
        at = np.repeat(first, cnt) + _iota(total)
        owner = np.repeat(rows, cnt)
        inside = at < len(attrs)
        if not inside.all():
            at, owner = at[inside], owner[inside]
        a = _take(attrs, at)
        key_len = a["key_len"]
        fit = np.zeros(len(a), bool)
        for n in {len(k) for k in PEER_ATTRIBUTES}:
            fit |= key_len == n
        at = at[fit & (a["where"] == AT_SPAN) & (a["vtype"] == VT_STRING) & (a["span"] == owner)]
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

    def _record(self, edges: list, bulk=None) -> None:
        cols = [bulk] if bulk is not None else []
        if edges:
            ids = np.empty(len(edges), dtype=np.int64)
            cache = self._ids
            for i, (client, server, conn, *_rest) in enumerate(edges):
                key = (client, server, conn)
                sid = cache.get(key)
                if sid is None:
                    sid = cache[key] = self.series.series_id((FAMILY, client, server, conn))
                ids[i] = sid
            _c, _s, _k, start, duration, error = zip(*edges)
            cols.append((ids, np.array(start, dtype=np.int64), np.array(duration, dtype=np.int64),
                         np.array(error, dtype=bool)))
        if not cols:
            return
        if len(cols) == 1:
            self.series.add(*cols[0])
        else:
            self.series.add(*(np.concatenate(parts) for parts in zip(*cols)))

    def stats(self) -> dict:
        """Counters since start, and how many halves wait now."""
        return {**self.counts, "waiting_clients": len(self.clients), "waiting_servers": len(self.servers)}
