"""Measure stage: OTLP decoder micro-benchmark (compiled twin, pure-Python twin, protobuf baseline).

Each contender gets the same serialized ``ExportTraceServiceRequest`` and extracts the same facts:

* ``compiled``  ``collector.codec.decode_export_request`` (the Cython twin when ``COMPILED``);
* ``python``    ``collector.codec.otlp.decode_export_request`` (the pure-Python reference twin);
* ``protobuf``  ``ExportTraceServiceRequest.FromString`` plus a Python walk reading what the
  decoders extract: service.name of each resource, and per span the IDs, name, kind, times,
  status code and every span, event and link attribute key and value.  (The decoders also yield
  each span's byte range; the baseline is not charged for an equivalent.)

Timing: a loop count is calibrated so one measurement takes at least ``--min-time`` seconds, then
the best of ``--repeat`` measurements is kept.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from perf.traces import TraceShape, build_request_bytes

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def protobuf_walk(buf: bytes) -> int:
    """Parse with protobuf and touch every field the decoders extract; return the span count."""
    req = ExportTraceServiceRequest.FromString(buf)
    n = 0
    for rs in req.resource_spans:
        service = ""
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = kv.value.string_value
        for ss in rs.scope_spans:
            for sp in ss.spans:
                _ = (sp.trace_id, sp.span_id, sp.parent_span_id, sp.name, sp.kind,
                     sp.start_time_unix_nano, sp.end_time_unix_nano, sp.status.code, service)
                for kv in sp.attributes:
                    v = kv.value
                    which = v.WhichOneof("value")
                    _ = (kv.key, getattr(v, which) if which else None)
                for ev in sp.events:
                    for kv in ev.attributes:
                        v = kv.value
                        which = v.WhichOneof("value")
                        _ = (kv.key, getattr(v, which) if which else None)
                for ln in sp.links:
                    for kv in ln.attributes:
                        v = kv.value
                        which = v.WhichOneof("value")
                        _ = (kv.key, getattr(v, which) if which else None)
                n += 1
    return n


def time_it(fn, arg, min_time: float, repeat: int) -> tuple[float, int]:
    """(best seconds per call, loops per measurement)."""
    loops = 1
    clock = time.perf_counter
    while True:  # calibrate: grow the loop count until one measurement lasts min_time
        t = clock()
        for _ in range(loops):
            fn(arg)
        dt = clock() - t
        if dt >= min_time:
            break
        loops = max(loops * 2, int(loops * min_time / max(dt, 1e-9) * 1.05) + 1)
    best = dt / loops
    for _ in range(repeat - 1):
        t = clock()
        for _ in range(loops):
            fn(arg)
        best = min(best, (clock() - t) / loops)
    return best, loops


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="100,1000", help="spans per request, comma separated")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--repeat", type=int, default=5, help="measurements; the best is kept")
    p.add_argument("--only", default="compiled,python,protobuf",
                   help="contenders to run (compiled, python, protobuf)")
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--attrs", type=int, default=8)
    p.add_argument("--span-bytes", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="JSON report (default perf/results/decode-<ts>.json)")


def run(a: argparse.Namespace) -> int:
    import collector.codec as codec
    from collector.codec import otlp as py_otlp
    from google.protobuf.internal import api_implementation

    contenders = {
        "compiled": codec.decode_export_request,
        "python": py_otlp.decode_export_request,
        "protobuf": protobuf_walk,
    }
    chosen = [c.strip() for c in a.only.split(",") if c.strip()]
    for c in chosen:
        if c not in contenders:
            raise SystemExit(f"--only: unknown contender {c!r}")
    print(f"collector.codec.COMPILED = {codec.COMPILED}   protobuf backend: "
          f"{api_implementation.Type()}   python {platform.python_version()}", flush=True)
    if not codec.COMPILED:
        print("warning: the compiled decoder did not load; 'compiled' runs the Python twin",
              file=sys.stderr)

    results = []
    for size in [int(s) for s in a.sizes.split(",") if s.strip()]:
        shape = TraceShape(services=a.services, attrs=a.attrs, span_bytes=a.span_bytes,
                           spans_per_request=size)
        buf = build_request_bytes(shape, a.seed)
        # All contenders must see the same spans before their speed means anything.
        counts = {"compiled": len(codec.decode_export_request(buf)),
                  "python": len(py_otlp.decode_export_request(buf)),
                  "protobuf": protobuf_walk(buf)}
        if len(set(counts.values())) != 1:
            raise SystemExit(f"contenders disagree on the span count: {counts}")
        row = {"spans": size, "bytes": len(buf), "impls": {}}
        for name in chosen:
            sec, loops = time_it(contenders[name], buf, a.min_time, a.repeat)
            row["impls"][name] = {
                "us_per_request": round(sec * 1e6, 2),
                "requests_per_s": round(1 / sec, 1),
                "spans_per_s": round(size / sec, 0),
                "mb_per_s": round(len(buf) / sec / 1e6, 1),
                "loops": loops,
            }
            print(f"  {size:>6} spans  {name:<9} {sec * 1e6:>11,.1f} us/request", flush=True)
        base = row["impls"].get("protobuf")
        for name in ("compiled", "python"):
            if base and name in row["impls"]:
                row[f"speedup_{name}_vs_protobuf"] = round(
                    base["us_per_request"] / row["impls"][name]["us_per_request"], 2)
        results.append(row)

    print()
    print(f"{'spans':>6} {'KiB':>7} {'decoder':<9} {'us/request':>12} {'requests/s':>12} "
          f"{'spans/s':>13} {'MB/s':>8} {'vs protobuf':>12}")
    for row in results:
        base = row["impls"].get("protobuf")
        for name, m in row["impls"].items():
            ratio = f"{base['us_per_request'] / m['us_per_request']:.2f}x" if base else "-"
            print(f"{row['spans']:>6} {row['bytes'] / 1024:>7.1f} {name:<9} "
                  f"{m['us_per_request']:>12,.1f} {m['requests_per_s']:>12,.1f} "
                  f"{m['spans_per_s']:>13,.0f} {m['mb_per_s']:>8,.1f} {ratio:>12}")

    report = {
        "kind": "clew-perf decode",
        "version": 1,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "compiled": codec.COMPILED,
        "protobuf_backend": api_implementation.Type(),
        "python": platform.python_version(),
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in vars(a).items() if k not in ("func", "command")},
        "results": results,
    }
    out = a.out or RESULTS_DIR / f"decode-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {out}")
    return 0
