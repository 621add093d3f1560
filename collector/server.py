"""The appliance: wires receivers, the writer, the store and the query API onto one uvloop event loop.

``serve(config)`` runs until SIGTERM/SIGINT (or ``stop`` is set), then shuts down gracefully:
stop accepting, answer what is in flight, commit what is queued, close the store.
"""
from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from collector.analytics import RedMetrics, SeriesStore
from collector.analytics.graph import EdgeTracker
from collector.analytics.series import AnalyticsCollector
from collector.analytics.spanmetrics import SpanMetrics
from collector.config import Config
from collector.ingest import Ingest
from collector.metrics import Metrics
from collector.receivers import jaeger, otlp_grpc, otlp_http, zipkin
from collector.receivers import sampling as remote_sampling
from collector.sampling.service import Sampling
from collector.store.hot import HotStore
from collector.store.lifecycle import Lifecycle
from collector.store.writer import Writer

log = logging.getLogger("clew")


def _bind(host: str, port: int, key: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"{key}: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _write_ports(data_dir: Path, ports: dict) -> Path:
    path = data_dir / "ports.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports))
    os.replace(tmp, path)
    return path


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    # The writer thread and the event loop share the GIL. With the default 5 ms switch
    # interval a request can wait that long for the loop to get the GIL back while the
    # writer builds chunks; 1 ms keeps the answer tail short (docs/performance.md).
    sys.setswitchinterval(config.server.gil_switch_interval_s)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    data_dir = config.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    host = config.server.host
    metrics = Metrics()
    ready = False

    store = None
    writer = None
    lifecycle = None
    if not config.ingest.null_sink:
        store = await loop.run_in_executor(None, functools.partial(HotStore, data_dir, config.store, config.limits, index=config.index))
        # The indexes just loaded are long-lived: keep the cyclic collector from walking them
        # on every full collection (a search's rendering makes many short-lived objects).
        gc.collect()
        gc.freeze()
        lifecycle = Lifecycle(store, data_dir, config.store)
        lifecycle.start()
        metrics.watch_store(store.stats)
        metrics.watch_lifecycle(lifecycle)
        writer = Writer(store, config.ingest, config.store, loop, metrics)
        metrics.queue_spans.set_function(lambda: writer.queued_spans)
    sampling = Sampling(config.sampling, data_dir, metrics)
    if writer is not None:
        sampling.attach(store, writer)
        metrics.sampling_pending.set_function(lambda: len(sampling.tail.pending))
    await sampling.start()
    analytics = None
    if writer is not None and config.analytics.enabled:
        analytics = await loop.run_in_executor(None, SeriesStore, data_dir / "analytics", config.analytics)
        analytics.start()
        metrics.registry.register(AnalyticsCollector(analytics))
        if config.analytics.retention_s < config.store.cold_window_s:
            log.warning("analytics.retention_s (%s) < store.cold_window_s (%s): metrics go before the "
                        "traces they count", config.analytics.retention_s, config.store.cold_window_s)
    edges = EdgeTracker.from_config(analytics, config) if analytics is not None else None
    red = RedMetrics(analytics) if analytics is not None else None
    if red is not None:  # the same counts on /metrics under the span-metrics connector's names
        span_metrics = SpanMetrics(analytics, config.analytics.max_series)
        red.hooks.append(span_metrics.observe)
        metrics.registry.register(span_metrics)
    ingest = Ingest(config, writer, metrics, sampling if writer is not None else None,
                    red=red, edges=edges)

    grpc_server, grpc_port = await otlp_grpc.start(ingest, config.otlp, host, config.otlp.grpc_port)
    otlp_http_listener = await otlp_http.start(ingest, config.otlp, host, config.otlp.http_port)
    jaeger_receivers = jaeger.JaegerReceivers()
    await jaeger_receivers.start(ingest, config.jaeger, config.otlp, host, sampling=sampling)
    zipkin_listener = await zipkin.start(ingest, config.zipkin, config.otlp, host)
    sampling_listener = await remote_sampling.start(sampling, config.sampling, host)
    listeners = [otlp_http_listener, jaeger_receivers.http, zipkin_listener, sampling_listener]
    grpc_servers = [grpc_server, jaeger_receivers.grpc]

    from query.app import create_app  # the query side is downstream of the collector

    reader = store if store is not None else _EmptyReader()
    alerts = None
    if analytics is not None and config.alerting.enabled:
        from collector.analytics.alerts import Alerting
        alerts = await loop.run_in_executor(None, Alerting, config, analytics, store, data_dir)
    app = create_app(config, reader, metrics, ready=lambda: ready, sampling=sampling,
                     lifecycle=lifecycle, writer=writer, analytics=analytics, alerts=alerts)
    qsock = _bind(host, config.query.port, "query.port")
    query_port = qsock.getsockname()[1]
    if alerts is not None:
        if not alerts.external_url:  # links in notifications lead back to this query port
            public = socket.gethostname() if host in ("0.0.0.0", "::") else host
            alerts.external_url = f"http://{f'[{public}]' if ':' in public else public}:{query_port}"
        alerts.start()
    hconf = HypercornConfig()
    hconf.bind = [f"fd://{qsock.fileno()}"]
    hconf.accesslog = None
    hconf.errorlog = logging.getLogger("clew.query")
    hconf.graceful_timeout = 5
    query_stop = asyncio.Event()
    query_task = loop.create_task(hypercorn_serve(app, hconf, shutdown_trigger=query_stop.wait))

    ports = {"otlp_grpc": grpc_port, "otlp_http": otlp_http_listener.port, **jaeger_receivers.ports,
             "zipkin": zipkin_listener.port, "sampling": sampling_listener.port, "query": query_port,
             "pid": os.getpid()}
    path = _write_ports(data_dir, ports)
    ready = True
    log.info("clew serving on %s: %s; data in %s (ports in %s)", host,
             ", ".join(f"{k} {v}" for k, v in ports.items() if k != "pid"), data_dir.resolve(), path)

    try:
        await stop.wait()
    finally:
        log.info("shutting down: no new requests; committing what is queued")
        ready = False
        jaeger_receivers.stop_accepting()
        for listener in listeners:
            listener.close()
        grpc_stop = asyncio.gather(*(g.stop(grace=config.server.shutdown_timeout_s) for g in grpc_servers))
        deadline = loop.time() + config.server.shutdown_timeout_s
        while not all(listener.idle() for listener in listeners) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for listener in listeners:
            listener.close_connections()
        await grpc_stop
        await jaeger_receivers.drain()
        await sampling.stop()  # held traces stay held (durably) and are decided after the restart
        if writer is not None:
            await writer.close()
        query_stop.set()
        try:
            await asyncio.wait_for(query_task, timeout=10)
        except (asyncio.TimeoutError, Exception):
            log.warning("query server did not stop cleanly")
        if alerts is not None:  # deliveries still waiting are recorded as abandoned
            await loop.run_in_executor(None, alerts.close)
        if edges is not None:
            edges.close()
        if analytics is not None:  # the last metrics gathered are written
            await loop.run_in_executor(None, analytics.close)
        if lifecycle is not None:
            lifecycle.stop()
        if store is not None:
            store.close()
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        log.info("stopped")


class _EmptyReader:
    """The reader of a null-sink server: nothing is ever stored."""

    def get_trace(self, trace_id):
        return None

    def stats(self):
        return {"partitions": 0, "spans": 0, "disk_bytes": 0}
