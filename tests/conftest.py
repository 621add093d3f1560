"""Shared test fixtures: a real ``clew serve`` process on free ports, and the decoder twins."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT.parent / "shared" / "conformance"
CLEW = [sys.executable, "-m", "collector"]
PORT_FLAGS = ("--otlp-grpc-port", "--otlp-http-port", "--jaeger-compact-port", "--jaeger-binary-port",
              "--jaeger-http-port", "--jaeger-grpc-port", "--zipkin-port", "--query-port",
              "--sampling-port")


def otlp_attributes(attrs: dict) -> list:
    """OTLP ``KeyValue`` messages (opentelemetry-proto), typed by the Python value."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def value(v) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        if isinstance(v, bytes):
            return AnyValue(bytes_value=v)
        return AnyValue(string_value=v)
    return [KeyValue(key=k, value=value(v)) for k, v in attrs.items()]


def otlp_json_attributes(**kv) -> list:
    """OTLP/JSON ``attributes``: ``a__b=1`` → key ``a.b``, typed by the Python value."""
    out = []
    for k, v in kv.items():
        key = k.replace("__", ".")
        if isinstance(v, bool):
            out.append({"key": key, "value": {"boolValue": v}})
        elif isinstance(v, int):
            out.append({"key": key, "value": {"intValue": str(v)}})
        elif isinstance(v, float):
            out.append({"key": key, "value": {"doubleValue": v}})
        else:
            out.append({"key": key, "value": {"stringValue": v}})
    return out


def json_shape(value):
    """The JSON shape of a value: key → shape for objects, the element shape for lists."""
    if isinstance(value, dict):
        return {k: json_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    return type(value).__name__


class Server:
    """A ``clew serve`` subprocess; ports come from DATA_DIR/ports.json."""

    def __init__(self, data_dir: Path, *settings: str, env: dict | None = None, config: Path | None = None):
        self.data_dir = Path(data_dir)
        self.settings = list(settings)
        self.env = env
        self.config = config  # a TOML file passed as --config
        self.proc: subprocess.Popen | None = None
        self.ports: dict = {}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self, timeout: float = 30.0) -> "Server":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*CLEW, "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
        for flag in PORT_FLAGS:  # every listener on a free port
            args += [flag, "0"]
        for s in self.settings:
            args += ["--set", s]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = dict(os.environ, **(self.env or {}))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        ports_file = self.data_dir / "ports.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clew serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                ports = json.loads(ports_file.read_text())
                if ports.get("pid") == self.proc.pid:
                    self.ports = ports
                    if requests.get(self.url("/readyz"), timeout=2).status_code == 200:
                        return self
            except (OSError, ValueError, requests.RequestException):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"clew serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['query']}{path}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}/v1/traces"

    def http(self, key: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[key]}{path}"

    def addr(self, key: str) -> str:
        return f"127.0.0.1:{self.ports[key]}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._log.close()


@pytest.fixture
def server_factory(tmp_path):
    started = []

    def make(*settings: str, data_dir: Path | None = None, env: dict | None = None) -> Server:
        srv = Server(data_dir or tmp_path / f"data{len(started)}", *settings, env=env)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture
def server(server_factory):
    return server_factory()


# --------------------------------------------------------------------------- OpenTelemetry SDK fleet


class SdkServices:
    """One OpenTelemetry SDK tracer provider per service name, each exporting span by span over
    OTLP/HTTP to ``endpoint`` (the SDK's own exporter: a real client).  ``resource`` adds
    attributes to every service's resource."""

    def __init__(self, endpoint: str, names, **resource):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self.providers = {}
        for name in names:
            provider = TracerProvider(resource=Resource.create({"service.name": name, **resource}))
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            self.providers[name] = provider

    def tracer(self, name: str, version: str | None = None):
        return self.providers[name].get_tracer("clew-tests", version)

    def span(self, service: str, name: str, start: int, end: int, parent=None, kind=None):
        """A finished span of ``service`` from ``start`` to ``end`` (ns), child of ``parent``."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = self.tracer(service).start_span(name, context=ctx, kind=kind or SpanKind.INTERNAL, start_time=start)
        s.end(end_time=end)
        return s

    def flush(self) -> None:
        for p in self.providers.values():
            assert p.force_flush()
            p.shutdown()


def hex_trace_id(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def hex_span_id(span) -> str:
    return format(span.get_span_context().span_id, "016x")


# --------------------------------------------------------------------------- browser (tests/ui)
# Playwright driving the system's Chromium (headless) against a real ``clew serve``.  A failing
# test leaves a full-page screenshot and the console log in ``test-artifacts/ui/`` (or
# ``$CLEW_TEST_ARTIFACTS``), named after the test.  The browser is Debian's Chromium at
# ``/usr/bin/chromium`` (``CLEW_CHROMIUM`` overrides); ``.ci/run`` installs it.  Playwright
# never downloads a browser of its own.  A missing browser fails these tests with the command
# that installs it: it is not a reason to skip.

CHROMIUM = os.environ.get("CLEW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("CLEW_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "ui"
# Chromium's background services try the network at start; this machine has none to offer.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(.ci/run does) or set CLEW_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, request):
    """A fresh browser page (1400×900); on failure its screenshot and console log are saved."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    pg.set_default_timeout(10_000)
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:]
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # the page may be gone; the log still helps
            console.append(f"screenshot failed: {exc}")
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console))
    context.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """One ``clew serve`` for a test module (its tests share the data they send)."""
    srv = Server(tmp_path_factory.mktemp("ui") / "data").start()
    yield srv
    srv.stop()
