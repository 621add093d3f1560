"""Index stage: searches and listings across partitions (the ``SpanSearcher`` contract).

Each partition's index matches spans and judges its traces (``collector/store/index.py``); this
module prunes partitions by time, merges their candidates newest first, cuts at the limit and
makes each listed trace whole across partitions.  A host class provides ``_readable()`` (its
partitions of every tier, newest first, each with ``index``, ``spans``, ``min_start``,
``max_end`` and ``holds(trace_id)``) and ``get_trace``.
"""
from __future__ import annotations

import numpy as np

from collector.model import KIND_NAMES, STATUS_ERROR
from collector.store import criteria as C
from collector.store.contract import FLAG_ERROR
from collector.store.index import NO_SERVICE, SCOPE_WHERE, _rare_text
from collector.store.terms import VALUE_TYPES, W_RESOURCE, W_SCOPE

MATCHED_PER_TRACE = 3
_UNTIMED = np.uint64(np.iinfo(np.uint64).max)  # trace start when none of its spans has a start time
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _overlaps(part, start_ns, end_ns) -> bool:
    """Might the partition hold a span that started in the window?"""
    if not part.spans or getattr(part, "corrupt", None):
        return False
    if start_ns is not None and part.max_end < start_ns:
        return False
    if end_ns is not None and part.min_start > end_ns:
        return False
    return True


class SearchMixin:
    def _await_index(self) -> None:
        """Hosts that index asynchronously wait here until acknowledged writes are searchable."""

    def _search_parts(self, start_ns=None, end_ns=None) -> list:
        self._await_index()
        return [p for p in self._readable() if _overlaps(p, start_ns, end_ns)]

    # ------------------------------------------------------------------ traces

    def find_traces(self, query: C.TraceQuery) -> list[C.TraceSummary]:
        parts = self._search_parts(query.start_min_ns, query.start_max_ns)
        starts, owners, tords, matched = [], [], [], {}
        keep = max(query.limit * 2, 16)  # per partition; duplicates across partitions are rare
        for pi, part in enumerate(parts):
            ix = part.index
            t, st, spans = ix.top_traces(query, keep)
            if not len(t):
                continue
            starts.append(st)
            owners.append(np.full(len(t), pi, np.int32))
            tords.append(t)
            matched[pi] = spans
        if not starts:
            return []
        st = np.concatenate(starts)
        own = np.concatenate(owners)
        tr = np.concatenate(tords)
        order = np.argsort(st, kind="stable")[::-1]
        chosen: dict[bytes, list] = {}
        for i in order.tolist():
            pi, t = int(own[i]), int(tr[i])
            tid = parts[pi].index.t_id.a[t].tobytes()
            if tid in chosen:
                chosen[tid].append((pi, t))
                continue
            if len(chosen) >= query.limit:
                break
            chosen[tid] = [(pi, t)]
        per_part: dict[int, list[int]] = {}
        for where in chosen.values():
            for pi, t in where:
                per_part.setdefault(pi, []).append(t)
        found = {}  # (partition, trace ordinal) → matched spans
        for pi, ts in per_part.items():
            found.update(((pi, t), m) for t, m in self._matched(parts[pi].index, matched[pi], ts).items())
        out = []
        for tid, where in chosen.items():
            summary = self._summary(tid)
            if summary is None:
                continue
            for pi, t in where:
                summary.matched.extend(found.get((pi, t), []))
            out.append(summary)
        out.sort(key=lambda s: s.start_ns, reverse=True)
        return out

    def _matched(self, ix, spans: np.ndarray, traces: list[int]) -> dict[int, list[C.MatchedSpan]]:
        """The first matching spans of each listed trace (one pass over the matched spans)."""
        with ix.lock:
            cols = ix.cols.a
            of_trace = cols["trace"][spans]
            sel = spans[np.isin(of_trace, np.array(traces, np.uint32))]
            out: dict[int, list[C.MatchedSpan]] = {}
            for o in sel.tolist():
                row = cols[o]
                t = int(row["trace"])
                have = out.setdefault(t, [])
                if len(have) >= MATCHED_PER_TRACE:
                    continue
                svc, name = ix.op_name(int(row["op"]))
                have.append(C.MatchedSpan(int(row["sid"]).to_bytes(8, "little"), svc, name,
                                          int(row["start"]), int(row["end"]) - int(row["start"])))
            return out

    def _summary(self, tid: bytes) -> C.TraceSummary | None:
        """One trace's summary, whole across partitions (services read from its spans)."""
        summary = None
        for part in self._readable():
            if not part.holds(tid):
                continue
            ix = part.index
            with ix.lock:
                t = ix.tmap.get(tid)
                if t is None:
                    continue
                start, end = int(ix.t_start.a[t]), int(ix.t_end.a[t])
                if start == int(_UNTIMED):
                    start = end
                spans, errors, root = int(ix.t_spans.a[t]), int(ix.t_errors.a[t]), int(ix.t_root.a[t])
                root_svc, root_name = ix.op_name(root) if root >= 0 else ("", "")
            if summary is None:
                summary = C.TraceSummary(tid, start, end, spans, errors, root_svc, root_name)
            else:
                summary.start_ns = min(summary.start_ns, start)
                summary.end_ns = max(summary.end_ns, end)
                summary.span_count += spans
                summary.error_count += errors
                if not summary.root_service and root_svc:
                    summary.root_service, summary.root_name = root_svc, root_name
        if summary is None:
            return None
        trace = self.get_trace(tid)
        if trace is not None:
            summary.trace = trace
            summary.span_count = len(trace.spans)  # identical retried spans are counted once
            summary.error_count = 0
            services, names = {}, {}
            for s in trace.spans:
                name = names.get(s.resource_id)
                if name is None:
                    name = names[s.resource_id] = self._service_of(s.resource_id)
                entry = services.setdefault(name, [0, 0])
                entry[0] += 1
                if s.flags & FLAG_ERROR:
                    entry[1] += 1
                    summary.error_count += 1
            summary.services = services
        return summary

    def _service_of(self, resource_id: int) -> str:
        for part in self._readable():
            name = part.service_of(resource_id)
            if name is not None:
                return name
        return NO_SERVICE

    # ------------------------------------------------------------------ listings

    def services(self, start_ns=None, end_ns=None) -> list[str]:
        names = set()
        for part in self._search_parts(start_ns, end_ns):
            with part.index.lock:
                names.update(n for n, bm in zip(part.index.services, part.index.svc_bm) if bm)
        return sorted(names)

    def operations(self, service, kind=None, start_ns=None, end_ns=None) -> list[tuple[str, str]]:
        if kind is not None and kind not in KIND_NAMES:
            raise C.CriteriaError(f"span kind is one of {', '.join(KIND_NAMES)}, not {kind!r}")
        out = set()
        for part in self._search_parts(start_ns, end_ns):
            ix = part.index
            with ix.lock:
                want = ix.svc_map.get(service) if service is not None else None
                if service is not None and want is None:
                    continue
                for svc, name, k in ix.ops:
                    if (want is None or svc == want) and (kind is None or KIND_NAMES[k] == kind):
                        out.add((name, KIND_NAMES[k]))
        return sorted(out)

    def tag_keys(self, scope="any", start_ns=None, end_ns=None) -> list[str]:
        if scope not in SCOPE_WHERE:
            raise C.CriteriaError(f"scope is one of {', '.join(SCOPE_WHERE)}, not {scope!r}")
        wheres = set(SCOPE_WHERE[scope])
        keys = set()
        for part in self._search_parts(start_ns, end_ns):
            with part.index.lock:
                keys.update(k for (w, k) in part.index.keys if w in wheres)
                keys.update(k for (w, k) in part.index.key_names.values() if w in wheres)
        return sorted(keys)

    def tag_values(self, attr, service=None, start_ns=None, end_ns=None, limit=1000):
        wheres = SCOPE_WHERE[attr.scope]
        out = set()
        for part in self._search_parts(start_ns, end_ns):
            ix = part.index
            with ix.lock:
                svc_bm = None
                if service is not None:
                    o = ix.svc_map.get(service)
                    if o is None:
                        continue
                    svc_bm = ix.svc_bm[o]
                for w in wheres:
                    for h in ix.keys.get((w, attr.key), ()):
                        _w, _k, text, vtype = ix.dictionary[h]
                        if svc_bm is not None and not ix._term_spans(h, w).intersect(svc_bm):
                            continue
                        out.add((text, VALUE_TYPES.get(vtype, "string")))
                        if len(out) >= limit:
                            return sorted(out)
                    if w in (W_RESOURCE, W_SCOPE):
                        continue
                    for rows, arena, sel in ix.rare_values(w, attr.key):
                        if svc_bm is not None:
                            sel = sel[np.isin(rows["ord"][sel], np.frombuffer(svc_bm.to_array(), np.uint32))]
                        for i in sel.tolist():
                            out.add((_rare_text(rows, arena, i), VALUE_TYPES.get(int(rows["vtype"][i]), "string")))
                            if len(out) >= limit:
                                return sorted(out)
        return sorted(out)

    def dependencies(self, start_ns, end_ns) -> list[tuple[str, str, int, int]]:
        counts: dict[tuple[str, str], list[int]] = {}
        for part in self._search_parts(start_ns, end_ns):
            ix = part.index
            with ix.lock:
                cols = ix.cols.view()
                op_svc = ix.op_svc.view()
                services = list(ix.services)
            if not len(cols):
                continue
            key = (cols["trace"].astype(np.uint64) * _GOLDEN) ^ cols["sid"]
            order = np.argsort(key)
            skey = key[order]
            child = cols["pid"] != 0
            if start_ns is not None:
                child &= cols["start"] >= start_ns
            if end_ns is not None:
                child &= cols["start"] <= end_ns
            ci = np.flatnonzero(child)
            pkey = (cols["trace"][ci].astype(np.uint64) * _GOLDEN) ^ cols["pid"][ci]
            pos = np.searchsorted(skey, pkey)
            pos[pos >= len(skey)] = 0
            found = skey[pos] == pkey
            ci, parent = ci[found], order[pos[found]]
            psvc = op_svc[cols["op"][parent]].astype(np.int64)
            csvc = op_svc[cols["op"][ci]].astype(np.int64)
            cross = psvc != csvc
            if not cross.any():
                continue
            pairs, inverse, n = np.unique(np.stack([psvc[cross], csvc[cross]], axis=1), axis=0,
                                          return_inverse=True, return_counts=True)
            failed = np.bincount(inverse.reshape(-1), weights=cols["status"][ci[cross]] == STATUS_ERROR,
                                 minlength=len(pairs)).astype(np.int64)
            for (p, c), k, e in zip(pairs.tolist(), n.tolist(), failed.tolist()):
                tally = counts.setdefault((services[p], services[c]), [0, 0])
                tally[0] += k
                tally[1] += e
        return sorted((p, c, k, e) for (p, c), (k, e) in counts.items())
