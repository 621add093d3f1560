"""Alerting on the RED metrics: rules, their evaluation and Alertmanager-shaped webhooks (docs/alerting.md).

A rule watches the ``("span", service, operation, kind)`` series of one service (optionally one
operation and/or span kind) in the ``SeriesStore`` over a sliding window:

* ``error_rate``: errors / calls > ``threshold`` (a ratio 0..1);
* ``latency``: quantile ``quantile`` of the duration > ``threshold`` milliseconds;
* ``latency_spike``: quantile ``quantile`` > ``factor`` × the same quantile over a baseline
  (``baseline``: ``previous`` — the ``baselineWindow`` just before the window — or an offset such
  as ``1d`` or ``7d``: the same window that long ago);
* ``throughput_drop``: calls per second < ``threshold``, or < ``fraction`` × the baseline's rate;
* ``missing``: no span of the service started within the window.

``Alerting`` keeps the rules (``DATA_DIR/alerts/rules.json``, written atomically), evaluates them
every ``alerting.evaluation_interval_s`` in a thread of its own — inactive → pending (condition
true) → firing (true for ``for``) → resolved (false again) → inactive — and records transitions and
notification attempts in a bounded history (``DATA_DIR/alerts/history.jsonl``).  ``Notifier``
delivers one notification per transition (a firing alert is repeated every
``alerting.repeat_interval_s``) to each webhook from a bounded queue served by worker threads, with
a timeout per attempt and retries with exponential back-off, so delivery never holds up evaluation.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from collector.analytics.histogram import NBUCKETS, quantiles
from collector.model import KIND_NAMES
from collector.store.criteria import DURATION, KIND, NAME, SERVICE, STATUS, Cond, TraceQuery, all_of

log = logging.getLogger("clew.alerting")

NS = 1_000_000_000
RULE_TYPES = ("error_rate", "latency", "latency_spike", "throughput_drop", "missing")
INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_LABELS = ("alertname", "rule_id", "service", "operation", "kind", "type")
FIELDS = ("id", "name", "type", "service", "operation", "kind", "threshold", "quantile", "factor",
          "fraction", "baseline", "baselineWindow", "window", "for", "minCalls", "labels",
          "annotations", "webhooks", "enabled")
DEFAULT_WINDOW = "5m"
DEFAULT_QUANTILE = 0.95
DEFAULT_BASELINE = "previous"
DEFAULT_BASELINE_WINDOW = "1h"
MAX_WINDOW_S = 86400  # an evaluation (or baseline) window is at most a day
MAX_FOR_S = 7 * 86400
MAX_OFFSET_S = 90 * 86400  # a baseline offset reaches back at most 90 days
MAX_TEXT = 1024  # characters of a name, service, operation, label or annotation value
MAX_LABELS = 64  # labels (and annotations) per rule
MAX_WEBHOOKS = 16
MAX_URL = 2048
EXAMPLES = 5  # example trace IDs per firing alert
RECEIVER = "clew"  # the receiver named in every message
ZERO_TIME = "0001-01-01T00:00:00Z"  # endsAt of a firing alert, as Alertmanager writes it


class RuleError(ValueError):
    """A rule that cannot be used; the message starts with the field at fault."""


# --------------------------------------------------------------------------- rules

_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")
_DUR_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(name: str, raw) -> float:
    """A duration: text such as ``30s``, ``5m``, ``1h30m``, ``1d``, ``7d``, ``250ms`` or ``0``, or a
    number of seconds.  Raises ``RuleError`` naming the field."""
    if isinstance(raw, bool) or raw is None:
        raise RuleError(f"{name}: expected a duration such as 30s, 5m, 1h or 1d")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw) or raw < 0:
            raise RuleError(f"{name}: must be a non-negative number of seconds, got {raw}")
        return float(raw)
    if not isinstance(raw, str):
        raise RuleError(f"{name}: expected a duration such as 30s, 5m, 1h or 1d")
    s = raw.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if not m:
            raise RuleError(f"{name}: {raw[:40]!r} is not a duration such as 30s, 5m, 1h30m, 1d or 250ms")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise RuleError(f"{name}: empty duration")
    return total


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(name: str, raw, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise RuleError(f"{name}: expected a number, got {_show(raw)}")
    if low is not None and (raw <= low if low_open else raw < low):
        raise RuleError(f"{name}: must be {'>' if low_open else '>='} {low:g}, got {raw}")
    if high is not None and (raw >= high if high_open else raw > high):
        raise RuleError(f"{name}: must be {'<' if high_open else '<='} {high:g}, got {raw}")
    return float(raw)


def _text(name: str, raw, *, required: bool) -> str | None:
    if raw is None or (raw == "" and not required):
        if required:
            raise RuleError(f"{name}: required, a non-empty string")
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise RuleError(f"{name}: expected a non-empty string, got {_show(raw)}")
    if len(raw) > MAX_TEXT:
        raise RuleError(f"{name}: longer than {MAX_TEXT} characters")
    return raw


def _string_map(name: str, raw, *, labels: bool) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RuleError(f"{name}: expected an object of strings, got {_show(raw)}")
    if len(raw) > MAX_LABELS:
        raise RuleError(f"{name}: at most {MAX_LABELS} entries, got {len(raw)}")
    out = {}
    for k, v in raw.items():
        if not LABEL_NAME.fullmatch(k) or len(k) > 128:
            raise RuleError(f"{name}.{k[:40]}: a name is letters, digits and '_', not starting with a digit")
        if labels and k in RESERVED_LABELS:
            raise RuleError(f"{name}.{k}: set by the rule itself ({', '.join(RESERVED_LABELS)} are reserved)")
        if not isinstance(v, str):
            raise RuleError(f"{name}.{k}: expected a string, got {_show(v)}")
        if len(v) > MAX_TEXT:
            raise RuleError(f"{name}.{k}: longer than {MAX_TEXT} characters")
        out[k] = v
    return out


def check_webhook(name: str, url) -> str:
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise RuleError(f"{name}: expected an http or https URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise RuleError(f"{name}: {_show(url)} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RuleError(f"{name}: {_show(url)} is not an http or https URL")
    return url


def _duration_text(raw) -> str:
    if isinstance(raw, str):
        return raw.strip()
    return f"{raw:g}s"


def parse_rule(body, *, bucket_s: int, rule_id: str | None = None) -> dict:
    """A rule from its JSON body, checked and completed with defaults, in ``FIELDS`` order.
    ``rule_id``: the ID the rule must have (from the path); absent ones are made up.
    Raises ``RuleError`` naming the first field at fault."""
    if not isinstance(body, dict):
        raise RuleError(f"body: expected a JSON object with {', '.join(FIELDS)}")
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise RuleError(f"{str(unknown[0])[:40]}: unknown field; a rule takes {', '.join(FIELDS)}")
    rid = body.get("id")
    if rid is not None and (not isinstance(rid, str) or not RULE_ID.fullmatch(rid)):
        raise RuleError(f"id: {_show(rid)} must be 1 to 128 letters, digits, '.', '_', ':' or '-', "
                        "starting with a letter or digit")
    if rule_id is not None:
        if rid is not None and rid != rule_id:
            raise RuleError(f"id: {_show(rid)} differs from the rule's ID in the path ({rule_id!r})")
        rid = rule_id
    if rid is None:
        rid = f"rule-{secrets.token_hex(6)}"
    name = _text("name", body.get("name"), required=True)
    typ = body.get("type")
    if typ not in RULE_TYPES:
        raise RuleError(f"type: one of {', '.join(RULE_TYPES)}, got {_show(typ)}")
    service = _text("service", body.get("service"), required=True)
    operation = _text("operation", body.get("operation"), required=False)
    kind = body.get("kind")
    if kind is not None and kind not in KIND_NAMES:
        raise RuleError(f"kind: one of {', '.join(KIND_NAMES)}, got {_show(kind)}")

    def only(field_name: str, *types: str):
        if body.get(field_name) is not None and typ not in types:
            raise RuleError(f"{field_name}: only for {' and '.join(types)} rules, not {typ}")
        return body.get(field_name)

    threshold = only("threshold", "error_rate", "latency", "throughput_drop")
    quantile = only("quantile", "latency", "latency_spike")
    factor = only("factor", "latency_spike")
    fraction = only("fraction", "throughput_drop")
    baseline = only("baseline", "latency_spike", "throughput_drop")
    baseline_window = only("baselineWindow", "latency_spike", "throughput_drop")
    min_calls = only("minCalls", "error_rate", "latency", "latency_spike", "throughput_drop")

    window = body.get("window", DEFAULT_WINDOW)
    if window is None:
        window = DEFAULT_WINDOW
    window_s = duration_s("window", window)
    if window_s < bucket_s:
        raise RuleError(f"window: must be at least analytics.bucket_s ({bucket_s}s), the metrics' "
                        f"resolution; got {_duration_text(window)}")
    if window_s > MAX_WINDOW_S:
        raise RuleError(f"window: at most {MAX_WINDOW_S // 3600}h, got {_duration_text(window)}")
    for_raw = body.get("for", "0")
    if for_raw is None:
        for_raw = "0"
    if duration_s("for", for_raw) > MAX_FOR_S:
        raise RuleError(f"for: at most {MAX_FOR_S // 86400}d, got {_duration_text(for_raw)}")

    if typ == "error_rate":
        if threshold is None:
            raise RuleError("threshold: required for error_rate rules (a ratio 0..1, e.g. 0.05)")
        threshold = _number("threshold", threshold, low=0, high=1, high_open=True)
    elif typ == "latency":
        if threshold is None:
            raise RuleError("threshold: required for latency rules (milliseconds, e.g. 500)")
        threshold = _number("threshold", threshold, low=0, low_open=True)
    elif typ == "latency_spike":
        if factor is None:
            raise RuleError("factor: required for latency_spike rules (e.g. 2: twice the baseline)")
        factor = _number("factor", factor, low=1)
    elif typ == "throughput_drop":
        if (threshold is None) == (fraction is None):
            raise RuleError("threshold: throughput_drop rules take either threshold (calls/s) or "
                            "fraction (of the baseline's rate), not both or neither")
        if threshold is not None:
            threshold = _number("threshold", threshold, low=0, low_open=True)
            if baseline is not None or baseline_window is not None:
                raise RuleError(f"{'baseline' if baseline is not None else 'baselineWindow'}: only "
                                "with fraction (a threshold in calls/s needs no baseline)")
        else:
            fraction = _number("fraction", fraction, low=0, high=1, low_open=True, high_open=True)
    if typ in ("latency", "latency_spike"):
        quantile = DEFAULT_QUANTILE if quantile is None else _number("quantile", quantile, low=0, high=1,
                                                                     low_open=True)
    if typ == "latency_spike" or (typ == "throughput_drop" and fraction is not None):
        baseline = DEFAULT_BASELINE if baseline is None else baseline
        if baseline != "previous":
            if not isinstance(baseline, str):
                raise RuleError(f"baseline: 'previous' or an offset such as 1d or 7d, got {_show(baseline)}")
            offset = duration_s("baseline", baseline)
            if not window_s <= offset <= MAX_OFFSET_S:
                raise RuleError(f"baseline: an offset from the window ({_duration_text(window)}) to "
                                f"{MAX_OFFSET_S // 86400}d, got {baseline!r}")
            if baseline_window is not None:
                raise RuleError("baselineWindow: only with baseline 'previous' (an offset baseline is "
                                "the evaluation window shifted back)")
        else:
            baseline_window = DEFAULT_BASELINE_WINDOW if baseline_window is None else baseline_window
            bw = duration_s("baselineWindow", baseline_window)
            if not bucket_s <= bw <= MAX_WINDOW_S:
                raise RuleError(f"baselineWindow: from analytics.bucket_s ({bucket_s}s) to "
                                f"{MAX_WINDOW_S // 3600}h, got {_duration_text(baseline_window)}")
            baseline_window = _duration_text(baseline_window)
    if typ != "missing":
        if min_calls is None:
            min_calls = 1
        elif isinstance(min_calls, bool) or not isinstance(min_calls, int) or min_calls < 1:
            raise RuleError(f"minCalls: expected an integer >= 1, got {_show(min_calls)}")
    labels = _string_map("labels", body.get("labels"), labels=True)
    annotations = _string_map("annotations", body.get("annotations"), labels=False)
    hooks = body.get("webhooks")
    if hooks is None:
        hooks = []
    if not isinstance(hooks, list):
        raise RuleError(f"webhooks: expected a list of http or https URLs, got {_show(hooks)}")
    if len(hooks) > MAX_WEBHOOKS:
        raise RuleError(f"webhooks: at most {MAX_WEBHOOKS}, got {len(hooks)}")
    hooks = [check_webhook(f"webhooks[{i}]", u) for i, u in enumerate(hooks)]
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise RuleError(f"enabled: expected true or false, got {_show(enabled)}")
    return {"id": rid, "name": name, "type": typ, "service": service, "operation": operation, "kind": kind,
            "threshold": threshold, "quantile": quantile, "factor": factor, "fraction": fraction,
            "baseline": baseline, "baselineWindow": baseline_window, "window": _duration_text(window),
            "for": _duration_text(for_raw), "minCalls": min_calls, "labels": labels,
            "annotations": annotations, "webhooks": hooks, "enabled": enabled}


_CONDITION = ("type", "service", "operation", "kind", "threshold", "quantile", "factor", "fraction",
              "baseline", "baselineWindow", "window", "for", "minCalls", "enabled")


def same_condition(a: dict, b: dict) -> bool:
    """Whether two versions of a rule test the same condition (its state then carries over)."""
    return all(a.get(k) == b.get(k) for k in _CONDITION)


# --------------------------------------------------------------------------- helpers


def iso(t: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds (None stays None)."""
    if t is None:
        return None
    whole = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((t - whole) * 1000):03d}Z"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "calls/s":
        return f"{value:.3g} calls/s"
    return f"{value:g} {unit}"


UNITS = {"error_rate": "ratio", "latency": "ms", "latency_spike": "ms", "throughput_drop": "calls/s",
         "missing": "calls"}


@dataclass
class Outcome:
    """One evaluation of a rule's condition."""

    active: bool
    value: float | None  # error ratio, latency ms, calls/s or calls in the window
    threshold: float | None  # the bound the value was compared with (the baseline's, for spikes)
    baseline: float | None = None  # the baseline's quantile (ms) or rate (calls/s), when used
    window_start: float = 0.0  # epoch s: the window actually read (whole buckets)
    calls: int = 0


@dataclass
class RuleState:
    state: str = INACTIVE
    since: float | None = None  # entered the current state
    active_at: float | None = None  # the condition became true (start of pending / firing)
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    calls: int = 0
    last_evaluation: float | None = None
    last_error: str | None = None
    examples: list = field(default_factory=list)
    last_sent: float | None = None  # a firing notification was last queued
    window_start: float = 0.0


# --------------------------------------------------------------------------- notifications


class Notifier:
    """Delivers notifications to webhooks from a bounded queue: ``alerting.delivery_workers`` threads,
    each attempt bounded by ``alerting.webhook_timeout_s``; a failure (no answer, a 5xx, 408 or 429)
    is tried again after ``retry_backoff_s × 2^(attempt − 1)``, at most ``max_retries`` more times.
    ``record(entry)`` receives every attempt's outcome."""

    def __init__(self, config, record):
        self.config = config
        self.record = record
        self._heap: list = []  # (due monotonic, seq, job)
        self._seq = 0
        self._busy = 0
        self._cond = threading.Condition()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._opener = urllib.request.build_opener()
        self.counters = {"delivered": 0, "failed": 0, "dropped": 0, "attempts": 0}

    def start(self) -> None:
        for i in range(self.config.delivery_workers):
            t = threading.Thread(target=self._run, name=f"clew-alert-delivery-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, url: str, payload: dict, meta: dict) -> bool:
        """Queue one delivery (False, recorded as dropped, when ``alerting.max_queue`` are waiting)."""
        body = json.dumps(payload).encode()
        with self._cond:
            if self._stop or len(self._heap) + self._busy >= self.config.max_queue:
                self.counters["dropped"] += 1
                full = not self._stop
            else:
                self._seq += 1
                heapq.heappush(self._heap, (time.monotonic(), self._seq,
                                            {"url": url, "body": body, "attempt": 1, "meta": meta}))
                self._cond.notify()
                return True
        self.record({**meta, "event": "notification", "webhook": url, "attempt": 0, "outcome": "dropped",
                     "error": "alerting.max_queue deliveries are waiting" if full else "shutting down"})
        return False

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _due, _seq, job = heapq.heappop(self._heap)
                        self._busy += 1
                        break
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
            try:
                self._attempt(job)
            except Exception:  # a bug here must not kill the worker
                log.exception("alert delivery to %s failed unexpectedly", job["url"])
            finally:
                with self._cond:
                    self._busy -= 1

    def _attempt(self, job: dict) -> None:
        url, attempt, meta = job["url"], job["attempt"], job["meta"]
        req = urllib.request.Request(url, data=job["body"], method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "clew-alerting"})
        status, error = None, None
        try:
            with self._opener.open(req, timeout=self.config.webhook_timeout_s) as resp:
                status = resp.status
                resp.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            error = str(reason) or type(reason).__name__
        self.counters["attempts"] += 1
        entry = {**meta, "event": "notification", "webhook": url, "attempt": attempt}
        if status is not None:
            entry["httpStatus"] = status
        if error is None and status is not None and 200 <= status < 300:
            self.counters["delivered"] += 1
            self.record({**entry, "outcome": "delivered"})
            return
        retriable = status is None or status >= 500 or status in (408, 429)
        if retriable and attempt <= self.config.max_retries:
            delay = self.config.retry_backoff_s * 2 ** (attempt - 1)
            self.record({**entry, "outcome": "retrying", "error": error, "retryInS": round(delay, 3)})
            with self._cond:
                if not self._stop:
                    self._seq += 1
                    heapq.heappush(self._heap, (time.monotonic() + delay, self._seq,
                                                {**job, "attempt": attempt + 1}))
                    self._cond.notify()
                    return
            self.record({**entry, "outcome": "failed", "error": "shutting down before the retry"})
            self.counters["failed"] += 1
            return
        self.counters["failed"] += 1
        self.record({**entry, "outcome": "failed",
                     "error": error if retriable else f"{error}: not retried (a client error)"})

    def close(self, timeout: float = 2.0) -> None:
        """Stop the workers; deliveries still waiting are recorded as abandoned."""
        with self._cond:
            self._stop = True
            left = [job for _d, _s, job in self._heap]
            self._heap.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        for job in left:
            self.record({**job["meta"], "event": "notification", "webhook": job["url"],
                         "attempt": job["attempt"], "outcome": "abandoned", "error": "the server stopped"})


# --------------------------------------------------------------------------- the evaluator


class Alerting:
    """Rules, their evaluation thread, states, history and the notifier of one server."""

    def __init__(self, config, series, reader, data_dir: Path, *, bucket_s: int | None = None,
                 external_url: str = "", clock=time.time):
        self.config = config.alerting
        self.series = series
        self.reader = reader
        self.bucket_s = int(bucket_s if bucket_s is not None else config.analytics.bucket_s)
        self.clock = clock
        self.external_url = (self.config.external_url or external_url).rstrip("/")
        self.dir = Path(data_dir) / "alerts"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rules_path = self.dir / "rules.json"
        self.history_path = self.dir / "history.jsonl"
        self._lock = threading.RLock()  # rules and states
        self._hlock = threading.Lock()  # history and its file
        self.rules: dict[str, dict] = {}
        self.states: dict[str, RuleState] = {}
        self.history: deque = deque(maxlen=self.config.max_history)
        self._history_lines = 0
        self.evaluations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.notifier = Notifier(self.config, self._record)
        self._load()

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        if self.rules_path.exists():
            try:
                raw = json.loads(self.rules_path.read_bytes())
                if not isinstance(raw, list):
                    raise ValueError("expected a JSON list of rules")
            except (OSError, ValueError) as exc:
                aside = self.rules_path.with_name(f"rules.json.bad-{int(time.time())}")
                log.error("alert rules in %s cannot be read (%s); moved to %s, starting without rules",
                          self.rules_path, exc, aside)
                os.replace(self.rules_path, aside)
                raw = []
            for body in raw:
                try:
                    rule = parse_rule(body, bucket_s=self.bucket_s,
                                      rule_id=body.get("id") if isinstance(body, dict) else None)
                except RuleError as exc:
                    log.error("alert rule %s in %s skipped: %s", _show(body)[:60], self.rules_path, exc)
                    continue
                self.rules[rule["id"]] = rule
                self.states[rule["id"]] = RuleState()
        if self.history_path.exists():
            try:
                with open(self.history_path, "rb") as fh:
                    lines = fh.read().splitlines()
            except OSError as exc:
                log.error("alert history %s cannot be read: %s", self.history_path, exc)
                lines = []
            self._history_lines = len(lines)
            for line in lines[-self.config.max_history:]:
                try:
                    self.history.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash

    def _save_rules(self) -> None:
        data = json.dumps(list(self.rules.values()), indent=1).encode()
        _atomic_write(self.rules_path, data)

    def _record(self, entry: dict) -> None:
        """Add one history entry (newest last in memory and on disk)."""
        entry = {"time": iso(self.clock()), **entry}
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        with self._hlock:
            self.history.append(entry)
            try:
                if self._history_lines >= 2 * self.config.max_history:
                    keep = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n"
                                    for e in self.history)
                    _atomic_write(self.history_path, keep)
                    self._history_lines = len(self.history)
                else:
                    with open(self.history_path, "ab") as fh:
                        fh.write(line)
                    self._history_lines += 1
            except OSError as exc:
                log.warning("alert history not written to %s: %s", self.history_path, exc)

    # -- the API's operations (called from worker threads) ------------------------------------

    def list_rules(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.rules.values()]

    def get_rule(self, rule_id: str) -> dict | None:
        with self._lock:
            rule = self.rules.get(rule_id)
            return None if rule is None else dict(rule)

    def create_rule(self, body) -> dict:
        """Add a rule; raises ``RuleError`` (bad body) or ``KeyError`` (the ID exists)."""
        rule = parse_rule(body, bucket_s=self.bucket_s)
        with self._lock:
            if rule["id"] in self.rules:
                raise KeyError(rule["id"])
            if len(self.rules) >= self.config.max_rules:
                raise RuleError(f"id: alerting.max_rules ({self.config.max_rules}) rules exist already")
            self.rules[rule["id"]] = rule
            self.states[rule["id"]] = RuleState()
            try:
                self._save_rules()
            except OSError:
                del self.rules[rule["id"]]
                del self.states[rule["id"]]
                raise
        self._record({"event": "rule", "ruleId": rule["id"], "name": rule["name"], "action": "create"})
        return dict(rule)

    def replace_rule(self, rule_id: str, body) -> dict | None:
        """Replace rule ``rule_id`` (None when there is none).  Its state carries over when the
        condition is unchanged; otherwise it starts inactive (a firing alert is resolved)."""
        rule = parse_rule(body, bucket_s=self.bucket_s, rule_id=rule_id)
        with self._lock:
            old = self.rules.get(rule_id)
            if old is None:
                return None
            self.rules[rule_id] = rule
            try:
                self._save_rules()
            except OSError:
                self.rules[rule_id] = old
                raise
            if not same_condition(old, rule):
                self._end(old, self.states.get(rule_id), "the rule was changed", rule)
                self.states[rule_id] = RuleState()
        self._record({"event": "rule", "ruleId": rule_id, "name": rule["name"], "action": "update"})
        return dict(rule)

    def delete_rule(self, rule_id: str) -> dict | None:
        with self._lock:
            rule = self.rules.pop(rule_id, None)
            if rule is None:
                return None
            try:
                self._save_rules()
            except OSError:
                self.rules[rule_id] = rule
                raise
            self._end(rule, self.states.pop(rule_id, None), "the rule was deleted")
        self._record({"event": "rule", "ruleId": rule_id, "name": rule["name"], "action": "delete"})
        return dict(rule)

    def alerts(self) -> list[dict]:
        """The state of every rule, in rule order."""
        with self._lock:
            return [self._alert_json(r, self.states.get(r["id"]) or RuleState()) for r in self.rules.values()]

    def history_entries(self, limit: int, rule_id: str | None = None) -> list[dict]:
        with self._hlock:
            entries = list(self.history)
        out = []
        for e in reversed(entries):
            if rule_id is None or e.get("ruleId") == rule_id:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    def _alert_json(self, rule: dict, st: RuleState) -> dict:
        return {"ruleId": rule["id"], "name": rule["name"], "type": rule["type"], "service": rule["service"],
                "operation": rule["operation"], "kind": rule["kind"], "enabled": rule["enabled"],
                "state": st.state, "since": iso(st.since), "activeAt": iso(st.active_at),
                "value": st.value, "threshold": st.threshold, "baseline": st.baseline,
                "unit": UNITS[rule["type"]], "calls": st.calls,
                "lastEvaluation": iso(st.last_evaluation), "lastError": st.last_error,
                "exampleTraceIds": list(st.examples), "lastNotification": iso(st.last_sent)}

    # -- evaluation ------------------------------------------------------------------------------

    def start(self) -> None:
        self.notifier.start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="clew-alerting", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.notifier.close()

    def _run(self) -> None:
        while not self._stop.wait(self.config.evaluation_interval_s):
            try:
                self.evaluate()
            except Exception:
                log.exception("alert evaluation failed; trying again at the next interval")

    def _span_index(self) -> dict[str, list[tuple[str, str, int]]]:
        """service → [(operation, kind, series id)] of every span series."""
        index: dict[str, list] = {}
        for key in self.series.keys("span"):
            if len(key) != 4:
                continue
            index.setdefault(key[1], []).append((key[2], key[3], self.series.series_id(key)))
        return index

    def evaluate(self, now: float | None = None) -> None:
        """Evaluate every enabled rule once (what the ingest gathered is flushed first)."""
        now = self.clock() if now is None else now
        try:
            self.series.flush()
        except Exception:
            log.exception("alerting: the metrics could not be flushed; evaluating what is stored")
        index = self._span_index()
        with self._lock:
            rules = list(self.rules.values())
        for rule in rules:
            if not rule["enabled"]:
                continue
            try:
                outcome = self.condition(rule, index, now)
                error = None
            except Exception as exc:  # one bad rule never stops the others
                log.exception("alert rule %s could not be evaluated", rule["id"])
                outcome, error = None, f"{type(exc).__name__}: {exc}"
            try:
                self._step(rule, outcome, error, now)
            except Exception:
                log.exception("alert rule %s: its state could not be updated", rule["id"])
        self.evaluations += 1

    def _window(self, seconds: float, end: float) -> float:
        """Start (epoch s) of the whole buckets covering [end − seconds, end]."""
        b = self.bucket_s
        return math.floor((end - seconds) / b) * b

    def _totals(self, sids: list[int], start: float, end: float):
        """(calls, errors, dense histogram) of the series over buckets starting in [start, end)."""
        calls = errors = 0
        hist = np.zeros(NBUCKETS, np.int64)
        if sids and end > start:
            for p in self.series.totals(sids, int(start * NS), int(math.ceil(end * NS))).values():
                calls += p.calls
                errors += p.errors
                hist += p.hist
        return calls, errors, hist

    def _baseline_range(self, rule: dict, start: float, end: float) -> tuple[float, float]:
        if rule["baseline"] == "previous":
            bw = duration_s("baselineWindow", rule["baselineWindow"])
            return start - math.ceil(bw / self.bucket_s) * self.bucket_s, start
        offset = math.floor(duration_s("baseline", rule["baseline"]) / self.bucket_s) * self.bucket_s
        return start - offset, end - offset

    def condition(self, rule: dict, index: dict, now: float) -> Outcome:
        """Whether ``rule``'s condition holds at ``now`` and the value it saw."""
        sids = [sid for op, kind, sid in index.get(rule["service"], ())
                if (rule["operation"] is None or op == rule["operation"])
                and (rule["kind"] is None or kind == rule["kind"])]
        start = self._window(duration_s("window", rule["window"]), now)
        calls, errors, hist = self._totals(sids, start, now)
        typ = rule["type"]
        min_calls = rule["minCalls"] or 1
        out = Outcome(False, None, rule["threshold"], window_start=start, calls=calls)
        if typ == "missing":
            out.value = float(calls)
            out.threshold = None
            out.active = calls == 0
        elif typ == "error_rate":
            if calls:
                out.value = errors / calls
            out.active = calls >= min_calls and out.value > rule["threshold"]
        elif typ in ("latency", "latency_spike"):
            if calls:
                q = quantiles(hist, [rule["quantile"]])[0]
                out.value = None if q is None else q / 1e6
            if typ == "latency":
                out.active = calls >= min_calls and out.value is not None and out.value > rule["threshold"]
            else:
                b0, b1 = self._baseline_range(rule, start, now)
                bcalls, _e, bhist = self._totals(sids, b0, b1)
                bq = quantiles(bhist, [rule["quantile"]])[0] if bcalls else None
                out.baseline = None if bq is None else bq / 1e6
                out.threshold = None if out.baseline is None else rule["factor"] * out.baseline
                out.active = (calls >= min_calls and bcalls >= min_calls and out.value is not None
                              and out.threshold is not None and out.value > out.threshold)
        elif typ == "throughput_drop":
            out.value = calls / max(now - start, 1e-9)
            if rule["threshold"] is not None:
                out.active = out.value < rule["threshold"]
            else:
                b0, b1 = self._baseline_range(rule, start, now)
                bcalls, _e, _h = self._totals(sids, b0, b1)
                out.baseline = bcalls / max(b1 - b0, 1e-9)
                out.threshold = rule["fraction"] * out.baseline
                out.active = bcalls >= min_calls and out.value < out.threshold
        return out

    def examples(self, rule: dict, outcome: Outcome, now: float) -> list[str]:
        """Up to five traces of the window that show the problem: failed traces of the service
        for error rules, the slowest (at or above the threshold) for latency rules."""
        if self.reader is None or not hasattr(self.reader, "find_traces"):
            return []
        conds = [Cond(SERVICE, "=", rule["service"])]
        if rule["operation"] is not None:
            conds.append(Cond(NAME, "=", rule["operation"]))
        if rule["kind"] is not None:
            conds.append(Cond(KIND, "=", rule["kind"]))
        if rule["type"] == "error_rate":
            conds.append(Cond(STATUS, "=", "error"))
        elif rule["type"] in ("latency", "latency_spike") and outcome.threshold is not None:
            conds.append(Cond(DURATION, ">=", int(outcome.threshold * 1e6)))
        else:
            return []
        query = TraceQuery(span=all_of(*conds), start_min_ns=int(outcome.window_start * NS),
                           start_max_ns=int(now * NS), limit=EXAMPLES)
        try:
            found = self.reader.find_traces(query)
        except Exception as exc:
            log.warning("alert rule %s: example traces not found: %s", rule["id"], exc)
            return []
        if rule["type"] != "error_rate":  # the slowest first
            found = sorted(found, key=lambda s: -max((m.duration_ns for m in s.matched), default=0))
        return [s.trace_id.hex() for s in found[:EXAMPLES]]

    def _step(self, rule: dict, outcome: Outcome | None, error: str | None, now: float) -> None:
        rid = rule["id"]
        with self._lock:
            st = self.states.get(rid)
            if st is None or self.rules.get(rid) is not rule:
                return  # changed or deleted while being evaluated
            state = st.state
            wait_s = duration_s("for", rule["for"])
        active = outcome is not None and outcome.active
        fires = active and (state == FIRING
                            or (state == INACTIVE and wait_s <= 0)
                            or (state == PENDING and now - (st.active_at or now) >= wait_s))
        found = None
        if fires and (state != FIRING or not st.examples):
            found = self.examples(rule, outcome, now)
        transitions = []
        notify = None
        with self._lock:
            if self.states.get(rid) is not st or self.rules.get(rid) is not rule:
                return
            st.last_evaluation = now
            st.last_error = error
            if outcome is not None:
                st.value, st.threshold, st.baseline = outcome.value, outcome.threshold, outcome.baseline
                st.calls, st.window_start = outcome.calls, outcome.window_start
            if error is not None:
                return  # an evaluation that failed changes no state
            if found is not None and (state != FIRING or found):
                st.examples = found
            if active:
                if state == INACTIVE:
                    st.active_at = now
                    if fires:
                        transitions.append((INACTIVE, FIRING))
                        st.state, st.since = FIRING, now
                        notify = FIRING
                    else:
                        transitions.append((INACTIVE, PENDING))
                        st.state, st.since = PENDING, now
                elif state == PENDING and fires:
                    transitions.append((PENDING, FIRING))
                    st.state, st.since = FIRING, now
                    notify = FIRING
                elif state == FIRING and st.last_sent is not None and \
                        now - st.last_sent >= self.config.repeat_interval_s:
                    notify = "repeat"
            else:
                if state == PENDING:
                    transitions.append((PENDING, INACTIVE))
                elif state == FIRING:
                    transitions.append((FIRING, RESOLVED))
                    notify = RESOLVED
                if state != INACTIVE:
                    st.state, st.since = INACTIVE, now
            snapshot = RuleState(**{**st.__dict__, "examples": list(st.examples)})
            if notify in (FIRING, "repeat"):
                st.last_sent = now
            if st.state == INACTIVE:
                st.active_at, st.examples, st.last_sent = None, [], None
        for frm, to in transitions:
            self._record({"event": "transition", "ruleId": rid, "name": rule["name"], "from": frm, "to": to,
                          "value": snapshot.value, "threshold": snapshot.threshold,
                          "exampleTraceIds": snapshot.examples if to == FIRING else []})
        if notify is not None:
            self._notify(rule, snapshot, RESOLVED if notify == RESOLVED else FIRING, now,
                         repeat=notify == "repeat")

    def _end(self, rule: dict, st: RuleState | None, why: str, new_rule: dict | None = None) -> None:
        """A rule that goes away (deleted, disabled or changed): a firing alert is resolved."""
        if st is None or st.state == INACTIVE:
            return
        now = self.clock()
        self._record({"event": "transition", "ruleId": rule["id"], "name": rule["name"], "from": st.state,
                      "to": RESOLVED if st.state == FIRING else INACTIVE, "value": st.value,
                      "threshold": st.threshold, "reason": why})
        if st.state == FIRING:
            self._notify(rule, st, RESOLVED, now, hooks_from=new_rule)

    # -- notifications ---------------------------------------------------------------------------

    def webhooks(self, rule: dict) -> list[str]:
        if rule["webhooks"]:
            return list(rule["webhooks"])
        return [self.config.default_webhook] if self.config.default_webhook else []

    def payload(self, rule: dict, st: RuleState, status: str, now: float) -> dict:
        """The Alertmanager webhook message (version 4) of one alert."""
        labels = {"alertname": rule["name"], "rule_id": rule["id"], "service": rule["service"]}
        if rule["operation"] is not None:
            labels["operation"] = rule["operation"]
        if rule["kind"] is not None:
            labels["kind"] = rule["kind"]
        labels["type"] = rule["type"]
        labels["severity"] = "warning"
        labels.update(rule["labels"])
        unit = UNITS[rule["type"]]
        scope = rule["service"] + (f" {rule['operation']}" if rule["operation"] else "") + \
            (f" ({rule['kind']} spans)" if rule["kind"] else "")
        typ = rule["type"]
        if typ == "error_rate":
            what = f"error rate {_fmt(st.value, unit)} > {_fmt(st.threshold, unit)}"
        elif typ == "latency":
            what = f"p{rule['quantile'] * 100:g} latency {_fmt(st.value, unit)} > {_fmt(st.threshold, unit)}"
        elif typ == "latency_spike":
            what = (f"p{rule['quantile'] * 100:g} latency {_fmt(st.value, unit)} > {rule['factor']:g} × "
                    f"baseline {_fmt(st.baseline, unit)}")
        elif typ == "throughput_drop":
            what = f"throughput {_fmt(st.value, unit)} < {_fmt(st.threshold, unit)}"
        else:
            what = "no spans"
        annotations = {
            "summary": f"{rule['name']}: {scope}: {what} over {rule['window']}",
            "description": (f"Rule {rule['id']} ({rule['type']}) on {scope}: {what} over the last "
                            f"{rule['window']}"
                            + (f", for at least {rule['for']}" if rule["for"] != "0" else "")
                            + (" — resolved." if status == RESOLVED else ".")),
            "value": "" if st.value is None else f"{st.value:.6g}",
        }
        if st.threshold is not None:
            annotations["threshold"] = f"{st.threshold:.6g}"
        if st.examples:
            annotations["example_trace_ids"] = ",".join(st.examples)
            if self.external_url:
                annotations["example_trace_urls"] = " ".join(f"{self.external_url}/trace/{t}"
                                                             for t in st.examples)
        annotations.update(rule["annotations"])
        fingerprint = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
        alert = {"status": status, "labels": labels, "annotations": annotations,
                 "startsAt": iso(st.active_at if st.active_at is not None else now),
                 "endsAt": iso(now) if status == RESOLVED else ZERO_TIME,
                 "generatorURL": f"{self.external_url}/api/v1/alerts/rules/{rule['id']}",
                 "fingerprint": fingerprint}
        group = {"alertname": rule["name"], "rule_id": rule["id"]}
        group_key = "{}:{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in group.items()) + "}"
        return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
                "receiver": RECEIVER, "groupLabels": group, "commonLabels": dict(labels),
                "commonAnnotations": dict(annotations), "externalURL": self.external_url, "alerts": [alert]}

    def _notify(self, rule: dict, st: RuleState, status: str, now: float, *, repeat: bool = False,
                hooks_from: dict | None = None) -> None:
        hooks = self.webhooks(hooks_from or rule)
        if not hooks:
            return
        body = self.payload(rule, st, status, now)
        meta = {"ruleId": rule["id"], "name": rule["name"], "status": status}
        if repeat:
            meta["repeat"] = True
        for url in hooks:
            self.notifier.submit(url, body, meta)
