"""Measure stage: Zipkin translator micro-benchmark (v2 JSON and proto3 → OTLP request bytes).

Requests of ``--sizes`` spans are cut from the Zipkin Lens test traces in
``../shared/conformance/zipkin/lens-testdata`` (real traces: smartthings, yelp, kafka, …, taken in
file order and cycled).  Contenders, per format:

* ``compiled``  ``collector.codec.zipkin`` as picked (the Cython twin ``_ext._zipkin`` when built):
  parse + validate + translate to OTLP ``ExportTraceServiceRequest`` bytes;
* ``python``    the pure-Python reference ``collector/codec/zipkin.py``, same work;
* ``baseline``  JSON: ``json.loads`` plus a plain Python walk touching every field the translator
  reads (IDs hex-decoded, kind, name, times, endpoints, annotations, tags); proto3: the
  ``protobuf`` package parsing ``zipkin.proto3.ListOfSpans`` (classes built at run time from a
  ``FileDescriptorProto`` written below, no protoc) plus the same walk.  The baseline produces
  no OTLP, so it is charged less work than the translators.

Timing is ``perf.decode_bench.time_it``: a loop count calibrated to ``--min-time`` seconds, best
of ``--repeat``.  A table is printed and a JSON report written (``perf/results/zipkin-<ts>.json``).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import sys
from datetime import datetime
from pathlib import Path

from perf.decode_bench import RESULTS_DIR, time_it

LENS = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "zipkin" / "lens-testdata"


# ------------------------------------------------------------------ zipkin.proto at run time

def zipkin_proto_classes():
    """(ListOfSpans, Span) message classes of zipkin.proto3, built without protoc."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="clew_bench_zipkin.proto", package="zipkin.proto3",
                                            syntax="proto3")

    def add(msg, name, number, typ, label=F.LABEL_OPTIONAL, type_name=None):
        f = msg.field.add(name=name, number=number, type=typ, label=label)
        if type_name:
            f.type_name = type_name

    ep = fd.message_type.add(name="Endpoint")
    add(ep, "service_name", 1, F.TYPE_STRING)
    add(ep, "ipv4", 2, F.TYPE_BYTES)
    add(ep, "ipv6", 3, F.TYPE_BYTES)
    add(ep, "port", 4, F.TYPE_INT32)
    an = fd.message_type.add(name="Annotation")
    add(an, "timestamp", 1, F.TYPE_FIXED64)
    add(an, "value", 2, F.TYPE_STRING)
    sp = fd.message_type.add(name="Span")
    kind = sp.enum_type.add(name="Kind")
    for n, name in enumerate(("SPAN_KIND_UNSPECIFIED", "CLIENT", "SERVER", "PRODUCER", "CONSUMER")):
        kind.value.add(name=name, number=n)
    entry = sp.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    add(entry, "key", 1, F.TYPE_STRING)
    add(entry, "value", 2, F.TYPE_STRING)
    add(sp, "trace_id", 1, F.TYPE_BYTES)
    add(sp, "parent_id", 2, F.TYPE_BYTES)
    add(sp, "id", 3, F.TYPE_BYTES)
    add(sp, "kind", 4, F.TYPE_ENUM, type_name=".zipkin.proto3.Span.Kind")
    add(sp, "name", 5, F.TYPE_STRING)
    add(sp, "timestamp", 6, F.TYPE_FIXED64)
    add(sp, "duration", 7, F.TYPE_UINT64)
    add(sp, "local_endpoint", 8, F.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    add(sp, "remote_endpoint", 9, F.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    add(sp, "annotations", 10, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Annotation")
    add(sp, "tags", 11, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Span.TagsEntry")
    add(sp, "debug", 12, F.TYPE_BOOL)
    add(sp, "shared", 13, F.TYPE_BOOL)
    ls = fd.message_type.add(name="ListOfSpans")
    add(ls, "spans", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".zipkin.proto3.Span")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    get = message_factory.GetMessageClass
    return get(pool.FindMessageTypeByName("zipkin.proto3.ListOfSpans")), get(
        pool.FindMessageTypeByName("zipkin.proto3.Span"))


def _ip(text):
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:  # e.g. '52.0.0.04' in the smartthings data: proto3 cannot carry it
        return b""


def to_proto(spans, ListOfSpans) -> bytes:
    kinds = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}
    msg = ListOfSpans()
    for s in spans:
        p = msg.spans.add(trace_id=bytes.fromhex(s["traceId"]), id=bytes.fromhex(s["id"]),
                          kind=kinds.get(s.get("kind"), 0), name=s.get("name", ""),
                          timestamp=s.get("timestamp", 0), duration=s.get("duration", 0),
                          debug=s.get("debug", False), shared=s.get("shared", False))
        if s.get("parentId"):
            p.parent_id = bytes.fromhex(s["parentId"])
        for key, field in (("localEndpoint", p.local_endpoint), ("remoteEndpoint", p.remote_endpoint)):
            ep = s.get(key)
            if ep is not None:
                field.SetInParent()
                field.service_name = ep.get("serviceName", "")
                field.ipv4 = _ip(ep["ipv4"]) if ep.get("ipv4") else b""
                field.ipv6 = _ip(ep["ipv6"]) if ep.get("ipv6") else b""
                field.port = ep.get("port", 0)
        for a in s.get("annotations", []):
            p.annotations.add(timestamp=a["timestamp"], value=a["value"])
        for k, v in s.get("tags", {}).items():
            p.tags[k] = v
    return msg.SerializeToString()


# ------------------------------------------------------------------------------- baselines

def json_walk(body: bytes) -> int:
    """json.loads and read every field the translator reads; return the span count."""
    n = 0
    for s in json.loads(body):
        _ = (bytes.fromhex(s["traceId"]), bytes.fromhex(s["id"]),
             bytes.fromhex(s["parentId"]) if s.get("parentId") else b"",
             s.get("kind"), s.get("name"), s.get("timestamp", 0) * 1000,
             (s.get("timestamp", 0) + s.get("duration", 0)) * 1000, s.get("debug"), s.get("shared"))
        for key in ("localEndpoint", "remoteEndpoint"):
            ep = s.get(key)
            if ep:
                _ = (ep.get("serviceName"), ep.get("ipv4"), ep.get("ipv6"), ep.get("port"))
        for a in s.get("annotations", ()):
            _ = (a["timestamp"] * 1000, a["value"])
        for k, v in s.get("tags", {}).items():
            _ = (k, v)
        n += 1
    return n


def proto_walker(ListOfSpans):
    def proto_walk(body: bytes) -> int:
        n = 0
        for s in ListOfSpans.FromString(body).spans:
            _ = (s.trace_id, s.id, s.parent_id, s.kind, s.name, s.timestamp * 1000,
                 (s.timestamp + s.duration) * 1000, s.debug, s.shared)
            for ep in (s.local_endpoint, s.remote_endpoint):
                _ = (ep.service_name, ep.ipv4, ep.ipv6, ep.port)
            for a in s.annotations:
                _ = (a.timestamp * 1000, a.value)
            for k, v in s.tags.items():
                _ = (k, v)
            n += 1
        return n
    return proto_walk


# ------------------------------------------------------------------------------------- run

def lens_spans() -> list:
    spans = []
    for path in sorted(LENS.glob("*.json")):
        spans.extend(json.loads(path.read_bytes()))
    return spans


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="100,1000", help="spans per request, comma separated")
    p.add_argument("--formats", default="json,proto", help="json, proto or both")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--repeat", type=int, default=5, help="measurements; the best is kept")
    p.add_argument("--only", default="compiled,python,baseline",
                   help="contenders to run (compiled, python, baseline)")
    p.add_argument("--out", type=Path, help="JSON report (default perf/results/zipkin-<ts>.json)")


def run(a: argparse.Namespace) -> int:
    import collector.codec as codec
    from collector.codec import zipkin as py_zipkin
    from google.protobuf.internal import api_implementation

    picked = codec.twin("zipkin")
    compiled = picked.__name__.startswith("_ext.")
    ListOfSpans, _Span = zipkin_proto_classes()
    contenders = {
        "json": {"compiled": picked.v2_json_to_otlp, "python": py_zipkin.v2_json_to_otlp,
                 "baseline": json_walk},
        "proto": {"compiled": picked.v2_proto_to_otlp, "python": py_zipkin.v2_proto_to_otlp,
                  "baseline": proto_walker(ListOfSpans)},
    }
    chosen = [c.strip() for c in a.only.split(",") if c.strip()]
    formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    for c in chosen:
        if c not in contenders["json"]:
            raise SystemExit(f"--only: unknown contender {c!r}")
    for f in formats:
        if f not in contenders:
            raise SystemExit(f"--formats: unknown format {f!r}")
    print(f"zipkin translator: {picked.__name__}   protobuf backend: {api_implementation.Type()}   "
          f"python {platform.python_version()}", flush=True)
    if not compiled:
        print("warning: _ext._zipkin did not load; 'compiled' runs the Python twin", file=sys.stderr)

    pool = lens_spans()
    results = []
    for size in [int(s) for s in a.sizes.split(",") if s.strip()]:
        spans = [pool[k % len(pool)] for k in range(size)]
        bodies = {"json": json.dumps(spans).encode(), "proto": to_proto(spans, ListOfSpans)}
        for fmt in formats:
            body = bodies[fmt]
            if picked.__dict__[f"v2_{fmt}_to_otlp"](body) != py_zipkin.__dict__[f"v2_{fmt}_to_otlp"](body):
                raise SystemExit(f"the twins disagree on the {fmt} request of {size} spans")
            row = {"format": fmt, "spans": size, "bytes": len(body), "impls": {}}
            for name in chosen:
                sec, loops = time_it(contenders[fmt][name], body, a.min_time, a.repeat)
                row["impls"][name] = {"us_per_request": round(sec * 1e6, 2),
                                      "spans_per_s": round(size / sec, 0),
                                      "mb_per_s": round(len(body) / sec / 1e6, 1), "loops": loops}
                print(f"  {fmt:<5} {size:>6} spans  {name:<9} {sec * 1e6:>11,.1f} us/request", flush=True)
            base = row["impls"].get("baseline")
            for name in ("compiled", "python"):
                if base and name in row["impls"]:
                    row[f"speedup_{name}_vs_baseline"] = round(
                        base["us_per_request"] / row["impls"][name]["us_per_request"], 2)
            results.append(row)

    print()
    print(f"{'format':<6} {'spans':>6} {'KiB':>7} {'contender':<9} {'us/request':>12} {'spans/s':>13} "
          f"{'MB/s':>8} {'vs baseline':>12}")
    for row in results:
        base = row["impls"].get("baseline")
        for name, m in row["impls"].items():
            ratio = f"{base['us_per_request'] / m['us_per_request']:.2f}x" if base else "-"
            print(f"{row['format']:<6} {row['spans']:>6} {row['bytes'] / 1024:>7.1f} {name:<9} "
                  f"{m['us_per_request']:>12,.1f} {m['spans_per_s']:>13,.0f} {m['mb_per_s']:>8,.1f} "
                  f"{ratio:>12}")

    report = {
        "kind": "clew-perf zipkin",
        "version": 1,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "translator": picked.__name__,
        "compiled": compiled,
        "protobuf_backend": api_implementation.Type(),
        "python": platform.python_version(),
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in vars(a).items() if k not in ("func", "command")},
        "results": results,
    }
    out = a.out or RESULTS_DIR / f"zipkin-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
