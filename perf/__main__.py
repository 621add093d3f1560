"""Measure stage: command line of the performance harness (``python -m perf``, ``clew-perf``)."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from perf import (cold_bench, decode_bench, loadgen, metrics_bench, sampling_bench, search_bench,
                      thrift_bench, ui_bench, zipkin_bench)

    parser = argparse.ArgumentParser(prog="clew-perf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("load", help="load generator (OTLP, Jaeger, Zipkin) against a Clew server",
                       description=(loadgen.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    loadgen.add_arguments(p)
    p.set_defaults(func=loadgen.run)
    p = sub.add_parser("decode", help="OTLP decoder micro-benchmark",
                       description=(decode_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    decode_bench.add_arguments(p)
    p.set_defaults(func=decode_bench.run)
    for name, module, what in (("decode-thrift", thrift_bench, "Jaeger Thrift decoder micro-benchmark"),
                               ("decode-zipkin", zipkin_bench, "Zipkin JSON/proto3 decoder micro-benchmark")):
        p = sub.add_parser(name, help=what, description=(module.__doc__ or "").strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    p = sub.add_parser("search", help="search and trace-by-ID latency over a loaded store",
                       description=(search_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    search_bench.add_arguments(p)
    p.set_defaults(func=search_bench.run)
    p = sub.add_parser("sampling", help="adaptive sampling vs a step of load; ingest with sampling off vs on",
                       description=(sampling_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sampling_bench.add_arguments(p)
    p.set_defaults(func=sampling_bench.run)
    p = sub.add_parser("cold", help="cold tier: bytes per span, trace by ID, 7-day search, ingest during moves",
                       description=(cold_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    cold_bench.add_arguments(p)
    p.set_defaults(func=cold_bench.run)
    p = sub.add_parser("metrics", help="7-day metrics query of one service over 500 services' series",
                       description=(metrics_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    metrics_bench.add_arguments(p)
    p.set_defaults(func=metrics_bench.run)
    p = sub.add_parser("ui", help="web UI in Chromium: big traces and search to interactive, screenshots",
                       description=(ui_bench.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ui_bench.add_arguments(p)
    p.set_defaults(func=ui_bench.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
