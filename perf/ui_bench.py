"""Measure stage: the web UI in a real browser — how long big traces and the search page take to
become interactive, and screenshots of every page.

``python -m perf ui`` runs, in one go:

1. starts ``clew serve`` on a fresh data directory and sends it, over the real receivers:
   a 10,000-span trace (the load generator's synthesiser, 12 services, 12 call levels, sent
   in 1,000-span OTLP/HTTP requests as an instrumented fleet would), the Zipkin Lens test
   trace of 1,041 spans (``shared/conformance/zipkin/lens-testdata``, to the Zipkin receiver),
   and ``--background`` traces of a small web shop (``SHOP``: 3 endpoints over 11 services,
   failures that propagate up from payment and ads) for the search page, the graph and the
   comparison of one checkout trace with its copy where ``fraud`` is 3× slower;
2. drives Debian's Chromium (headless, through Playwright) ``--repeat`` times per case, each
   in a fresh browser context (no cache):

   * **trace, 10,000 spans** and **trace, Lens 1,041 spans**: from ``page.goto('/trace/{id}')``
     to the waterfall's first rows on screen (*shown*), then a click on the last row drawn
     until the span's detail panel shows it (*interactive*: the page answers input); then End
     in the span tree until the last span is selected, scrolled to, drawn and detailed
     (*scrolled*);
   * **open file, 10,000 spans**: the same trace as an OTLP/JSON file given to ``/open``
     (parsed in the browser, nothing stored): file chosen → first rows shown;
   * **search**: ``page.goto('/search?service=…&lookback=1h')`` until the result list shows
     its rows (services list and search answered and drawn);

   reporting median and worst per case, in milliseconds of wall time measured by the test
   driver (Playwright's own round trips included, a few ms);
3. with ``--screenshots DIR``: PNGs of each page at 1400×900, for ``docs/``, from a second
   server holding only the shop and the Lens trace: search, a failed checkout trace with its
   failing span's details, the Lens trace, compare (the checkout pair), the service graph, the
   Lens file opened, the checkout service's performance, and the alerts page with a rule firing
   on payment errors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from perf.loadgen import SpawnedServer
from perf.traces import TraceShape, TraceSynth

ROOT = Path(__file__).resolve().parent.parent
LENS = ROOT.parent / "shared" / "conformance" / "zipkin" / "lens-testdata" / "smartthings-mobile-web-install.json"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

# What the pages show (the same hooks the UI tests use).
ROWS = "[data-testid=span-row]"
DETAIL = "[data-testid=span-detail]"
RESULTS = "[data-testid=trace-list] tr[data-trace-id]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=5, help="runs of each case (fresh context each)")
    p.add_argument("--background", type=int, default=300,
                   help="traces of a web shop's traffic (3 endpoints, 11 services) for the search page")
    p.add_argument("--chromium", default=os.environ.get("CLEW_CHROMIUM") or shutil.which("chromium")
                   or "/usr/bin/chromium", help="the Chromium binary Playwright drives")
    p.add_argument("--screenshots", type=Path, default=None,
                   help="save a PNG of each page into this directory (e.g. docs/)")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default perf/results/ui-<ts>.json)")


def _post(url: str, body: bytes, content_type: str) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()


def _big_trace(spans: int = 10_000):
    """The 10,000-span trace: one request (split for sending), and its trace ID."""
    req = TraceSynth(TraceShape(services=12, depth=12, fanout=6), seed=1).one_trace(spans)
    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    if n != spans:
        raise RuntimeError(f"the synthesiser made {n} spans, not {spans}")
    return req, req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def _split(req, per: int):
    """The request's spans in requests of at most ``per`` spans (resource and scope kept)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    out, cur, count = [], ExportTraceServiceRequest(), 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for i in range(0, len(ss.spans), per):
                part = ss.spans[i:i + per]
                if count + len(part) > per and count:
                    out.append(cur)
                    cur, count = ExportTraceServiceRequest(), 0
                nrs = cur.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                nrs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url).spans.extend(part)
                count += len(part)
    if count:
        out.append(cur)
    return out


# A web shop: each endpoint is a call tree of (service, operation, kind, [children]); a call
# to another service is a client span in the caller and a server span in the callee.
SHOP = {
    "GET /checkout": ("frontend", [
        ("cart", "GetCart", [("redis", "HGETALL", [])]),
        ("checkout", "PlaceOrder", [
            ("payment", "Charge", [("fraud", "Score", [])]),
            ("shipping", "Quote", []),
            ("email", "SendConfirmation", []),
        ]),
    ]),
    "GET /product/{id}": ("frontend", [
        ("catalog", "GetProduct", [("postgres", "SELECT products", [])]),
        ("recommendation", "ListRecommendations", [("catalog", "ListProducts", [("postgres", "SELECT products", [])])]),
        ("ad", "GetAds", []),
    ]),
    "GET /search": ("frontend", [
        ("search", "Query", [("catalog", "ListProducts", [("postgres", "SELECT products", [])])]),
    ]),
}
SLOW = {"fraud": 3.0}  # services that are slower in the "slow" copy of a trace (the compare shot)
FAILS = {"payment": 0.08, "ad": 0.03}  # share of calls that fail


def shop_traces(count: int, seed: int = 7, now_ns: int | None = None):
    """``count`` shop traces as OTLP requests (one per trace), with errors that propagate up
    from the failing call; plus a pair of one checkout trace, normal and with ``SLOW``."""
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()

    def build(route, start, trace_id, slow=None, fail=True):
        spans = []  # (service, Span)

        def call(service, op, children, parent, t0, budget, kind_server=True):
            sp = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=parent, name=op,
                      kind=Span.SPAN_KIND_SERVER if kind_server else Span.SPAN_KIND_INTERNAL)
            sp.start_time_unix_nano = t0
            own = budget * (0.1 + 0.2 * rng.random()) * ((slow or {}).get(service, 1.0))
            t = t0 + int(own / 2)
            failed = fail and rng.random() < FAILS.get(service, 0.0)
            for callee, cop, grand in children:
                cbudget = budget * (0.3 + 0.4 * rng.random())
                client = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=sp.span_id,
                              name=cop, kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=t)
                client.attributes.append(KeyValue(key="peer.service", value=AnyValue(string_value=callee)))
                end, cfailed = call(callee, cop, grand, client.span_id, t + 200_000, cbudget)
                client.end_time_unix_nano = end + 200_000
                if cfailed:
                    client.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=f"{callee} failed"))
                    failed = True
                spans.append((service, client))
                t = client.end_time_unix_nano + int(budget * 0.02)
            sp.end_time_unix_nano = t + int(own / 2)
            sp.attributes.append(KeyValue(key="http.route" if service == "frontend" else "rpc.method",
                                          value=AnyValue(string_value=op)))
            if failed:
                sp.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=f"{op} failed"))
            spans.append((service, sp))
            return sp.end_time_unix_nano, failed

        root_service, children = SHOP[route]
        call(root_service, route, children, b"", start, rng.uniform(20e6, 120e6))
        req = ExportTraceServiceRequest()
        by = {}
        for service, sp in spans:
            by.setdefault(service, []).append(sp)
        for service, group in by.items():
            rs = req.resource_spans.add()
            rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
            rs.scope_spans.add().spans.extend(group)
        return req

    routes = list(SHOP)
    out = []
    for i in range(count):
        start = now_ns - int((count - i) * 20e9 / count) - 60_000_000_000 // count
        out.append(build(routes[i % len(routes)], start, rng.randbytes(16)))
    pair_start = now_ns - 5_000_000_000
    ids = rng.randbytes(16), rng.randbytes(16)
    state = rng.getstate()
    normal = build("GET /checkout", pair_start, ids[0], fail=False)
    rng.setstate(state)  # the same draws: the same tree, only SLOW differs
    slow = build("GET /checkout", pair_start + 1_000_000_000, ids[1], slow=SLOW, fail=False)
    return out, normal, slow


def _trace_id(req) -> str:
    return req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def seed(server: SpawnedServer, background: int, big: bool = True) -> dict:
    ports = server.ports
    otlp = f"http://127.0.0.1:{ports['otlp_http']}/v1/traces"
    out = {}
    if big:
        req, out["big_id"] = _big_trace()
        for part in _split(req, 1000):
            _post(otlp, part.SerializeToString(), "application/x-protobuf")
        from google.protobuf.json_format import MessageToDict
        out["big_json"] = MessageToDict(req, use_integers_for_enums=True)
    lens = json.loads(LENS.read_text())
    _post(f"http://127.0.0.1:{ports['zipkin']}/api/v2/spans", json.dumps(lens).encode(), "application/json")
    lens_id = lens[0]["traceId"].rjust(32, "0")
    shop, normal, slow = shop_traces(background)
    for req in [*shop, normal, slow]:
        _post(otlp, req.SerializeToString(), "application/x-protobuf")
    return {**out, "lens_id": lens_id, "pair": (_trace_id(normal), _trace_id(slow))}


def _otlp_json_file(doc: dict, path: Path) -> Path:
    """OTLP/JSON as the spec writes it: IDs in hex (MessageToDict writes base64)."""
    import base64
    for rs in doc.get("resourceSpans", ()):
        for ss in rs.get("scopeSpans", ()):
            for sp in ss.get("spans", ()):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if sp.get(k):
                        sp[k] = base64.b64decode(sp[k]).hex()
                for link in sp.get("links", ()):
                    for k in ("traceId", "spanId"):
                        if link.get(k):
                            link[k] = base64.b64decode(link[k]).hex()
    path.write_text(json.dumps(doc))
    return path


def _time_trace(browser, url: str) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.locator(ROWS).first.wait_for(state="visible", timeout=60_000)
        shown = time.perf_counter() - t0
        rows = page.locator(ROWS)
        last = rows.nth(rows.count() - 1)
        name = last.get_attribute("data-span-id")
        last.click()
        page.locator(f"{DETAIL}[data-span-id='{name}']").wait_for(state="visible", timeout=60_000)
        interactive = time.perf_counter() - t0
        t1 = time.perf_counter()
        page.locator("[data-testid=waterfall]").focus()
        page.keyboard.press("End")  # the tree's last span: scrolled to and drawn
        page.keyboard.press("Enter")  # and detailed
        page.locator(f"{DETAIL}:not([data-span-id='{name}'])").wait_for(state="visible", timeout=60_000)
        page.locator(f"{ROWS}[aria-selected=true]").wait_for(state="visible", timeout=60_000)
        scrolled = time.perf_counter() - t1
        return {"shown_ms": shown * 1e3, "interactive_ms": interactive * 1e3, "scrolled_ms": scrolled * 1e3}
    finally:
        ctx.close()


def _time_open(browser, base: str, path: Path) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    try:
        page.goto(base + "/open")
        chooser = page.locator("input[type=file]")
        t0 = time.perf_counter()
        chooser.set_input_files(str(path))
        page.locator(ROWS).first.wait_for(state="visible", timeout=60_000)
        return {"shown_ms": (time.perf_counter() - t0) * 1e3}
    finally:
        ctx.close()


def _time_search(browser, url: str) -> dict:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.locator(RESULTS).first.wait_for(state="visible", timeout=60_000)
        return {"results_ms": (time.perf_counter() - t0) * 1e3}
    finally:
        ctx.close()


def _summary(runs: list[dict]) -> dict:
    out = {}
    for key in runs[0]:
        vals = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(vals), 1), "max": round(max(vals), 1),
                    "runs": [round(v, 1) for v in vals]}
    return out


def screenshots(browser, base: str, data: dict, out_dir: Path, service: str) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    saved = []

    def shot(name: str):
        path = out_dir / f"ui-{name}.png"
        page.screenshot(path=str(path))
        saved.append(str(path))

    try:
        page.goto(f"{base}/search?service={service}&lookback=1h")
        page.locator(RESULTS).first.wait_for(state="visible", timeout=60_000)
        shot("search")
        page.goto(f"{base}/search?service=payment&errors=true&lookback=1h")
        page.locator(RESULTS).first.wait_for(state="visible", timeout=60_000)
        failed = page.locator(RESULTS).first.get_attribute("data-trace-id")
        page.goto(f"{base}/trace/{failed}")
        page.locator(ROWS).first.wait_for(state="visible", timeout=60_000)
        page.get_by_test_id("failed-first").get_by_role("button").click()  # "show span"
        page.locator(DETAIL).wait_for(state="visible")
        shot("trace")
        page.goto(f"{base}/trace/{data['lens_id']}")
        page.locator(ROWS).first.wait_for(state="visible", timeout=60_000)
        shot("trace-large")
        page.goto(f"{base}/compare?a={data['pair'][0]}&b={data['pair'][1]}")
        page.wait_for_load_state("networkidle")
        shot("compare")
        page.goto(f"{base}/graph?lookback=1h")
        page.wait_for_load_state("networkidle")
        shot("graph")
        page.goto(f"{base}/open")
        page.locator("input[type=file]").set_input_files(str(LENS))
        page.locator(ROWS).first.wait_for(state="visible", timeout=60_000)
        shot("open")
        page.goto(f"{base}/performance?service=checkout&lookback=1h")
        page.wait_for_load_state("networkidle")
        page.locator("svg").first.wait_for(state="visible", timeout=60_000)
        shot("performance")
        # a rule that fires on the shop's failing payments, and one that stays quiet
        for rule in ({"id": "payment-errors", "name": "Payment errors", "type": "error_rate",
                      "service": "payment", "threshold": 0.02, "window": "1h"},
                     {"id": "checkout-latency", "name": "Checkout p95", "type": "latency",
                      "service": "checkout", "kind": "server", "threshold": 2000, "window": "5m"}):
            _post(f"{base}/api/v1/alerts/rules", json.dumps(rule).encode(), "application/json")
        page.goto(f"{base}/alerts")
        page.get_by_test_id("alert-state").filter(has_text="firing").first.wait_for(timeout=60_000)
        shot("alerts")
    finally:
        ctx.close()
    return saved


def run(args) -> int:
    from playwright.sync_api import sync_playwright

    if not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium}: apt-get install -y chromium", file=sys.stderr)
        return 2
    server = SpawnedServer([], timeout=60, keep_data=False)
    work = Path(tempfile.mkdtemp(prefix="clew-ui-bench-"))
    try:
        t = time.perf_counter()
        data = seed(server, args.background)
        print(f"seeded in {time.perf_counter() - t:.1f} s: 10,000-span trace {data['big_id']}, "
              f"Lens trace {data['lens_id']}, {args.background} shop traces")
        base = f"http://127.0.0.1:{server.ports['query']}"
        big_file = _otlp_json_file(data["big_json"], work / "trace-10000.json")
        service = "frontend"
        report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                  "repeat": args.repeat, "cases": {}}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            report["browser"] = browser.version
            cases = {
                "trace 10,000 spans": lambda: _time_trace(browser, f"{base}/trace/{data['big_id']}"),
                "trace Lens 1,041 spans": lambda: _time_trace(browser, f"{base}/trace/{data['lens_id']}"),
                "open file 10,000 spans": lambda: _time_open(browser, base, big_file),
                "search": lambda: _time_search(browser, f"{base}/search?service={service}&lookback=1h"),
            }
            for name, fn in cases.items():
                fn()  # warm-up: the server's first read, the browser's first compile
                runs = [fn() for _ in range(args.repeat)]
                report["cases"][name] = _summary(runs)
                print(f"  {name}: " + ", ".join(f"{k} median {v['median']} / max {v['max']}"
                                               for k, v in report["cases"][name].items()))
            if args.screenshots:  # on a server of their own: the shop and the Lens trace only
                shots_server = SpawnedServer(["analytics.flush_interval_s=1", "alerting.evaluation_interval_s=1"],
                                             timeout=60, keep_data=False)
                try:
                    shots_data = seed(shots_server, args.background, big=False)
                    report["screenshots"] = screenshots(
                        browser, f"http://127.0.0.1:{shots_server.ports['query']}", shots_data,
                        args.screenshots, service)
                finally:
                    shots_server.stop()
                print("  screenshots: " + ", ".join(report["screenshots"]))
            browser.close()
        out = args.out or ROOT / "perf" / "results" / f"ui-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1))
        print(f"report: {out}")
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
