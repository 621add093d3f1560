"""Analytics: the critical path of one trace, read from its stored OTLP ``TracesData``.

The critical path is what the trace's duration waited on.  From the end of the main root,
walk back: the last-finishing child that ends at or before the current point is on the path
(children are clipped to their parent first); the time between that child's end and the
current point belongs to the parent itself; then descend into the child from its end, and
continue in the parent from the child's start.  Children that overlap a child already on the
path (they end after the current point) are skipped.  The segments tile the main root's
interval exactly, so their durations add up to the root's duration.

This is the same definition, tie for tie, as the UI's ``criticalPath`` (``ui/lib/model.js``):

* the tree: a span whose parent is missing is a root (``missing_parent``); of spans that share
  an ID, the first one seen is the parent of that ID's children; parent cycles are broken at
  the first span found in one (it becomes a root); a span that ends before it starts ends at
  its start;
* the main root: the longest true root (no parent ID, or a parent that is itself), else the
  longest root of any kind; ties go to the earliest (by start, end, name);
* a span without a start time (0) lasts nothing and is placed at its parent's start (a root
  of them at the trace's earliest start); a span without an end ends at its start;
* siblings are ordered by end (latest first), ties by start, end and name (earliest first).

Timestamps are integer epoch nanoseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.trace.v1 import trace_pb2

NO_SERVICE = "OTLP_ResourceNoServiceName"  # the store's name for a resource without service.name


@dataclass(eq=False)
class Node:
    span_id: str  # hex; "~2", "~3"… appended for later spans that share an ID
    parent_id: str  # hex, "" for a root
    service: str
    name: str
    start: int
    end: int
    kind: int = 0
    timed: bool = True  # False: the span came without a start time
    children: list = field(default_factory=list)
    parent: "Node | None" = None
    missing_parent: bool = False

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass
class Segment:
    node: Node
    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start


def _service(resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            return kv.value.string_value or NO_SERVICE
    return NO_SERVICE


def nodes_from_traces_data(raw: bytes) -> list[Node]:
    """One node per span of a serialized ``TracesData``, in the message's order."""
    data = trace_pb2.TracesData.FromString(raw)
    out = []
    for rs in data.resource_spans:
        service = _service(rs.resource)
        for ss in rs.scope_spans:
            for s in ss.spans:
                start, end = s.start_time_unix_nano, s.end_time_unix_nano
                out.append(Node(span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
                                service=service, name=s.name, start=start,
                                end=end if end >= start else start, kind=s.kind, timed=start > 0))
    return out


def _order(n: Node):
    return (n.start, n.end, n.name)


def build_tree(nodes: list[Node]) -> list[Node]:
    """Link ``nodes`` into a tree (see the module docstring); returns the roots, sorted."""
    by_id: dict[str, Node] = {}
    for n in nodes:
        if n.span_id in by_id:
            k = 2
            while f"{n.span_id}~{k}" in by_id:
                k += 1
            n.span_id = f"{n.span_id}~{k}"
        by_id[n.span_id] = n
    for n in nodes:
        n.parent, n.children, n.missing_parent = None, [], False
    for n in nodes:
        p = by_id.get(n.parent_id) if n.parent_id else None
        if p is not None and p is not n:
            n.parent = p
            p.children.append(n)
        elif n.parent_id and p is None:
            n.missing_parent = True
    roots = [n for n in nodes if n.parent is None]
    seen: set[int] = set()

    def walk(start: list[Node]) -> None:
        stack = list(start)
        while stack:
            s = stack.pop()
            if id(s) in seen:
                continue
            seen.add(id(s))
            stack.extend(s.children)

    walk(roots)
    if len(seen) < len(nodes):  # parent cycles: break each at the first span found in it
        for n in nodes:
            if id(n) in seen:
                continue
            n.parent.children.remove(n)
            n.parent, n.missing_parent = None, True
            roots.append(n)
            walk([n])
    untimed = [n for n in nodes if not n.timed]
    if untimed:
        first = min((n.start for n in nodes if n.timed), default=0)

        def place(n: Node) -> int:
            chain = []
            while not n.timed and n.parent is not None:
                chain.append(n)
                n = n.parent
            at = n.start if n.timed else first
            if not n.timed:
                n.start = n.end = at
                n.timed = True
            for m in chain:
                m.start = m.end = at
                m.timed = True
            return at

        for n in untimed:
            place(n)
    roots.sort(key=lambda r: (r.missing_parent, _order(r)))
    for n in nodes:
        n.children.sort(key=_order)
    return roots


def main_root(roots: list[Node]) -> Node | None:
    """The longest true root, else the longest root; the earliest wins a tie."""
    real = [r for r in roots if not r.missing_parent]
    best = None
    for r in real or roots:
        if best is None or r.duration > best.duration:
            best = r
    return best


def critical_path(nodes: list[Node]) -> list[Segment]:
    """The critical path of a trace's spans, as segments in time order (empty: no spans)."""
    root = main_root(build_tree(nodes))
    if root is None:
        return []

    def clipped(node: Node, lo: int, hi: int) -> list[tuple[Node, int, int]]:
        out = []
        for c in node.children:  # sorted by start, end, name; the sort below is stable
            a, b = max(c.start, lo), min(c.end, hi)
            if b > a:
                out.append((c, a, b))
        out.sort(key=lambda x: -x[2])
        return out

    segs: list[Segment] = []
    # frame: [node, lo, cursor, clipped children, next child]
    stack = [[root, root.start, root.end, clipped(root, root.start, root.end), 0]]
    while stack:
        f = stack[-1]
        node, lo, cursor, kids, i = f
        while i < len(kids) and kids[i][2] > cursor:
            i += 1
        if i < len(kids):
            child, a, b = kids[i]
            f[4] = i + 1
            if b < cursor:
                segs.append(Segment(node, b, cursor))
            f[2] = a
            stack.append([child, a, b, clipped(child, a, b), 0])
        else:
            f[4] = i
            if cursor > lo:
                segs.append(Segment(node, lo, cursor))
            stack.pop()
    if not segs:
        segs.append(Segment(root, root.start, root.end))
    segs.reverse()
    return segs


def trace_critical_path(raw: bytes) -> list[Segment]:
    """The critical path of a serialized ``TracesData`` holding one trace."""
    return critical_path(nodes_from_traces_data(raw))


def service_times(segs: list[Segment]) -> dict[str, int]:
    """Nanoseconds on the path per service."""
    out: dict[str, int] = {}
    for s in segs:
        out[s.node.service] = out.get(s.node.service, 0) + s.duration
    return out
