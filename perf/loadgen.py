"""Measure stage: load generator (OTLP, Jaeger, Zipkin) with progress, latency and server-cost report.

Shape of a run: build a ``RequestPool`` once; start (``--spawn``) or attach to (``--endpoint``) a
server; run ``--concurrency`` workers, each with one connection, for ``--warmup`` + ``--duration``
seconds; print a progress line every second; then print a report and write it as JSON.

Latency is per request, from the moment the request is handed to the transport to the moment
its full response has been read.  With ``--rate`` the workers follow an open-loop schedule (send
*i* is due at ``start + i * interval``) and latency is taken from the *scheduled* time, so a
server that stalls the workers is charged for the sends that queued up behind it (no
coordinated omission).  Busy answers (HTTP 429/503, gRPC RESOURCE_EXHAUSTED/UNAVAILABLE) are
counted as refusals and not retried unless ``--retry`` is given.

Jaeger and Zipkin protocols send the same traces converted once by ``perf.foreign``.  Jaeger agent
UDP cannot be acknowledged: there the report gives the send rate and what the server's own
``/metrics`` counted (accepted spans, datagrams received and dropped), not latency.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from array import array
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from perf import foreign
from perf.traces import RequestPool, SendGroup, TraceShape

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
HTTP_BUSY = (429, 503)
GRPC_BUSY = ("RESOURCE_EXHAUSTED", "UNAVAILABLE")

# Outcome classes of one request.
OK, BUSY, REFUSED, ERROR = "ok", "busy", "refused", "error"


class Protocol:
    """How one ``--protocol`` reaches the server: transport, ports.json key, path, success."""

    def __init__(self, name: str, transport: str, port_key: str, label: str, *, path: str = "",
                 content_type: str = "", ok_status: int = 0, method: str = "", otlp: bool = False):
        self.name, self.transport, self.port_key, self.label = name, transport, port_key, label
        self.path, self.content_type, self.ok_status, self.method = path, content_type, ok_status, method
        self.otlp = otlp  # the answer may carry an OTLP partial_success

    @property
    def udp(self) -> bool:
        return self.transport == "udp"


PROTOCOLS = {p.name: p for p in (
    Protocol("http", "http", "otlp_http", "otlp_http", path="/v1/traces",
             content_type="application/x-protobuf", ok_status=200, otlp=True),
    Protocol("grpc", "grpc", "otlp_grpc", "otlp_grpc", method=GRPC_METHOD, otlp=True),
    Protocol(foreign.JAEGER_UDP_COMPACT, "udp", "jaeger_compact", "jaeger_udp_compact"),
    Protocol(foreign.JAEGER_UDP_BINARY, "udp", "jaeger_binary", "jaeger_udp_binary"),
    Protocol(foreign.JAEGER_THRIFT_HTTP, "http", "jaeger_http", "jaeger_http", path="/api/traces",
             content_type="application/x-thrift", ok_status=202),
    Protocol(foreign.JAEGER_GRPC, "grpc", "jaeger_grpc", "jaeger_grpc",
             method="/jaeger.api_v2.CollectorService/PostSpans"),
    Protocol(foreign.ZIPKIN_JSON, "http", "zipkin", "zipkin_v2_json", path="/api/v2/spans",
             content_type="application/json", ok_status=202),
    Protocol(foreign.ZIPKIN_PROTO, "http", "zipkin", "zipkin_v2_proto", path="/api/v2/spans",
             content_type="application/x-protobuf", ok_status=202),
)}


# -- OTLP response ---------------------------------------------------------------------------

def parse_partial_success(body: bytes) -> tuple[int, str]:
    """(rejected_spans, error_message) of an ExportTraceServiceResponse; (0, '') if absent.

    Unparseable bodies count as no rejection.
    """
    try:
        partial = ExportTraceServiceResponse.FromString(body).partial_success
    except DecodeError:
        return 0, ""
    return partial.rejected_spans, partial.error_message


# -- HTTP/1.1 keep-alive client --------------------------------------------------------------

class _HttpProtocol(asyncio.Protocol):
    """One keep-alive connection, one request in flight; sans framework, parses just enough."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self._head: tuple | None = None  # (status, headers, length or None, chunked)

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._advance()
            except Exception as exc:  # malformed response: fail the request, drop the connection
                self._fail(exc)
                self.transport.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        head = self._head
        if head is not None and head[2] is None and not head[3]:
            self._finish(bytes(self.buf), keep_alive=False)  # body delimited by the close
        else:
            self._fail(exc or ConnectionResetError("connection closed by server"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def _finish(self, body: bytes, keep_alive: bool) -> None:
        status, headers = self._head[0], self._head[1]
        self._head = None
        if headers.get(b"connection", b"").lower() == b"close":
            keep_alive = False
        self.waiter.set_result((status, headers, body, keep_alive))

    def _advance(self) -> None:
        buf = self.buf
        while self._head is None:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            lines = bytes(buf[:i]).split(b"\r\n")
            del buf[:i + 4]
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise ValueError(f"bad HTTP status line {lines[0][:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200:
                continue  # interim response: the real one follows
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            if status in (204, 304):
                length = 0
            elif b"content-length" in headers and not chunked:
                length = int(headers[b"content-length"])
            else:
                length = None
            self._head = (status, headers, length, chunked)
        length, chunked = self._head[2], self._head[3]
        if chunked:
            body = bytearray()
            p = 0
            while True:
                j = buf.find(b"\r\n", p)
                if j < 0:
                    return
                size = int(bytes(buf[p:j]).split(b";")[0], 16)
                if size == 0:
                    if buf[j + 2:j + 4] == b"\r\n":
                        end = j + 4
                    else:
                        k = buf.find(b"\r\n\r\n", j + 2)
                        if k < 0:
                            return
                        end = k + 4
                    del buf[:end]
                    self._finish(bytes(body), keep_alive=True)
                    return
                if len(buf) < j + 2 + size + 2:
                    return
                body += buf[j + 2:j + 2 + size]
                p = j + 2 + size + 2
        if length is not None and len(buf) >= length:
            body = bytes(buf[:length])
            del buf[:length]
            self._finish(body, keep_alive=True)


class HttpClient:
    """Minimal keep-alive HTTP/1.1 POST client; reconnects when the server closes."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
                      "Content-Length: %d\r\n\r\n").encode("latin-1")
        self._proto: _HttpProtocol | None = None

    async def _connect(self) -> _HttpProtocol:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(_HttpProtocol, self.host, self.port), self.timeout)
        return proto

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None

    async def post(self, body) -> tuple[int, dict, bytes]:
        proto = self._proto
        if proto is None or proto.closed:
            proto = self._proto = await self._connect()
        loop = asyncio.get_running_loop()
        fut = proto.waiter = loop.create_future()
        proto.buf.clear()
        proto.transport.write(self._head % len(body))
        proto.transport.write(body)
        timer = loop.call_later(self.timeout, _expire, fut, self.timeout)
        try:
            status, headers, rbody, keep_alive = await fut
        except BaseException:
            self.close()  # the connection's state is unknown now
            raise
        finally:
            timer.cancel()
            proto.waiter = None
        if not keep_alive:
            self.close()
        return status, headers, rbody


def _expire(fut: asyncio.Future, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError(f"no response within {timeout:g} s"))


def http_get_status(url: str, timeout: float = 2.0) -> int:
    """Status of a GET (for readiness probes; not on the measured path)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


# -- senders: body in, outcome out -----------------------------------------------------------
# An outcome is (class, key, rejected spans, partial-success message, retry-after seconds).

class HttpSender:
    acks = True

    def __init__(self, host: str, port: int, gzip: bool, gzip_level: int, timeout: float,
                 protocol: Protocol = PROTOCOLS["http"]):
        headers = {"Content-Type": protocol.content_type}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        self.gzip_level = gzip_level if gzip else None
        self.ok_status = protocol.ok_status
        self.otlp = protocol.otlp
        self.client = HttpClient(host, port, protocol.path, headers, timeout)

    def prepare(self, body: bytearray):
        if self.gzip_level is None:
            return body
        c = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)  # 31: gzip framing
        return c.compress(body) + c.flush()

    async def send(self, body) -> tuple:
        try:
            status, headers, rbody = await self.client.post(body)
        except (OSError, TimeoutError, ValueError, asyncio.TimeoutError) as exc:
            return ERROR, type(exc).__name__, 0, "", None
        if status == self.ok_status:
            rejected, msg = parse_partial_success(rbody) if rbody and self.otlp else (0, "")
            return OK, str(status), rejected, msg, None
        if status in HTTP_BUSY:
            retry_after = headers.get(b"retry-after")
            try:
                ra = float(retry_after) if retry_after else None
            except ValueError:
                ra = None
            return BUSY, str(status), 0, "", ra
        return REFUSED, str(status), 0, "", None

    async def close(self) -> None:
        self.client.close()


class GrpcSender:
    acks = True

    def __init__(self, host: str, port: int, gzip: bool, timeout: float,
                 protocol: Protocol = PROTOCOLS["grpc"]):
        import grpc
        import grpc.aio

        self._grpc = grpc
        self.timeout = timeout
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per worker
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        self.channel = grpc.aio.insecure_channel(
            f"{host}:{port}", options=options,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression)
        self.otlp = protocol.otlp
        self.call = self.channel.unary_unary(protocol.method, request_serializer=None,
                                             response_deserializer=None)

    def prepare(self, body: bytearray) -> bytes:
        return bytes(body)

    async def send(self, body) -> tuple:
        grpc = self._grpc
        try:
            resp = await self.call(body, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            details = (exc.details() or "").lower()
            if code == "UNAVAILABLE" and ("connect" in details or "socket closed" in details):
                return ERROR, "UNAVAILABLE(connect)", 0, "", None
            if code in GRPC_BUSY:
                return BUSY, code, 0, "", None
            if code == "DEADLINE_EXCEEDED":
                return ERROR, code, 0, "", None
            return REFUSED, code, 0, "", None
        except (OSError, asyncio.TimeoutError) as exc:
            return ERROR, type(exc).__name__, 0, "", None
        rejected, msg = parse_partial_success(resp) if resp and self.otlp else (0, "")
        return OK, "OK", rejected, msg, None

    async def close(self) -> None:
        await self.channel.close()


class UdpSender:
    """One connected non-blocking UDP socket; "OK" only means the kernel took the datagram."""

    acks = False

    def __init__(self, host: str, port: int):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 2**20)
        except OSError:
            pass
        self.sock.connect((host, port))

    def prepare(self, body: bytearray) -> bytearray:
        return body

    async def send(self, body) -> tuple:
        try:
            self.sock.send(body)
        except BlockingIOError:  # send buffer full: back off a moment, count it, go on
            await asyncio.sleep(0.001)
            return ERROR, "EAGAIN", 0, "", None
        except OSError as exc:  # e.g. ConnectionRefused from an ICMP port-unreachable
            return ERROR, type(exc).__name__, 0, "", None
        await asyncio.sleep(0)  # a send never waits: let the other workers and the ticker run
        return OK, "sent", 0, "", None

    async def close(self) -> None:
        self.sock.close()


# -- statistics ------------------------------------------------------------------------------

class Window:
    """Counters of one phase (warm-up or measured)."""

    def __init__(self) -> None:
        self.req_sent = self.spans_sent = self.bytes_sent = 0
        self.req_acked = self.spans_acked = self.spans_rejected = 0
        self.busy = self.retries = 0
        self.refusals: Counter = Counter()
        self.errors: Counter = Counter()
        self.partial_messages: Counter = Counter()
        self.latency = array("d")  # seconds, per acknowledged request
        self.lag = array("d")  # seconds a scheduled send started late (open loop only)

    def percentile_ms(self, q: float) -> float | None:
        if not self.latency:
            return None
        return float(np.percentile(np.frombuffer(self.latency, dtype=np.float64), q)) * 1e3


class ServerMonitor:
    """CPU and RSS of a server process and its children, read from /proc via psutil."""

    def __init__(self, pid: int, keep_series: bool):
        self.pid = pid
        self.proc = psutil.Process(pid)
        self.keep_series = keep_series
        self.series: list = []
        self.rss_peak = 0
        self.anon_peak = 0
        self.anon_first = None
        self.anon_last = None
        self.alive = True

    def _tree(self) -> list:
        try:
            return [self.proc] + self.proc.children(recursive=True)
        except psutil.Error:
            self.alive = False
            return []

    def cpu_seconds(self) -> float | None:
        total = 0.0
        procs = self._tree()
        if not procs:
            return None
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss(self) -> int | None:
        sizes = self._sizes()
        return None if sizes is None else sizes[0]

    def _sizes(self) -> tuple[int, int] | None:
        """(RSS, anonymous RSS). RSS also counts the store's memory-mapped file pages, which
        the kernel can drop at will; anonymous RSS (RSS less file-backed and shared pages) is
        the process's own memory, the figure that must stay bounded."""
        procs = self._tree()
        if not procs:
            return None
        total = anon = 0
        for p in procs:
            try:
                info = p.memory_info()
                total += info.rss
                anon += info.rss - getattr(info, "shared", 0)
            except psutil.Error:
                pass
        return total, anon

    def sample(self, t: float) -> int | None:
        sizes = self._sizes()
        if sizes is None:
            return None
        rss, anon = sizes
        self.rss_peak = max(self.rss_peak, rss)
        self.anon_peak = max(self.anon_peak, anon)
        if self.anon_first is None:
            self.anon_first = anon
        self.anon_last = anon
        if self.keep_series:
            self.series.append([round(t, 3), rss, anon])
        return rss


def _client_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


# -- the spawned server ----------------------------------------------------------------------

class SpawnedServer:
    """``clew serve`` on ephemeral ports in a temporary data directory."""

    def __init__(self, settings: list[str], timeout: float, keep_data: bool,
                 data_dir: Path | None = None):
        # ``data_dir``: serve an existing (or new) data directory instead, and keep it
        self.root = Path(data_dir).parent if data_dir else Path(tempfile.mkdtemp(prefix="clew-perf-"))
        self.data_dir = Path(data_dir) if data_dir else self.root / "data"
        self.log_path = self.root / "server.log"
        self.keep_data = keep_data or data_dir is not None
        clew = Path(sys.executable).parent / "clew"
        cmd = [str(clew), "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
        for flag in ("--otlp-grpc-port", "--otlp-http-port", "--jaeger-compact-port", "--jaeger-binary-port",
                     "--jaeger-http-port", "--jaeger-grpc-port", "--zipkin-port", "--query-port",
                     "--sampling-port"):
            cmd += [flag, "0"]  # every listener on a free port
        for kv in settings:
            cmd += ["--set", kv]
        self.cmd = cmd
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.ports = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def _wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        ports_file = self.data_dir / "ports.json"
        ports = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clew serve exited with {self.proc.returncode} before it was "
                                   f"ready; log tail:\n{self._log_tail()}")
            if ports is None and ports_file.exists():
                try:
                    ports = json.loads(ports_file.read_text())
                except (ValueError, OSError):
                    ports = None  # half written: try again
                if ports is not None and ports.get("pid") != self.proc.pid:
                    ports = None  # left by an earlier server of this data directory
            if ports is not None:
                try:
                    if http_get_status(f"http://127.0.0.1:{ports['query']}/readyz", 1.0) == 200:
                        return ports
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"clew serve not ready within {timeout:g} s (ports.json "
                           f"{'seen' if ports else 'missing'}); log tail:\n{self._log_tail()}")

    @property
    def pid(self) -> int:
        return int(self.ports.get("pid") or self.proc.pid)

    def stop(self, wait: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        if not self.keep_data:
            shutil.rmtree(self.root, ignore_errors=True)
        return self.proc.returncode


# -- the server's own view of ack latency ------------------------------------------------------

def scrape_metrics(query: str | None) -> str | None:
    """The server's /metrics text, or None (no query endpoint, or it did not answer)."""
    if not query:
        return None
    try:
        with urllib.request.urlopen(f"http://{query}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except (OSError, urllib.error.URLError, ValueError):
        return None


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str | None, name: str) -> list[tuple[dict, float]]:
    """(labels, value) of every sample of metric ``name`` in a Prometheus text exposition."""
    out = []
    for line in (text or "").splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name):]
        if rest.startswith("{"):
            labels_text, _, value = rest[1:].rpartition("} ")
            labels = dict(_LABEL.findall(labels_text))
        elif rest.startswith(" "):
            labels, value = {}, rest
        else:
            continue  # a longer name with this prefix
        try:
            out.append((labels, float(value.split()[0])))
        except (ValueError, IndexError):
            pass
    return out


def server_counters(text: str | None, label: str) -> dict | None:
    """The server's counters for one protocol label, from one scrape of /metrics."""
    if text is None:
        return None

    def total(name):
        return sum(v for lb, v in metric_samples(text, name) if lb.get("protocol") == label)

    def by(name, key):
        out: dict = {}
        for lb, v in metric_samples(text, name):
            if lb.get("protocol") == label:
                out[lb.get(key, "")] = out.get(lb.get(key, ""), 0.0) + v
        return out

    return {"spans_received": total("clew_spans_received_total"),
            "spans_accepted": total("clew_spans_accepted_total"),
            "spans_refused": by("clew_spans_refused_total", "reason"),
            "requests": by("clew_ingest_requests_total", "outcome"),
            "datagrams_received": total("clew_udp_datagrams_received_total"),
            "datagrams_dropped": by("clew_udp_datagrams_dropped_total", "reason")}


def counters_delta(before: dict | None, after: dict | None) -> dict | None:
    if before is None or after is None:
        return None
    out = {}
    for k, v in after.items():
        if isinstance(v, dict):
            b = before.get(k, {})
            out[k] = {kk: int(vv - b.get(kk, 0.0)) for kk, vv in v.items() if vv - b.get(kk, 0.0)}
        else:
            out[k] = int(v - before.get(k, 0.0))
    return out


def kernel_udp_errors() -> dict | None:
    """This host's UDP receive-side error counters (/proc/net/snmp): datagrams the kernel dropped."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Udp:")]
    except OSError:
        return None
    if len(lines) < 2:
        return None
    row = dict(zip(lines[0][1:], (int(x) for x in lines[1][1:])))
    return {"in_errors": row.get("InErrors"), "rcvbuf_errors": row.get("RcvbufErrors")}


def scrape_ack_histogram(text: str | None, label: str) -> dict[float, float] | None:
    """Cumulative ``clew_ack_seconds`` buckets (le → count) for one protocol label, from /metrics."""
    if text is None:
        return None
    label = f'protocol="{label}"'
    buckets = {}
    for line in text.splitlines():
        if line.startswith("clew_ack_seconds_bucket{") and label in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets or None


def server_quantiles(before: dict | None, after: dict | None) -> dict | None:
    """p50/p95/p99 upper bounds (ms) over the window, from two scrapes of the histogram."""
    if not after:
        return None
    before = before or {}
    les = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in les]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    out = {"count": int(total), "source": "clew_ack_seconds histogram; each figure is the upper bound "
                                          "of the bucket holding that quantile (server receive to answer)"}
    for name, q in (("p50_le", 0.5), ("p95_le", 0.95), ("p99_le", 0.99)):
        le = next(le for le, c in zip(les, counts) if c >= q * total)
        out[name] = None if le == float("inf") else round(le * 1e3, 3)
    return out


# -- the run ---------------------------------------------------------------------------------

class LoadRun:
    def __init__(self, args: argparse.Namespace, pool, host: str, port: int,
                 monitor: ServerMonitor | None, query: str | None = None):
        self.args = args
        self.protocol = PROTOCOLS[args.protocol]
        self.verify = VerifySample(getattr(args, "verify", 0), args.seed)
        self.query = query  # host:port of the server's query API, for its /metrics
        self.pool = pool
        self.host, self.port = host, port
        self.monitor = monitor
        self.warm = Window()
        self.meas = Window()
        self.mark0: float | None = None
        self.in_flight = 0
        self.stopping = False

    def _sender(self):
        a, p = self.args, self.protocol
        if p.transport == "grpc":
            return GrpcSender(self.host, self.port, a.gzip, a.timeout, p)
        if p.transport == "udp":
            return UdpSender(self.host, self.port)
        return HttpSender(self.host, self.port, a.gzip, a.gzip_level, a.timeout, p)

    def _window(self, t: float):
        if t < self.ws:
            return self.warm
        if t < self.we:
            return self.meas
        return None

    async def _worker(self, sender) -> None:
        a = self.args
        clock = time.perf_counter
        pool = self.pool
        acks = sender.acks
        verify = self.verify if self.verify.n else None
        try:
            while not self.stopping:
                if self.interval:
                    i = self._next_slot
                    self._next_slot += 1
                    due = self.t0 + i * self.interval
                    delay = due - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self.stopping or due >= self.we:
                        break
                    start = due
                else:
                    start = clock()
                body, nspans, group = pool.next_send()
                wire = sender.prepare(body)
                sent_at = clock()
                w = self._window(sent_at)
                if w is not None:
                    w.req_sent += 1
                    w.spans_sent += nspans
                    w.bytes_sent += len(wire)
                    if self.interval:
                        w.lag.append(sent_at - start)
                self.in_flight += 1
                attempt = 0
                try:
                    while True:
                        try:
                            outcome = await sender.send(wire)
                        except Exception as exc:  # a transport bug must not kill the worker
                            outcome = (ERROR, type(exc).__name__, 0, "", None)
                        if outcome[0] != BUSY or not a.retry or attempt >= a.max_retries \
                                or self.stopping:
                            break
                        attempt += 1
                        w2 = self._window(clock())
                        if w2 is not None:
                            w2.retries += 1
                        pause = outcome[4] if outcome[4] is not None else min(0.05 * 2 ** attempt, 2.0)
                        await asyncio.sleep(min(pause, max(self.we - clock(), 0.0)))
                finally:
                    self.in_flight -= 1
                done = clock()
                w = self._window(done)
                if w is None:
                    continue
                cls, key, rejected, msg, _ = outcome
                if verify is not None:
                    verify.answered(group, cls == OK and not rejected)
                if cls == OK:
                    w.req_acked += 1
                    w.spans_acked += nspans - rejected
                    w.spans_rejected += rejected
                    if msg:
                        key = msg[:200]
                        if key not in w.partial_messages and len(w.partial_messages) >= 20:
                            key = "(other messages)"
                        w.partial_messages[key] += 1
                    if acks:
                        w.latency.append(done - start)
                elif cls == BUSY:
                    w.busy += 1
                    w.refusals[key] += 1
                elif cls == REFUSED:
                    w.refusals[key] += 1
                else:
                    w.errors[key] += 1
                    if key.startswith(("ConnectionRefused", "UNAVAILABLE(connect)")):
                        await asyncio.sleep(0.1)  # do not spin while the server is down
        finally:
            await sender.close()

    async def _ticker(self) -> None:
        """Once a second: progress line; every 0.5 s: RSS sample; CPU marks at window edges."""
        a = self.args
        clock = time.perf_counter
        last_t, last_acked, last_cpu = clock(), 0, None
        tick = 0
        if self.monitor:
            self.rss_start = self.monitor.sample(0.0)
            last_cpu = self.monitor.cpu_seconds()
        while True:
            target = self.t0 + 0.5 * (tick + 1)
            if self.mark0 is None and self.ws <= target:
                # Wake exactly at the window's start so CPU marks match the counted requests.
                await asyncio.sleep(max(self.ws - clock(), 0))
                self._mark_start()
                continue
            await asyncio.sleep(max(min(target, self.we) - clock(), 0))
            tick += 1
            now = clock()
            rss = self.monitor.sample(now - self.t0) if self.monitor else None
            if now >= self.we:
                return
            if tick % 2 or a.quiet:
                continue
            w = self.meas if now >= self.ws else self.warm
            acked = self.warm.spans_acked + self.meas.spans_acked
            rate = (acked - last_acked) / (now - last_t)
            srv = ""
            if self.monitor:
                cpu = self.monitor.cpu_seconds()
                if cpu is not None and last_cpu is not None:
                    srv = f"  srv {100 * (cpu - last_cpu) / (now - last_t):5.0f}% cpu"
                    if rss is not None:
                        srv += f" {rss / 2**20:6.0f} MB"
                last_cpu = cpu
            p99 = w.percentile_ms(99)
            phase = "warm-up " if now < self.ws else ""
            what = "sent" if self.protocol.udp else "acks"  # UDP: handed to the kernel, no more
            print(f"[{now - self.t0:6.1f}s] {phase}{rate:10,.0f} spans/s  {what} {w.req_acked:,}  "
                  f"busy {w.busy:,}  refused {sum(w.refusals.values()) - w.busy:,}  "
                  f"errors {sum(w.errors.values()):,}  p99 "
                  f"{'-' if p99 is None else f'{p99:.1f} ms'}  in-flight {self.in_flight}{srv}",
                  file=sys.stderr, flush=True)
            last_t, last_acked = now, acked

    def _mark_start(self) -> None:
        self.cpu0_client = _client_cpu()
        self.cpu0_server = self.monitor.cpu_seconds() if self.monitor else None
        self.rss_window_start = self.monitor.rss() if self.monitor else None
        text = scrape_metrics(self.query)
        self.ack_hist0 = scrape_ack_histogram(text, self.protocol.label)
        self.counters0 = server_counters(text, self.protocol.label)
        self.kernel0 = kernel_udp_errors() if self.protocol.udp else None
        self.mark0 = time.perf_counter()

    async def run(self) -> dict:
        a = self.args
        # One send is one message: a whole OTLP request, or one Jaeger batch (fewer spans).
        per_send = getattr(self.pool, "mean_spans_per_send", a.spans_per_request)
        self.interval = (per_send / a.rate) if a.rate > 0 else 0.0
        self._next_slot = 0
        self.rss_start = None
        senders = [self._sender() for _ in range(a.concurrency)]
        self.t0 = time.perf_counter()
        self.ws = self.t0 + a.warmup
        self.we = self.ws + a.duration
        if a.warmup <= 0:
            self._mark_start()
        workers = [asyncio.ensure_future(self._worker(s)) for s in senders]
        await self._ticker()
        elapsed = time.perf_counter() - self.mark0
        cpu_client = _client_cpu() - self.cpu0_client
        cpu_server = None
        rss_end = None
        if self.monitor:
            c = self.monitor.cpu_seconds()
            if c is not None and self.cpu0_server is not None:
                cpu_server = c - self.cpu0_server
            rss_end = self.monitor.sample(time.perf_counter() - self.t0)
        text = scrape_metrics(self.query)
        self.server_ack = server_quantiles(self.ack_hist0, scrape_ack_histogram(text, self.protocol.label))
        self.counters_end = server_counters(text, self.protocol.label)
        kernel_end = kernel_udp_errors() if self.protocol.udp else None
        self.stopping = True
        in_flight_at_end = self.in_flight
        done, pending = await asyncio.wait(workers, timeout=min(a.timeout, 10.0) + 1.0)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self.counters_settled, self.settle_s = None, None
        if self.protocol.udp and self.counters_end is not None:
            # Datagrams sent before the window closed may still be decoding: wait until the
            # server's counters stop moving (at most --settle seconds).
            t_end = time.perf_counter()
            last = self.counters_end
            while time.perf_counter() - t_end < a.settle:
                await asyncio.sleep(0.5)
                now = server_counters(scrape_metrics(self.query), self.protocol.label)
                if now is None or now == last:
                    break
                last = now
            self.counters_settled, self.settle_s = last, round(time.perf_counter() - t_end, 1)
            kernel_end = kernel_udp_errors()
        self.kernel_delta = None
        if self.kernel0 and kernel_end:
            self.kernel_delta = {k: (kernel_end[k] - self.kernel0[k]) if kernel_end[k] is not None else None
                                 for k in kernel_end}
        return self._report(elapsed, cpu_client, cpu_server, rss_end, in_flight_at_end)

    def _report(self, elapsed, cpu_client, cpu_server, rss_end, in_flight_at_end) -> dict:
        a, w = self.args, self.meas
        lat = np.frombuffer(w.latency, dtype=np.float64) * 1e3 if w.latency else None

        def pct(q):
            return None if lat is None else round(float(np.percentile(lat, q)), 3)

        lag = np.frombuffer(w.lag, dtype=np.float64) * 1e3 if w.lag else None
        report = {
            "kind": "clew-perf load",
            "version": 1,
            "started_at": self.started_at,
            "config": {k: v for k, v in vars(a).items() if k not in ("func", "command")},
            "target": {"protocol": a.protocol, "metrics_label": self.protocol.label,
                       "host": self.host, "port": self.port,
                       "gzip": a.gzip, "spawned": bool(a.spawn),
                       "server_pid": self.monitor.pid if self.monitor else None},
            "window_s": round(elapsed, 3),
            "server_ack_ms": self.server_ack,
            "pool": {"bodies": len(getattr(self.pool, "templates", None) or self.pool.groups),
                     "mean_body_bytes": round(self.pool.mean_body_bytes, 1),
                     "spans_per_request": a.spans_per_request,
                     "foreign": self.pool.stats() if hasattr(self.pool, "stats") else None},
            "requests": {"sent": w.req_sent, "acked": w.req_acked, "busy": w.busy,
                         "refused": sum(w.refusals.values()), "errors": sum(w.errors.values()),
                         "retries": w.retries, "in_flight_at_end": in_flight_at_end},
            "spans": {"sent": w.spans_sent, "acked": w.spans_acked,
                      "rejected_partial": w.spans_rejected},
            "throughput": {
                "acked_spans_per_s": round(w.spans_acked / elapsed, 1) if elapsed else 0.0,
                "acked_requests_per_s": round(w.req_acked / elapsed, 2) if elapsed else 0.0,
                "sent_spans_per_s": round(w.spans_sent / elapsed, 1) if elapsed else 0.0,
                "sent_mbytes_per_s": round(w.bytes_sent / elapsed / 1e6, 3) if elapsed else 0.0,
                # gRPC compresses inside its core, so there the bytes are counted before gzip.
                "sent_bytes_compressed": bool(a.gzip and self.protocol.transport == "http"),
                "target_spans_per_s": a.rate or None,
            },
            "latency_ms": {"count": len(w.latency), "p50": pct(50), "p95": pct(95),
                           "p99": pct(99), "p999": pct(99.9),
                           "max": None if lat is None else round(float(lat.max()), 3),
                           "mean": None if lat is None else round(float(lat.mean()), 3),
                           "measured_from": "scheduled send" if a.rate > 0 else "send",
                           "applicable": not self.protocol.udp},
            "send_lag_ms": None if lag is None else {
                "p50": round(float(np.percentile(lag, 50)), 3),
                "p99": round(float(np.percentile(lag, 99)), 3),
                "max": round(float(lag.max()), 3)},
            "refusals": dict(w.refusals),
            "busy_refusals": w.busy,
            "errors": dict(w.errors),
            "partial_success_messages": dict(w.partial_messages),
            "warmup": {"requests_acked": self.warm.req_acked, "spans_acked": self.warm.spans_acked,
                       "refusals": dict(self.warm.refusals), "errors": dict(self.warm.errors)},
            "client": {"cpu_seconds": round(cpu_client, 3),
                       "cpu_percent": round(100 * cpu_client / elapsed, 1) if elapsed else None},
            "server": None,
        }
        self._server_side(report, elapsed)
        if self.monitor:
            m = self.monitor
            report["server"] = {
                "pid": m.pid,
                "alive_at_end": m.alive,
                "cpu_seconds": None if cpu_server is None else round(cpu_server, 3),
                "cpu_percent": None if cpu_server is None or not elapsed
                else round(100 * cpu_server / elapsed, 1),
                "rss_start_bytes": self.rss_start,
                "rss_window_start_bytes": self.rss_window_start,
                "rss_end_bytes": rss_end,
                "rss_peak_bytes": m.rss_peak or None,
                "rss_anon_first_bytes": m.anon_first,
                "rss_anon_end_bytes": m.anon_last,
                "rss_anon_peak_bytes": m.anon_peak or None,
                "rss_samples": m.series if m.keep_series else None,
            }
        return report


    def _server_side(self, report: dict, elapsed: float) -> None:
        """What the server's /metrics counted over the window; for UDP, the section that replaces acks."""
        w = self.meas
        window = counters_delta(self.counters0, self.counters_end)
        settled = counters_delta(self.counters0, self.counters_settled)
        report["server_counters"] = None if window is None else {
            "label": self.protocol.label, "window": window, "settled": settled, "settle_s": self.settle_s}
        report["throughput"]["server_accepted_spans_per_s"] = \
            round(window["spans_accepted"] / elapsed, 1) if window and elapsed else None
        if not self.protocol.udp:
            report["udp"] = None
            return
        # Nothing is acknowledged over UDP: "acked" would only mean "the kernel took it".
        report["requests"]["acked"] = None
        report["spans"]["acked"] = None
        report["throughput"]["acked_spans_per_s"] = None
        report["throughput"]["acked_requests_per_s"] = None
        last = settled or window or {}
        accepted = last.get("spans_accepted")
        fs = report["pool"]["foreign"] or {}
        report["udp"] = {
            "datagrams_sent": w.req_sent,
            "datagrams_sent_ok": w.req_acked,
            "send_errors": dict(w.errors),
            "datagrams_per_s": round(w.req_sent / elapsed, 1) if elapsed else None,
            "spans_per_s": round(w.spans_sent / elapsed, 1) if elapsed else None,
            "spans_per_datagram": {
                "sent_mean": round(w.spans_sent / w.req_sent, 2) if w.req_sent else None,
                "pool_min": (fs.get("spans_per_message") or {}).get("min"),
                "pool_max": (fs.get("spans_per_message") or {}).get("max")},
            "datagram_bytes": fs.get("message_bytes"),
            "max_datagram_bytes": fs.get("max_datagram_bytes"),
            "server_spans_accepted": accepted,
            "server_accepted_share": round(accepted / w.spans_sent, 4)
            if accepted is not None and w.spans_sent else None,
            "server_accepted_spans_per_s": report["throughput"]["server_accepted_spans_per_s"],
            "server_datagrams_received": last.get("datagrams_received"),
            "server_datagrams_dropped": last.get("datagrams_dropped"),
            "kernel_udp_errors": self.kernel_delta,
            "ack_latency": "not applicable: UDP datagrams are not acknowledged",
        }


# -- --verify: the traces came back ------------------------------------------------------------

class VerifySample:
    """A uniform sample (reservoir) of traces whose every message was accepted, for ``--verify``.

    A trace is eligible once all messages of its group were answered with success (UDP: handed
    to the kernel), so a trace cut short by a refusal is never held against the server.
    """

    def __init__(self, n: int, seed: int):
        self.n = max(int(n or 0), 0)
        self.seen = 0
        self.items: list[tuple[str, int]] = []
        self._rng = random.Random(seed)

    def answered(self, group: SendGroup, ok: bool) -> None:
        if not ok:
            group.failed = True
        group.left -= 1
        if group.left or group.failed:
            return
        for i, want in enumerate(group.trace_spans):
            if not want:
                continue
            self.seen += 1
            if len(self.items) < self.n:
                self.items.append((bytes(group.tids[i]).hex(), int(want)))
            else:
                j = self._rng.randrange(self.seen)
                if j < self.n:
                    self.items[j] = (bytes(group.tids[i]).hex(), int(want))


def verify_traces(query: str, items: list[tuple[str, int]], timeout: float = 10.0) -> dict:
    """Fetch each trace from ``GET /api/traces/{id}`` and compare its span count with what was sent."""
    out = {"requested": len(items), "complete": 0, "wrong_span_count": 0, "missing": 0, "errors": 0,
           "spans_expected": sum(n for _, n in items), "spans_found": 0, "examples": []}
    for tid, want in items:
        try:
            with urllib.request.urlopen(f"http://{query}/api/traces/{tid}", timeout=timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            out["missing" if exc.code == 404 else "errors"] += 1
            if exc.code != 404 and len(out["examples"]) < 5:
                out["examples"].append({"trace_id": tid, "expected": want, "http_status": exc.code})
            continue
        except (OSError, ValueError) as exc:
            out["errors"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append({"trace_id": tid, "expected": want, "error": type(exc).__name__})
            continue
        got = sum(len(t.get("spans") or []) for t in body.get("data") or [])
        out["spans_found"] += got
        if got == want:
            out["complete"] += 1
        else:
            out["wrong_span_count"] += 1
            if len(out["examples"]) < 5:
                out["examples"].append({"trace_id": tid, "expected": want, "found": got})
    return out


def _fmt_mb(n) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB"


def _fmt(v, unit="") -> str:
    return "-" if v is None else f"{v:,.1f}{unit}"


def format_report(r: dict) -> str:
    c, lat, req, sp, th = r["config"], r["latency_ms"], r["requests"], r["spans"], r["throughput"]
    rate = "flat out" if not c["rate"] else f"{c['rate']:,} spans/s open loop"
    if r.get("udp"):
        return _format_udp(r, rate)
    lines = [
        f"clew-perf load: {c['protocol']}{' +gzip' if c['gzip'] else ''} -> "
        f"{r['target']['host']}:{r['target']['port']}, concurrency {c['concurrency']}, {rate}, "
        f"{r['window_s']:.1f} s measured (+{c['warmup']:g} s warm-up)",
        f"  spans      sent {sp['sent']:,}  acked {sp['acked']:,}  rejected (partial) "
        f"{sp['rejected_partial']:,}",
        f"  requests   sent {req['sent']:,}  acked {req['acked']:,}  busy {req['busy']:,}  "
        f"refused {req['refused'] - req['busy']:,} other  errors {req['errors']:,}  "
        f"retries {req['retries']:,}  in flight at end {req['in_flight_at_end']}",
        f"  throughput {th['acked_spans_per_s']:,.0f} spans/s  {th['acked_requests_per_s']:,.1f} "
        f"req/s  ({th['sent_mbytes_per_s']:.2f} MB/s sent"
        f"{'' if th['sent_bytes_compressed'] or not c['gzip'] else ' before gzip'}, "
        f"{r['pool']['mean_body_bytes'] / 1024:.1f} KiB/request before gzip)",
        f"  latency    p50 {_fmt(lat['p50'])}  p95 {_fmt(lat['p95'])}  p99 {_fmt(lat['p99'])}  "
        f"max {_fmt(lat['max'])} ms  (from {lat['measured_from']})",
    ]
    if r.get("server_ack_ms"):
        sa = r["server_ack_ms"]
        lines.append(f"  server ack p50 <= {_fmt(sa['p50_le'])}  p95 <= {_fmt(sa['p95_le'])}  "
                     f"p99 <= {_fmt(sa['p99_le'])} ms  (the server's own histogram, {sa['count']:,} requests)")
    if r["send_lag_ms"]:
        lg = r["send_lag_ms"]
        lines.append(f"  send lag   p50 {lg['p50']:.1f}  p99 {lg['p99']:.1f}  max {lg['max']:.1f} ms "
                     "(late starts against the schedule)")
    if r["refusals"]:
        lines.append("  refusals   " + "  ".join(f"{k}: {v:,}" for k, v in sorted(r["refusals"].items())))
    if r["errors"]:
        lines.append("  errors     " + "  ".join(f"{k}: {v:,}" for k, v in sorted(r["errors"].items())))
    for msg, n in r["partial_success_messages"].items():
        lines.append(f"  partial    {n:,} x {msg}")
    s = r["server"]
    if s:
        lines.append(f"  server     pid {s['pid']}  cpu {_fmt(s['cpu_seconds'], ' s')} "
                     f"({_fmt(s['cpu_percent'], '%')})  rss start {_fmt_mb(s['rss_start_bytes'])}  "
                     f"end {_fmt_mb(s['rss_end_bytes'])}  peak {_fmt_mb(s['rss_peak_bytes'])}")
        lines.append(f"             anonymous rss first {_fmt_mb(s['rss_anon_first_bytes'])}  "
                     f"end {_fmt_mb(s['rss_anon_end_bytes'])}  peak {_fmt_mb(s['rss_anon_peak_bytes'])}"
                     "  (rss less mapped store files)")
    _format_tail(r, lines)
    return "\n".join(lines)


def _format_tail(r: dict, lines: list) -> None:
    """Lines every report ends with: server-side counters, --verify, client CPU."""
    sc = r.get("server_counters")
    if sc and not r.get("udp"):
        wd = sc["window"]
        lines.append(f"  server     /metrics {sc['label']}: accepted {wd['spans_accepted']:,} spans "
                     f"({_fmt(r['throughput'].get('server_accepted_spans_per_s'))} spans/s) "
                     f"received {wd['spans_received']:,}"
                     + (f"  refused {wd['spans_refused']}" if wd["spans_refused"] else ""))
    v = r.get("verify")
    if v:
        lines.append(f"  verify     {v['complete']}/{v['requested']} traces complete  wrong span count "
                     f"{v['wrong_span_count']}  missing {v['missing']}  errors {v['errors']}  "
                     f"(spans {v['spans_found']:,}/{v['spans_expected']:,})")
        for ex in v["examples"][:3]:
            lines.append(f"             e.g. {ex}")
    cl = r["client"]
    lines.append(f"  client     cpu {cl['cpu_seconds']:.1f} s ({_fmt(cl['cpu_percent'], '%')})")


def _format_udp(r: dict, rate: str) -> str:
    c, u, th = r["config"], r["udp"], r["throughput"]
    lines = [
        f"clew-perf load: {c['protocol']} -> {r['target']['host']}:{r['target']['port']}, "
        f"concurrency {c['concurrency']}, {rate}, {r['window_s']:.1f} s measured (+{c['warmup']:g} s warm-up)",
        f"  sent       {u['datagrams_sent']:,} datagrams ({u['datagrams_per_s']:,.0f}/s)  "
        f"{r['spans']['sent']:,} spans ({u['spans_per_s']:,.0f} spans/s, {th['sent_mbytes_per_s']:.2f} MB/s)  "
        f"send errors {u['send_errors'] or 0}",
        f"  datagrams  {u['spans_per_datagram']['sent_mean']} spans each (pool {u['spans_per_datagram']['pool_min']}"
        f"..{u['spans_per_datagram']['pool_max']}), bytes mean {(u['datagram_bytes'] or {}).get('mean')} "
        f"max {(u['datagram_bytes'] or {}).get('max')} (limit {u['max_datagram_bytes']})",
    ]
    if u["server_spans_accepted"] is None:
        lines.append("  server     no /metrics (give --query-endpoint for an external server): "
                     "nothing is known about what arrived")
    else:
        share = u["server_accepted_share"]
        lines.append(f"  server     accepted {u['server_spans_accepted']:,} spans"
                     f" ({'-' if share is None else f'{100 * share:.1f}%'} of sent; "
                     f"{_fmt(u['server_accepted_spans_per_s'])} spans/s in the window)  "
                     f"datagrams received {u['server_datagrams_received']:,}  dropped "
                     f"{u['server_datagrams_dropped'] or 0}  (settled {r['server_counters']['settle_s']} s after)")
    if u["kernel_udp_errors"]:
        k = u["kernel_udp_errors"]
        lines.append(f"  kernel     UDP receive errors on this host: InErrors {k['in_errors']}  "
                     f"RcvbufErrors {k['rcvbuf_errors']} (socket buffer overflows: datagrams the server never saw)")
    lines.append("  latency    not applicable: UDP is not acknowledged")
    s = r["server"]
    if s:
        lines.append(f"  server     pid {s['pid']}  cpu {_fmt(s['cpu_seconds'], ' s')} "
                     f"({_fmt(s['cpu_percent'], '%')})  rss start {_fmt_mb(s['rss_start_bytes'])}  "
                     f"end {_fmt_mb(s['rss_end_bytes'])}  peak {_fmt_mb(s['rss_peak_bytes'])}")
    _format_tail(r, lines)
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--protocol", choices=tuple(PROTOCOLS), default="http",
                   help="http/grpc: OTLP; jaeger-udp-compact, jaeger-udp-binary (agent emitBatch), "
                        "jaeger-http (Thrift Batch), jaeger-grpc (api_v2 PostSpans), zipkin-json, "
                        "zipkin-proto (/api/v2/spans)")
    g.add_argument("--endpoint", metavar="HOST:PORT",
                   help="server to load (the OTLP port of --protocol)")
    g.add_argument("--spawn", action="store_true",
                   help="start `clew serve` on ephemeral ports in a temp data dir, stop it after")
    g.add_argument("--server-set", action="append", default=[], metavar="K=V",
                   help="with --spawn: pass `--set K=V` to clew serve (repeatable)")
    g.add_argument("--server-pid", type=int, help="monitor CPU/RSS of this (external) server pid")
    g.add_argument("--query-endpoint", metavar="HOST:PORT",
                   help="query API of an external server: its /metrics gives the server-side ack "
                        "latency and counters (UDP: what arrived); --verify reads traces from it")
    g.add_argument("--spawn-timeout", type=float, default=60.0, help="seconds to wait for readyz")
    g.add_argument("--keep-data", action="store_true", help="with --spawn: keep the temp data dir")
    g.add_argument("--gzip", action="store_true", help="gzip request bodies")
    g.add_argument("--gzip-level", type=int, default=1,
                   help="HTTP gzip level (default 1: cheap for the client; gRPC uses its own)")
    g = p.add_argument_group("load")
    g.add_argument("--concurrency", type=int, default=8, help="workers, one connection each")
    g.add_argument("--rate", type=float, default=0.0,
                   help="target spans/s on an open-loop schedule (0 = flat out, closed loop)")
    g.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    g.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds before")
    g.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    g.add_argument("--retry", action="store_true", help="retry busy answers (429/503, "
                   "RESOURCE_EXHAUSTED/UNAVAILABLE); latency then includes the retries")
    g.add_argument("--max-retries", type=int, default=20)
    g.add_argument("--max-datagram-bytes", type=int, default=foreign.MAX_DATAGRAM,
                   help="Jaeger UDP: largest datagram; batches are split to fit (default 65000)")
    g.add_argument("--settle", type=float, default=10.0,
                   help="Jaeger UDP: seconds at most to wait after the window for the server's "
                        "counters to stop moving")
    g.add_argument("--verify", type=int, default=0, metavar="N",
                   help="after the run, fetch N sent traces (a uniform sample of fully accepted "
                        "ones) from GET /api/traces/{id} and compare span counts")
    g = p.add_argument_group("traces")
    g.add_argument("--services", type=int, default=10)
    g.add_argument("--depth", type=int, default=4)
    g.add_argument("--fanout", type=int, default=3)
    g.add_argument("--attrs", type=int, default=8, help="attributes per span")
    g.add_argument("--span-bytes", type=int, default=500, help="target serialized span size")
    g.add_argument("--error-rate", type=float, default=0.01)
    g.add_argument("--spans-per-request", type=int, default=100)
    g.add_argument("--pool", type=int, default=256, help="distinct request bodies pre-built "
                   "(capped so the pool holds at most ~100k spans)")
    g.add_argument("--seed", type=int, default=1)
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, help="JSON report (default perf/results/load-<ts>.json)")
    g.add_argument("--rss-samples", action="store_true",
                   help="record the server RSS time series (0.5 s) in the JSON")
    g.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="event loop (auto: uvloop)")
    g.add_argument("--quiet", action="store_true", help="no per-second progress lines")


def shape_from_args(a: argparse.Namespace) -> TraceShape:
    return TraceShape(services=a.services, depth=a.depth, fanout=a.fanout, attrs=a.attrs,
                      span_bytes=a.span_bytes, error_rate=a.error_rate,
                      spans_per_request=a.spans_per_request).validate()


def _parse_endpoint(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--endpoint must be HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


def _new_loop(choice: str) -> asyncio.AbstractEventLoop:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if choice == "uvloop":
                raise
    return asyncio.new_event_loop()


def run(a: argparse.Namespace) -> int:
    if not a.spawn and not a.endpoint:
        raise SystemExit("give --endpoint HOST:PORT or --spawn")
    if a.concurrency < 1 or a.duration <= 0:
        raise SystemExit("--concurrency must be >= 1 and --duration > 0")
    proto = PROTOCOLS[a.protocol]
    if proto.udp and a.gzip:
        raise SystemExit("--gzip does not apply to Jaeger UDP")
    if proto.udp and not a.rate:
        print("note: Jaeger UDP flat out sends as fast as the client can and cannot be slowed by the "
              "server; give --rate to measure a sustainable load", file=sys.stderr, flush=True)
    shape = shape_from_args(a)
    size = max(4, min(a.pool, 100_000 // shape.spans_per_request))
    t = time.perf_counter()
    pool = RequestPool(shape, size, a.seed)
    print(f"pool: {size} bodies x {shape.spans_per_request} spans, "
          f"{pool.mean_body_bytes / 1024:.1f} KiB each, built in {time.perf_counter() - t:.1f} s",
          file=sys.stderr, flush=True)
    if not proto.otlp:
        t = time.perf_counter()
        pool = foreign.ForeignPool(a.protocol, pool, a.seed, a.max_datagram_bytes)
        st = pool.stats()
        print(f"{a.protocol}: {st['messages']} messages ({st['messages_per_group']} per pooled request), "
              f"{st['spans_per_message']['mean']} spans and {st['message_bytes']['mean'] / 1024:.1f} KiB "
              f"each (max {st['message_bytes']['max']:,} B), converted in {time.perf_counter() - t:.1f} s",
              file=sys.stderr, flush=True)

    server = None
    try:
        if a.spawn:
            server = SpawnedServer(a.server_set, a.spawn_timeout, a.keep_data)
            host = "127.0.0.1"
            if proto.port_key not in server.ports:
                raise SystemExit(f"the spawned server's ports.json has no {proto.port_key!r}")
            port = int(server.ports[proto.port_key])
            pid = server.pid
            print(f"spawned clew serve pid {pid} ({proto.port_key} {port}, "
                  f"query {server.ports.get('query')}), data {server.data_dir}", file=sys.stderr, flush=True)
        else:
            host, port = _parse_endpoint(a.endpoint)
            pid = a.server_pid
        monitor = ServerMonitor(pid, a.rss_samples) if pid else None
        query = f"127.0.0.1:{server.ports['query']}" if server is not None else a.query_endpoint
        lr = LoadRun(a, pool, host, port, monitor, query)
        lr.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        loop = _new_loop(a.loop)
        try:
            report = loop.run_until_complete(lr.run())
        finally:
            loop.close()
        report["verify"] = None
        if a.verify:
            if not query:
                print("--verify needs the query API: --spawn or --query-endpoint", file=sys.stderr)
            else:
                t = time.perf_counter()
                report["verify"] = verify_traces(query, lr.verify.items)
                report["verify"]["seconds"] = round(time.perf_counter() - t, 2)
    finally:
        if server is not None:
            rc = server.stop()
            print(f"clew serve stopped (exit {rc})", file=sys.stderr, flush=True)
    if server is not None and report["server"] is not None:
        report["server"]["exit_code"] = rc
    print(format_report(report))
    out = a.out or RESULTS_DIR / f"load-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report: {out}")
    if proto.udp:
        return 0 if report["udp"]["datagrams_sent_ok"] else 1
    return 0 if report["requests"]["acked"] else 1
