"""Command line: ``clew serve`` (the appliance) and ``clew config`` (every setting and its default)."""
from __future__ import annotations

import argparse
import logging
import sys

from collector.config import describe, load_config
from collector.errors import ConfigError, SamplingError

PORT_FLAGS = {
    "--otlp-grpc-port": ("otlp.grpc_port", 4317),
    "--otlp-http-port": ("otlp.http_port", 4318),
    "--jaeger-compact-port": ("jaeger.compact_port", 6831),
    "--jaeger-binary-port": ("jaeger.binary_port", 6832),
    "--jaeger-http-port": ("jaeger.http_port", 14268),
    "--jaeger-grpc-port": ("jaeger.grpc_port", 14250),
    "--zipkin-port": ("zipkin.port", 9411),
    "--query-port": ("query.port", 16686),
    "--sampling-port": ("sampling.remote_port", 5778),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clew", description="Clew tracing appliance")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the appliance")
    serve.add_argument("--config", metavar="FILE.toml", help="TOML configuration file")
    serve.add_argument("--data-dir", metavar="DIR", help="where data lives (server.data_dir, default ./data)")
    serve.add_argument("--host", metavar="ADDR", help="address to listen on (server.host, default 0.0.0.0)")
    serve.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                       help="set any configuration key (repeatable)")
    for flag, (key, default) in PORT_FLAGS.items():
        serve.add_argument(flag, type=int, metavar="PORT",
                           help=f"{key} (default {default}; 0 picks a free port)")
    sub.add_parser("config", help="list every setting with its type and default")
    return parser


def overrides_from(args: argparse.Namespace) -> dict:
    out = {}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    if args.data_dir is not None:
        out["server.data_dir"] = args.data_dir
    if args.host is not None:
        out["server.host"] = args.host
    for flag, (key, _default) in PORT_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        for key, kind, default in describe():
            print(f"{key:36} {kind:6} {default!r}")
        return 0
    try:
        config = load_config(args.config, overrides_from(args))
    except ConfigError as exc:
        print(f"clew: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvloop

    from collector.server import serve

    try:
        uvloop.run(serve(config))
    except OSError as exc:
        print(f"clew: {exc}", file=sys.stderr)
        return 1
    except SamplingError as exc:
        print(f"clew: invalid sampling settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
