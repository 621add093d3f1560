"""Measure stage: sampling benchmarks — adaptive probabilities following a step change of load, and
ingest throughput with sampling off against head + tail sampling on.

``python -m perf sampling --adaptive`` starts ``clew serve`` with adaptive sampling on (a short
calculation interval) and plays the SDKs of one service with two operations: every ``--poll``
seconds it fetches ``GET /api/sampling?service=`` from the query port, offers each operation's load
for that tick, samples every trace with the probability served for its operation by the
OpenTelemetry consistent rule (the trace's randomness R, its trace ID's last 7 bytes, drawn
uniformly; kept when R >= threshold(p); the kept span carries ``tracestate: ot=th:…``) and sends
the kept traces' root spans over OTLP/HTTP protobuf. One operation's load steps up ``--step`` times
after ``--warm-intervals`` intervals and back down ``--step-intervals`` later; the other stays
steady. It reports, per interval, the target, the sampled traces/s sent and the probability
served, the time each step took to come within 10 % of the target, and plots it
(``--plot``, default ``docs/adaptive-sampling.png``). ``--in-process`` runs the same SDKs against
``collector.sampling.adaptive.Adaptive`` in this process (recalculated on its own timer, at a
random phase), to check the benchmark without a server.

``python -m perf sampling --ingest-ab`` runs the load generator (``perf load``'s engine, flat out
by default) against a server with sampling off and one with head + tail sampling on (``--on-set``),
alternating for ``--rounds`` rounds on the same request pool, and prints acknowledged spans/s, the
server's CPU per span and the ratio on/off.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np

from collector.codec import otlp_writer as w
from collector.sampling import consistent

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "perf" / "results"
DEFAULT_PLOT = ROOT / "docs" / "adaptive-sampling.png"
SERVICE = "bench-shop"
STEPPED, STEADY = "GET /checkout", "GET /health"
BAND = 0.10  # "within 10 % of the target"
DEFAULT_ON = ("sampling.default_rate=0.1", "sampling.tail=true", "sampling.decision_wait_s=2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adaptive", action="store_true", help="adaptive sampling against a step change of load")
    p.add_argument("--ingest-ab", action="store_true", help="ingest throughput, sampling off vs head + tail on")
    g = p.add_argument_group("adaptive")
    g.add_argument("--interval", type=float, default=2.0, help="sampling.adaptive_interval_s (s)")
    g.add_argument("--target", type=float, default=2000.0, help="sampling.target_traces_per_s, per operation")
    g.add_argument("--tolerance", type=float, default=0.05, help="sampling.tolerance")
    g.add_argument("--max-increase", type=float, default=5.0,
                   help="sampling.max_increase (a ÷N step needs N to be followed in one calculation)")
    g.add_argument("--load", type=float, default=40_000.0, help=f"{STEPPED!r} traces/s before the SDK samples")
    g.add_argument("--steady-load", type=float, default=10_000.0, help=f"{STEADY!r} traces/s (never stepped)")
    g.add_argument("--step", type=float, default=5.0, help="the load step factor (up, then back down)")
    g.add_argument("--warm-intervals", type=int, default=8, help="intervals before the step up")
    g.add_argument("--step-intervals", type=int, default=6, help="intervals at the high load, and after")
    g.add_argument("--poll", type=float, default=0.05,
                   help="seconds between the SDKs' strategy fetches (one tick of traffic each)")
    g.add_argument("--in-process", action="store_true",
                   help="no server: the SDKs talk to an Adaptive in this process")
    g.add_argument("--stated", action="store_true",
                   help="with --in-process: pass observe() the thresholds the root spans state "
                        "(tracestate ot=th:) as well as the counts")
    g.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="PNG to write ('' for none)")
    g.add_argument("--offset", type=float,
                   help="seconds to wait once the server is ready before the SDKs start: moves the "
                        "steps to another phase of the server's interval (default: drawn from the seed, "
                        "0..interval)")
    g.add_argument("--seed", type=int, default=1)
    g = p.add_argument_group("ingest A/B")
    g.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    g.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each")
    g.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating")
    g.add_argument("--concurrency", type=int, default=4, help="load generator connections")
    g.add_argument("--rate", type=float, default=0.0, help="spans/s open loop (0: flat out)")
    g.add_argument("--on-set", action="append", metavar="K=V",
                   help=f"settings of the 'on' server (repeatable; default {' '.join(DEFAULT_ON)})")
    g.add_argument("--off-set", action="append", default=[], metavar="K=V",
                   help="settings of the 'off' server only (repeatable), e.g. analytics.enabled=false to "
                        "compare ingest with RED metrics off (off) and on (on: --on-set analytics.enabled=true)")
    g.add_argument("--load-arg", action="append", default=[], metavar="ARG",
                   help="extra `perf load` flag for both runs, e.g. --load-arg=--spans-per-request=50")
    g = p.add_argument_group("both")
    g.add_argument("--server-set", action="append", default=[], metavar="K=V",
                   help="extra `--set K=V` for every server started")
    g.add_argument("--spawn-timeout", type=float, default=60.0)
    g.add_argument("--out", type=Path, help="JSON report (default perf/results/sampling-<ts>.json)")


# ---- adaptive: the simulated SDKs -----------------------------------------------------------------

def served_probabilities(doc: dict | None, operations, fallback: float) -> dict[str, float]:
    """What a Jaeger per-operation sampler does with a strategy response: the operation's own
    probability, else ``defaultSamplingProbability``, else the top-level probabilistic rate."""
    if not doc:
        return {op: fallback for op in operations}
    top = (doc.get("probabilisticSampling") or {}).get("samplingRate", fallback)
    ops = doc.get("operationSampling")
    if not ops:
        return {op: top for op in operations}
    listed = {s.get("operation"): (s.get("probabilisticSampling") or {}).get("samplingRate", 0.0)
              for s in ops.get("perOperationStrategies") or []}
    default = ops.get("defaultSamplingProbability", top)
    return {op: listed.get(op, default) for op in operations}


def root_spans_request(service: str, kept: dict[str, tuple[np.ndarray, int]], rng, now_ns: int) -> bytes:
    """ExportTraceServiceRequest with one root SERVER span per kept trace; ``kept`` maps an operation
    to (the kept traces' randomness, the threshold they were kept at)."""
    spans = []
    for op, (r, th) in kept.items():
        k = len(r)
        if not k:
            continue
        ids = np.empty((k, 16), np.uint8)
        ids[:, :9] = rng.integers(0, 256, size=(k, 9), dtype=np.uint8)
        ids[:, 9:] = r.astype(">u8").view(np.uint8).reshape(k, 8)[:, 1:]  # R = the ID's last 7 bytes
        span_ids = rng.integers(1, 2**63, size=k, dtype=np.int64).astype(">u8").view(np.uint8).reshape(k, 8)
        state = f"ot=th:{consistent.encode_th(th)}"
        route = w.key_value("http.route", w.any_string(op.split(" ", 1)[-1]))
        for i in range(k):
            spans.append(w.span(ids[i].tobytes(), span_ids[i].tobytes(), op, 2, now_ns - 5_000_000, now_ns,
                                trace_state=state, kvs=(route,)))
    resource = (w.key_value("service.name", w.any_string(service)),)
    return w.export_request([w.resource_spans(resource, [w.scope_spans(spans, "clew-perf-sdk")])])


class ServerBackend:
    """The SDKs' view of a real server: strategies from the query port, spans to OTLP/HTTP."""

    def __init__(self, a: argparse.Namespace):
        from perf.loadgen import SpawnedServer

        settings = ["sampling.adaptive=true", f"sampling.adaptive_interval_s={a.interval:g}",
                    f"sampling.target_traces_per_s={a.target:g}", f"sampling.tolerance={a.tolerance:g}",
                    f"sampling.max_increase={a.max_increase:g}", *a.server_set]
        self.settings = settings
        self.server = SpawnedServer(settings, a.spawn_timeout, False)
        self.query = http.client.HTTPConnection("127.0.0.1", int(self.server.ports["query"]), timeout=10)
        self.otlp = http.client.HTTPConnection("127.0.0.1", int(self.server.ports["otlp_http"]), timeout=30)
        self.send_errors = 0
        self.fetch_errors = 0
        print(f"spawned clew serve pid {self.server.pid}: {' '.join(settings)}", file=sys.stderr, flush=True)

    def fetch(self, service: str) -> dict | None:
        try:
            self.query.request("GET", f"/api/sampling?service={quote(service)}")
            r = self.query.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.query.close()
            self.fetch_errors += 1
            return None
        if r.status != 200:
            self.fetch_errors += 1
            return None
        return json.loads(body)

    def send(self, body: bytes, counts: dict, adjusted: dict) -> None:
        try:
            self.otlp.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            r = self.otlp.getresponse()
            r.read()
            if r.status != 200:
                self.send_errors += 1
        except (OSError, http.client.HTTPException):
            self.otlp.close()
            self.send_errors += 1

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        self.query.close()
        self.otlp.close()
        rc = self.server.stop()
        print(f"clew serve stopped (exit {rc})", file=sys.stderr, flush=True)


class InProcessBackend:
    """The same SDKs against ``Adaptive`` in this process: observe() per request, recalculate() on
    a timer of its own, started at a random phase of the interval (as a server's would be)."""

    def __init__(self, a: argparse.Namespace, rng):
        from collector.sampling.adaptive import Adaptive

        self.adaptive = Adaptive(target_traces_per_s=a.target, min_probability=1e-5, max_probability=1.0,
                                 tolerance=a.tolerance, max_increase=a.max_increase, interval_s=a.interval)
        self.interval = a.interval
        self.next = time.monotonic() + float(rng.uniform(0, a.interval))
        self.stated = a.stated
        self.settings = ["in-process Adaptive" + (", stated thresholds" if a.stated else ", counts only")]
        self.send_errors = self.fetch_errors = 0

    def fetch(self, service: str) -> dict | None:
        return self.adaptive.strategy(service)

    def send(self, body: bytes, counts: dict, adjusted: dict) -> None:
        self.adaptive.observe(counts, adjusted if self.stated else None)

    def tick(self, now: float) -> None:
        while now >= self.next:
            self.adaptive.recalculate()
            self.next += self.interval

    def close(self) -> None:
        pass


def run_adaptive(a: argparse.Namespace) -> dict:
    rng = np.random.default_rng(a.seed)
    backend = InProcessBackend(a, rng) if a.in_process else ServerBackend(a)
    I = a.interval
    t_up = a.warm_intervals * I
    t_down = t_up + a.step_intervals * I
    t_end = t_down + a.step_intervals * I

    def loads(t: float) -> dict[str, float]:
        stepped = a.load * (a.step if t_up <= t < t_down else 1.0)
        return {STEPPED: stepped, STEADY: a.steady_load}

    ops = (STEPPED, STEADY)
    offset = a.offset if a.offset is not None else float(rng.uniform(0, I))
    time.sleep(offset)
    initial = 0.001  # Jaeger's initial probability: what an SDK starts at before any strategy
    carry = dict.fromkeys(ops, 0.0)
    ticks = []
    try:
        t0 = time.monotonic()
        last = t0
        i = 0
        while True:
            i += 1
            due = t0 + i * a.poll
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            t = now - t0
            if t >= t_end:
                break
            backend.tick(now)
            probs = served_probabilities(backend.fetch(SERVICE), ops, initial)
            dt = now - last
            last = now
            # traffic of the tick just ended, at the load of its start, sampled now with what is served
            offered = loads(t - dt)
            kept, counts, adjusted, row = {}, {}, {}, {"t": round(t, 4), "dt": round(dt, 4)}
            for op in ops:
                x = offered[op] * dt + carry[op]  # deterministic arrivals; the noise is the sampling's
                n = int(x)
                carry[op] = x - n
                th = consistent.threshold(probs[op])
                r = rng.integers(0, consistent.MAX, size=n, dtype=np.uint64)
                r = r[r >= np.uint64(th)]
                kept[op] = (r, th)
                counts[(SERVICE, op)] = len(r)
                adjusted[(SERVICE, op)] = (len(r), len(r) * consistent.adjusted_count(th))
                row[op] = {"load": offered[op], "p": probs[op], "offered": n, "sent": len(r)}
            if any(counts.values()):
                body = b"" if a.in_process else root_spans_request(SERVICE, kept, rng, time.time_ns())
                backend.send(body, counts, adjusted)
            ticks.append(row)
            if len(ticks) % max(1, int(round(I / a.poll))) == 0:
                st, ch = row[STEADY], row[STEPPED]
                print(f"t={t:6.1f}s  {STEPPED}: load {ch['load']:>8,.0f}/s p={ch['p']:.5f}   "
                      f"{STEADY}: load {st['load']:>6,.0f}/s p={st['p']:.5f}", file=sys.stderr, flush=True)
    finally:
        backend.close()
    report = analyse(a, ticks, t_up, t_down, t_end)
    report["offset_s"] = round(offset, 3)
    report["backend"] = {"settings": backend.settings, "send_errors": backend.send_errors,
                         "fetch_errors": backend.fetch_errors, "in_process": bool(a.in_process)}
    report["ticks"] = ticks
    return report


def analyse(a, ticks: list[dict], t_up: float, t_down: float, t_end: float) -> dict:
    I, target = a.interval, a.target
    t = np.array([r["t"] for r in ticks])
    out = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "func"},
           "target_traces_per_s": target, "interval_s": I, "band": BAND,
           "steps": {"up_at_s": t_up, "down_at_s": t_down, "end_s": t_end}}
    per_op = {}
    for op in (STEPPED, STEADY):
        load = np.array([r[op]["load"] for r in ticks])
        p = np.array([r[op]["p"] for r in ticks])
        sent = np.array([r[op]["sent"] for r in ticks], dtype=float)
        expected = load * p  # the sampled traces/s the served probability gives on the offered load
        rows = []
        for k in range(int(round(t_end / I))):
            sel = (t > k * I) & (t <= (k + 1) * I)
            if not sel.any():
                continue
            rows.append({"interval": k + 1, "end_s": round((k + 1) * I, 3), "load": float(load[sel].max()),
                         "target": target, "sent_per_s": round(float(sent[sel].sum()) / I, 2),
                         "expected_per_s": round(float(expected[sel].mean()), 2),
                         "p_min": float(p[sel].min()), "p_max": float(p[sel].max())})
        phases = {}
        for name, start, end in (("start", 0.0, t_up), ("up", t_up, t_down), ("down", t_down, t_end)):
            phases[name] = ph = _settling(t, expected, sent, target, start, end, I, a.poll)
            # when the SDKs first saw a new probability after the step (≈ the server's next calculation
            # plus the poll lag): where the step fell in the server's interval
            sel = np.nonzero((t > start) & (t <= end))[0]
            changed = [j for j in sel if j and p[j] != p[j - 1]]
            ph["first_change_after_s"] = round(float(t[changed[0]] - start), 3) if changed else None
        per_op[op] = {"intervals": rows, "phases": phases}
    out["operations"] = per_op
    return out


def _settling(t, expected, sent, target, start, end, I, poll) -> dict:
    """When, after ``start``, the sampled rate came within the band for good (until ``end``):
    by the expected rate (offered load x served probability, tick by tick, no sampling noise), and
    by the traces actually sent, counted over whole intervals from ``start``."""
    sel = (t > start) & (t <= end)
    ts, ex = t[sel], expected[sel]
    inside = np.abs(ex - target) <= BAND * target
    settle_s = None
    if inside.any() and inside[-1]:
        bad = np.nonzero(~inside)[0]
        first_good = 0 if not len(bad) else bad[-1] + 1
        settle_s = float(ts[first_good] - start) if first_good < len(ts) else None
    windows = []
    k = 0
    while start + (k + 1) * I <= end + 1e-9:
        wsel = (t > start + k * I) & (t <= start + (k + 1) * I)
        windows.append(float(sent[wsel].sum()) / I)
        k += 1
    ok = [abs(r - target) <= BAND * target for r in windows]
    settle_windows = None
    if ok and ok[-1]:
        settle_windows = len(ok) - next(i for i, v in enumerate(reversed(ok)) if not v) if not all(ok) else 0
    dev_after = None
    if settle_s is not None:
        after = ex[ts - start >= settle_s]
        dev_after = round(float(np.max(np.abs(after - target)) / target), 4) if len(after) else None
    return {"settle_s": None if settle_s is None else round(settle_s, 3),
            "settle_intervals": None if settle_s is None else round(settle_s / I, 2),
            "windows_sent_per_s": [round(r, 1) for r in windows],
            "windows_outside_band_before_settling": settle_windows,
            "max_expected_deviation_after": dev_after}


def format_adaptive(r: dict) -> str:
    I, target = r["interval_s"], r["target_traces_per_s"]
    lines = [f"adaptive sampling: target {target:g} sampled traces/s per operation, interval {I:g} s, "
             f"tolerance {r['config']['tolerance']:g}, max_increase {r['config']['max_increase']:g}, "
             f"SDK poll {r['config']['poll']:g} s ({'in process' if r['backend']['in_process'] else 'real server'})",
             f"load of {STEPPED!r} x{r['config']['step']:g} at {r['steps']['up_at_s']:g} s, back at "
             f"{r['steps']['down_at_s']:g} s; {STEADY!r} steady; SDKs started {r['offset_s']:g} s after the "
             f"server was ready",
             ""]
    for op, d in r["operations"].items():
        lines.append(f"{op}:")
        lines.append(f"  {'int':>3} {'end s':>6} {'load/s':>9} {'p served':>19} {'sent/s':>8} "
                     f"{'expected/s':>10} {'vs target':>9}")
        for row in d["intervals"]:
            pr = (f"{row['p_min']:.5f}" if row["p_min"] == row["p_max"]
                  else f"{row['p_min']:.5f}-{row['p_max']:.5f}")
            lines.append(f"  {row['interval']:>3} {row['end_s']:>6g} {row['load']:>9,.0f} {pr:>19} "
                         f"{row['sent_per_s']:>8.1f} {row['expected_per_s']:>10.1f} "
                         f"{(row['sent_per_s'] / target - 1) * 100:>+8.1f}%")
        for name, ph in d["phases"].items():
            s = ph["settle_s"]
            lines.append(f"  {name:>5}: within 10% for good after "
                         + ("never" if s is None else f"{s:.2f} s = {ph['settle_intervals']:.2f} intervals")
                         + f" (expected rate); sent-rate intervals outside the band first: "
                         f"{ph['windows_outside_band_before_settling']}; max deviation after: "
                         f"{ph['max_expected_deviation_after']}; first new probability after "
                         f"{ph['first_change_after_s']} s")
        lines.append("")
    b = r["backend"]
    if b["send_errors"] or b["fetch_errors"]:
        lines.append(f"errors: {b['send_errors']} sends, {b['fetch_errors']} strategy fetches")
    return "\n".join(lines)


def plot_adaptive(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = r["ticks"]
    I, target = r["interval_s"], r["target_traces_per_s"]
    t = np.array([x["t"] for x in ticks])
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    for ax, op in zip(axes, (STEPPED, STEADY)):
        load = np.array([x[op]["load"] for x in ticks])
        p = np.array([x[op]["p"] for x in ticks])
        sent = np.array([x[op]["sent"] for x in ticks], dtype=float)
        ax.axhspan(target * (1 - BAND), target * (1 + BAND), color="tab:green", alpha=0.12, lw=0,
                   label="target ±10%")
        ax.axhline(target, color="tab:green", ls="--", lw=1.2, label="target")
        # actual: sampled traces/s sent, over bins of a quarter interval
        nb = int(np.ceil(t[-1] / (I / 4)))
        edges = np.arange(nb + 1) * (I / 4)
        idx = np.clip(np.searchsorted(edges, t, side="left") - 1, 0, nb - 1)
        binned = np.bincount(idx, weights=sent, minlength=nb) / (I / 4)
        ax.step(edges[1:], binned, where="pre", color="tab:blue", lw=1.0, label="actual (sent, per ¼ interval)")
        ax.plot(t, load * p, color="tab:blue", lw=2.0, alpha=0.5, label="expected: load × p served")
        for x in (r["steps"]["up_at_s"], r["steps"]["down_at_s"]):
            ax.axvline(x, color="grey", ls=":", lw=1)
        ax.set_ylabel("sampled traces/s")
        # a step up shows x step at the old probability; a flood before the first strategy is clipped
        ax.set_ylim(0, target * max(float(r["config"]["step"]), 1.5) * 1.15)
        ax.set_title(f"{op}: offered load " + (f"{r['config']['load']:,.0f}/s, x{r['config']['step']:g} step"
                                               if op == STEPPED else f"{r['config']['steady_load']:,.0f}/s steady"),
                     fontsize=10)
        ax2 = ax.twinx()
        ax2.step(t, p, where="post", color="tab:red", lw=1.2, label="probability served")
        ax2.set_yscale("log")
        ax2.set_ylabel("probability", color="tab:red")
        ax2.tick_params(axis="y", colors="tab:red")
        ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=5, fontsize=8, frameon=False)
    axes[-1].set_xlabel("seconds")
    c = r["config"]
    where = r["backend"]["settings"][0] if r["backend"]["in_process"] else "clew serve"
    fig.suptitle(f"Adaptive sampling ({where}): target {target:g} traces/s per operation, interval {I:g} s, "
                 f"tolerance {c['tolerance']:g}, max increase x{c['max_increase']:g}", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- ingest A/B -----------------------------------------------------------------------------------

def run_ingest_ab(a: argparse.Namespace) -> dict:
    from perf import loadgen
    from perf.traces import RequestPool

    lp = argparse.ArgumentParser()
    loadgen.add_arguments(lp)
    la = lp.parse_args(["--spawn", "--duration", str(a.duration), "--warmup", str(a.warmup),
                        "--concurrency", str(a.concurrency), "--rate", str(a.rate), "--quiet",
                        "--retry", *a.load_arg])
    shape = loadgen.shape_from_args(la)
    size = max(4, min(la.pool, 100_000 // shape.spans_per_request))
    pool = RequestPool(shape, size, la.seed)
    on = list(a.on_set or DEFAULT_ON)
    configs = {"off": list(a.off_set) + list(a.server_set), "on": on + list(a.server_set)}
    runs = []
    for rnd in range(a.rounds):
        for name in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
            server = loadgen.SpawnedServer(configs[name], a.spawn_timeout, False)
            try:
                port = int(server.ports["otlp_http"])
                monitor = loadgen.ServerMonitor(server.pid, False)
                lr = loadgen.LoadRun(la, pool, "127.0.0.1", port, monitor, f"127.0.0.1:{server.ports['query']}")
                lr.started_at = datetime.now().isoformat(timespec="seconds")
                loop = loadgen._new_loop(la.loop)
                try:
                    rep = loop.run_until_complete(lr.run())
                finally:
                    loop.close()
            finally:
                server.stop()
            tp, srv, lat = rep["throughput"], rep.get("server") or {}, rep["latency_ms"]
            acked = tp["acked_spans_per_s"]
            cpu = srv.get("cpu_seconds")
            row = {"round": rnd + 1, "config": name, "settings": configs[name], "acked_spans_per_s": acked,
                   "server_cpu_percent": srv.get("cpu_percent"),
                   "server_cpu_us_per_span": (round(cpu / (acked * rep["window_s"]) * 1e6, 2)
                                              if cpu and acked else None),
                   "p99_ms": lat.get("p99"), "busy": rep["requests"]["busy"], "errors": rep["requests"]["errors"],
                   "rss_peak_mb": round((srv.get("rss_peak_bytes") or 0) / 2**20, 1)}
            runs.append(row)
            print(f"round {rnd + 1} {name:>3}: {acked:>10,.0f} spans/s  server CPU "
                  f"{row['server_cpu_percent']}%  p99 {row['p99_ms']} ms  busy {row['busy']}",
                  file=sys.stderr, flush=True)
    med = {name: statistics.median(r["acked_spans_per_s"] for r in runs if r["config"] == name)
           for name in ("off", "on")}
    return {"load": {k: v for k, v in vars(la).items() if k not in ("out",)}, "settings": configs, "runs": runs,
            "median_acked_spans_per_s": med, "ratio_on_off": round(med["on"] / med["off"], 4) if med["off"] else None}


def format_ab(r: dict) -> str:
    lines = ["ingest throughput, 'off' vs 'on' settings (same request pool, "
             f"{r['load']['concurrency']} connections, {'flat out' if not r['load']['rate'] else r['load']['rate']}):",
             f"  off = {' '.join(r['settings']['off']) or '(defaults)'}",
             f"  on = {' '.join(r['settings']['on'])}",
             f"  {'round':>5} {'config':>6} {'spans/s':>12} {'CPU %':>7} {'CPU µs/span':>11} {'p99 ms':>8} "
             f"{'busy':>5} {'RSS MB':>7}"]
    for x in r["runs"]:
        lines.append(f"  {x['round']:>5} {x['config']:>6} {x['acked_spans_per_s']:>12,.0f} "
                     f"{x['server_cpu_percent'] if x['server_cpu_percent'] is not None else '-':>7} "
                     f"{x['server_cpu_us_per_span'] if x['server_cpu_us_per_span'] is not None else '-':>11} "
                     f"{x['p99_ms'] if x['p99_ms'] is not None else '-':>8} {x['busy']:>5} {x['rss_peak_mb']:>7}")
    m = r["median_acked_spans_per_s"]
    lines.append(f"  median: off {m['off']:,.0f} spans/s, on {m['on']:,.0f} spans/s; "
                 f"ratio on/off = {r['ratio_on_off']}")
    return "\n".join(lines)


def run(a: argparse.Namespace) -> int:
    if not (a.adaptive or a.ingest_ab):
        raise SystemExit("give --adaptive and/or --ingest-ab")
    if a.adaptive and (a.interval <= 0 or a.poll <= 0 or a.poll >= a.interval or a.target <= 0):
        raise SystemExit("need --interval > --poll > 0 and --target > 0")
    report: dict = {"kind": "clew-perf sampling", "started_at": datetime.now().isoformat(timespec="seconds")}
    status = 0
    if a.adaptive:
        r = run_adaptive(a)
        report["adaptive"] = r
        print(format_adaptive(r))
        if a.plot and str(a.plot):
            plot_adaptive(r, a.plot)
            print(f"plot: {a.plot}")
        if any(ph["settle_s"] is None for ph in r["operations"][STEPPED]["phases"].values()):
            status = 1
    if a.ingest_ab:
        r = run_ingest_ab(a)
        report["ingest_ab"] = r
        print(format_ab(r))
    out = a.out or RESULTS_DIR / f"sampling-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"report: {out}")
    return status
