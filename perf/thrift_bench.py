"""Measure stage: Jaeger Thrift decoder micro-benchmark (our twins vs the ``thrift`` package's readers).

Each contender reads the same serialized ``jaeger.Batch`` (``--spans`` realistic spans: ~10 tags
of mixed types, a log on every third span, a CHILD_OF reference on all but the root), in the binary
and the compact protocol:

* ``compiled``  ``_ext._jaeger_thrift.decode_batch`` — Thrift → OTLP request bytes, at C level;
* ``python``    ``collector.codec.jaeger_thrift.decode_batch`` — the pure-Python reference twin;
* ``thrift``    the ``thrift`` package's pure-Python ``TBinaryProtocol`` / ``TCompactProtocol``
  reading into plain Python objects (generated-code-like classes walking the same fields);
* ``thrift-accel``  ``TBinaryProtocolAccelerated`` / ``TCompactProtocolAccelerated`` (the
  ``thrift.protocol.fastbinary`` C extension) into the same classes, when it is installed.

The ``thrift`` baselines only parse; our decoders also translate to OTLP and write its bytes, so
the comparison is conservative.  Timing: a loop count is calibrated so one measurement takes at
least ``--min-time`` seconds, then the best of ``--repeat`` measurements is kept.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
from datetime import datetime
from pathlib import Path

from perf.decode_bench import time_it

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _thrift_classes():
    """Generated-code-like jaeger.thrift structs for the ``thrift`` package (fastbinary-compatible)."""
    from thrift.Thrift import TType
    from thrift.transport.TTransport import CReadableTransport

    def read_value(iprot, ttype, args):
        if ttype == TType.STRING:
            return iprot.readBinary() if args == "BINARY" else iprot.readString()
        if ttype == TType.I64:
            return iprot.readI64()
        if ttype == TType.I32:
            return iprot.readI32()
        if ttype == TType.DOUBLE:
            return iprot.readDouble()
        if ttype == TType.BOOL:
            return iprot.readBool()
        if ttype == TType.STRUCT:
            obj = args[0]()
            obj.read(iprot)
            return obj
        if ttype == TType.LIST:
            etype, eargs = args[0], args[1]
            _, size = iprot.readListBegin()
            out = [read_value(iprot, etype, eargs) for _ in range(size)]
            iprot.readListEnd()
            return out
        raise AssertionError(ttype)

    def write_value(oprot, ttype, args, v):
        if ttype == TType.STRING:
            oprot.writeBinary(v) if args == "BINARY" else oprot.writeString(v)
        elif ttype == TType.I64:
            oprot.writeI64(v)
        elif ttype == TType.I32:
            oprot.writeI32(v)
        elif ttype == TType.DOUBLE:
            oprot.writeDouble(v)
        elif ttype == TType.BOOL:
            oprot.writeBool(v)
        elif ttype == TType.STRUCT:
            v.write(oprot)
        else:
            oprot.writeListBegin(args[0], len(v))
            for x in v:
                write_value(oprot, args[0], args[1], x)
            oprot.writeListEnd()

    class Struct:
        thrift_spec: tuple = ()

        defaults: dict = {}

        def __init__(self, **kw):  # as cheap as generated code's keyword __init__
            d = self.__dict__
            d.update(self.defaults)
            d.update(kw)

        def read(self, iprot):
            if (iprot._fast_decode is not None and isinstance(iprot.trans, CReadableTransport)
                    and self.thrift_spec is not None):
                iprot._fast_decode(self, iprot, [self.__class__, self.thrift_spec])
                return
            spec = self.thrift_spec
            iprot.readStructBegin()
            while True:
                _, ftype, fid = iprot.readFieldBegin()
                if ftype == TType.STOP:
                    break
                f = spec[fid] if 0 < fid < len(spec) else None
                if f is not None and f[1] == ftype:
                    setattr(self, f[2], read_value(iprot, ftype, f[3]))
                else:
                    iprot.skip(ftype)
                iprot.readFieldEnd()
            iprot.readStructEnd()

        def write(self, oprot):
            oprot.writeStructBegin(type(self).__name__)
            for f in self.thrift_spec:
                if f and getattr(self, f[2]) is not None:
                    oprot.writeFieldBegin(f[2], f[1], f[0])
                    write_value(oprot, f[1], f[3], getattr(self, f[2]))
                    oprot.writeFieldEnd()
            oprot.writeFieldStop()
            oprot.writeStructEnd()

    class Tag(Struct):
        pass

    class Log(Struct):
        pass

    class SpanRef(Struct):
        pass

    class Span(Struct):
        pass

    class Process(Struct):
        pass

    class Batch(Struct):
        pass

    S, L = TType.STRING, TType.LIST
    Tag.thrift_spec = (None, (1, S, "key", "UTF8", None), (2, TType.I32, "vType", None, None),
                       (3, S, "vStr", "UTF8", None), (4, TType.DOUBLE, "vDouble", None, None),
                       (5, TType.BOOL, "vBool", None, None), (6, TType.I64, "vLong", None, None),
                       (7, S, "vBinary", "BINARY", None))
    tags = (TType.STRUCT, [Tag, Tag.thrift_spec], False)
    Log.thrift_spec = (None, (1, TType.I64, "timestamp", None, None), (2, L, "fields", tags, None))
    SpanRef.thrift_spec = (None, (1, TType.I32, "refType", None, None), (2, TType.I64, "traceIdLow", None, None),
                           (3, TType.I64, "traceIdHigh", None, None), (4, TType.I64, "spanId", None, None))
    Span.thrift_spec = (
        None, (1, TType.I64, "traceIdLow", None, None), (2, TType.I64, "traceIdHigh", None, None),
        (3, TType.I64, "spanId", None, None), (4, TType.I64, "parentSpanId", None, None),
        (5, S, "operationName", "UTF8", None),
        (6, L, "references", (TType.STRUCT, [SpanRef, SpanRef.thrift_spec], False), None),
        (7, TType.I32, "flags", None, None), (8, TType.I64, "startTime", None, None),
        (9, TType.I64, "duration", None, None), (10, L, "tags", tags, None),
        (11, L, "logs", (TType.STRUCT, [Log, Log.thrift_spec], False), None))
    Process.thrift_spec = (None, (1, S, "serviceName", "UTF8", None), (2, L, "tags", tags, None))
    Batch.thrift_spec = (None, (1, TType.STRUCT, "process", [Process, Process.thrift_spec], None),
                         (2, L, "spans", (TType.STRUCT, [Span, Span.thrift_spec], False), None))
    for cls in (Tag, Log, SpanRef, Span, Process, Batch):
        cls.defaults = {f[2]: f[4] for f in cls.thrift_spec if f}
    return Tag, Log, SpanRef, Span, Process, Batch


def build_batch(n_spans: int, seed: int):
    """A realistic Batch object: ~10 mixed tags per span, a log on every third, one reference."""
    Tag, Log, SpanRef, Span, Process, Batch = _thrift_classes()
    rnd = random.Random(seed)
    hi, lo = rnd.getrandbits(63), rnd.getrandbits(63)
    t0 = 1_700_000_000_000_000
    spans = []
    for i in range(n_spans):
        tags = [
            Tag(key="span.kind", vType=0, vStr=rnd.choice(["server", "client"])),
            Tag(key="http.method", vType=0, vStr=rnd.choice(["GET", "POST", "PUT"])),
            Tag(key="http.url", vType=0, vStr=f"https://shop.example.com/api/v1/items/{rnd.randrange(10**6)}"),
            Tag(key="http.status_code", vType=3, vLong=rnd.choice([200, 200, 200, 404, 500])),
            Tag(key="peer.port", vType=3, vLong=rnd.randrange(1024, 65535)),
            Tag(key="component", vType=0, vStr="net/http"),
            Tag(key="sampler.param", vType=2, vBool=True),
            Tag(key="db.rows", vType=3, vLong=rnd.randrange(1000)),
            Tag(key="cache.hit_ratio", vType=1, vDouble=rnd.random()),
            Tag(key="request.id", vType=4, vBinary=rnd.randbytes(16)),
        ]
        logs = None
        if i % 3 == 0:
            logs = [Log(timestamp=t0 + i * 10 + 5, fields=[
                Tag(key="event", vType=0, vStr="cache miss"),
                Tag(key="message", vType=0, vStr="falling back to the database for this key")])]
        refs = [SpanRef(refType=0, traceIdLow=lo, traceIdHigh=hi, spanId=1000 + i // 2)] if i else None
        spans.append(Span(traceIdLow=lo, traceIdHigh=hi, spanId=1000 + i, parentSpanId=1000 + i // 2 if i else 0,
                          operationName=rnd.choice(["GET /items", "SELECT items", "redis GET", "render"]),
                          references=refs, flags=1, startTime=t0 + i * 10, duration=rnd.randrange(50, 50_000),
                          tags=tags, logs=logs))
    process = Process(serviceName="shop-frontend", tags=[
        Tag(key="hostname", vType=0, vStr="shop-frontend-7d9f8-abcde"),
        Tag(key="ip", vType=0, vStr="10.1.2.3"),
        Tag(key="jaeger.version", vType=0, vStr="Go-2.30.0"),
        Tag(key="client-uuid", vType=0, vStr="3f2a9c1e5b7d4e60")])
    return Batch(process=process, spans=spans), Batch


def encode(batch, compact: bool) -> bytes:
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TMemoryBuffer
    buf = TMemoryBuffer()
    batch.write(TCompactProtocol(buf) if compact else TBinaryProtocol(buf))
    return buf.getvalue()


def thrift_reader(batch_cls, protocol_cls):
    from thrift.transport.TTransport import TMemoryBuffer

    def read(buf: bytes):
        b = batch_cls()
        b.read(protocol_cls(TMemoryBuffer(buf)))
        return b
    return read


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spans", type=int, default=100, help="spans per batch")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    p.add_argument("--repeat", type=int, default=5, help="measurements; the best is kept")
    p.add_argument("--only", default="compiled,python,thrift,thrift-accel",
                   help="contenders to run (compiled, python, thrift, thrift-accel)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="JSON report (default perf/results/thrift-<ts>.json)")


def run(a: argparse.Namespace) -> int:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol

    from collector.codec import jaeger_thrift as py_thrift
    try:
        from _ext import _jaeger_thrift as cy_thrift
    except ImportError:
        cy_thrift = None
        print("warning: _ext._jaeger_thrift is not built; 'compiled' is skipped", file=sys.stderr)
    try:
        from thrift.protocol import fastbinary  # noqa: F401
        accel = True
    except ImportError:
        accel = False
        print("note: thrift.protocol.fastbinary is not available; 'thrift-accel' is skipped", file=sys.stderr)

    chosen = [c.strip() for c in a.only.split(",") if c.strip()]
    known = {"compiled", "python", "thrift", "thrift-accel"}
    for c in chosen:
        if c not in known:
            raise SystemExit(f"--only: unknown contender {c!r}")
    batch, batch_cls = build_batch(a.spans, a.seed)
    print(f"python {platform.python_version()}   spans per batch {a.spans}   fastbinary: {accel}", flush=True)

    results = []
    for compact in (False, True):
        proto = "compact" if compact else "binary"
        buf = encode(batch, compact)
        contenders = {}
        if cy_thrift is not None:
            contenders["compiled"] = lambda b, c=compact: cy_thrift.decode_batch(b, compact=c)
        contenders["python"] = lambda b, c=compact: py_thrift.decode_batch(b, compact=c)
        plain = TCompactProtocol.TCompactProtocol if compact else TBinaryProtocol.TBinaryProtocol
        contenders["thrift"] = thrift_reader(batch_cls, plain)
        if accel:
            fast = (TCompactProtocol.TCompactProtocolAccelerated if compact
                    else TBinaryProtocol.TBinaryProtocolAccelerated)
            contenders["thrift-accel"] = thrift_reader(batch_cls, fast)
        # Everyone must see the same batch before their speed means anything.
        if cy_thrift is not None and cy_thrift.decode_batch(buf, compact=compact) != \
                py_thrift.decode_batch(buf, compact=compact):
            raise SystemExit("the twins disagree on the benchmark batch")
        for name in ("thrift", "thrift-accel"):
            if name in contenders and len(contenders[name](buf).spans) != a.spans:
                raise SystemExit(f"{name} did not read {a.spans} spans")
        row = {"protocol": proto, "spans": a.spans, "bytes": len(buf), "impls": {}}
        for name in chosen:
            if name not in contenders:
                continue
            sec, loops = time_it(contenders[name], buf, a.min_time, a.repeat)
            row["impls"][name] = {"us_per_batch": round(sec * 1e6, 2), "spans_per_s": round(a.spans / sec),
                                  "mb_per_s": round(len(buf) / sec / 1e6, 1), "loops": loops}
            print(f"  {proto:<8} {name:<13} {sec * 1e6:>11,.1f} us/batch", flush=True)
        results.append(row)

    print()
    print(f"{'protocol':<8} {'KiB':>6} {'decoder':<13} {'us/batch':>11} {'spans/s':>12} {'MB/s':>8} "
          f"{'vs thrift':>10} {'vs accel':>9}")
    for row in results:
        base = row["impls"].get("thrift")
        fast = row["impls"].get("thrift-accel")
        for name, m in row["impls"].items():
            r1 = f"{base['us_per_batch'] / m['us_per_batch']:.2f}x" if base else "-"
            r2 = f"{fast['us_per_batch'] / m['us_per_batch']:.2f}x" if fast else "-"
            print(f"{row['protocol']:<8} {row['bytes'] / 1024:>6.1f} {name:<13} {m['us_per_batch']:>11,.1f} "
                  f"{m['spans_per_s']:>12,} {m['mb_per_s']:>8,.1f} {r1:>10} {r2:>9}")

    report = {
        "kind": "clew-perf thrift",
        "version": 1,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "fastbinary": accel,
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in vars(a).items() if k not in ("func", "command")},
        "results": results,
    }
    out = a.out or RESULTS_DIR / f"thrift-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
