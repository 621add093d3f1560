"""Correlation: link templates that turn a trace or a span into URLs of other tools (docs/correlation.md).

A template is configured as a TOML table in ``[[correlation.links]]``::

    [[correlation.links]]
    name = "Logs"
    scope = "trace"            # or "span"
    url = "https://grafana.example/explore?expr={{trace_id=\\"{trace_id}\\"}}&from={start_ms-5m}&to={end_ms+5m}"
    when = "k8s.pod.name"      # optional: only where this attribute is present

Placeholders (``{{`` and ``}}`` are literal braces):

* ``{trace_id}`` (32 hex digits), ``{span_id}`` (16 hex digits; span templates only),
  ``{service}``, ``{operation}``;
* times: ``{start}``, ``{end}`` (RFC 3339, UTC, milliseconds), ``{start_s}``, ``{start_ms}``,
  ``{start_us}``, ``{start_ns}`` (epoch integers) and the same for ``end``; ``trace_start…``
  and ``trace_end…`` are the trace's times also in a span template; any of them may carry a
  padding ``+N`` or ``-N`` with a unit ``ms``, ``s``, ``m``, ``h`` or ``d`` (``{start_ms-5m}``).
  Start times round down and end times up to the unit, so the window covers what it names;
* ``{attr:KEY}``: the span's attribute, else its resource's; ``{resource:KEY}``: the resource's.

Values from spans (service, operation, attributes) are percent-encoded (every character but
``A-Z a-z 0-9 - . _ ~``); the template's own text is kept, except characters a URL cannot hold
(spaces, double quotes, braces, non-ASCII), which are percent-encoded.  A template that names an
attribute a span does not have is not rendered for that span.  Every template is checked when
the configuration is loaded: an unknown placeholder, a URL that does not start with ``http://``
or ``https://``, an unknown field, a bad scope raise ``ConfigError`` naming the template.

Trace templates take ``{service}``, ``{operation}`` and ``{attr:…}`` from the trace's root span
first, then from the other spans in start order (the first that has the attribute); their
``when`` holds when any span (or its resource) has the key.
"""
from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass
from urllib.parse import quote

from collector.errors import ConfigError

SCOPES = ("trace", "span")
FIELDS = ("name", "url", "scope", "when")
MAX_NAME = 200
NO_SERVICE = "OTLP_ResourceNoServiceName"  # the store's name for a resource without service.name

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_PAD_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
           "d": 86_400_000_000_000}
_TIME = re.compile(r"(trace_)?(start|end)(?:_(s|ms|us|ns))?(?:([+-])(\d{1,9})(ms|s|m|h|d))?")
_SIMPLE = ("trace_id", "span_id", "service", "operation")
# Kept as written in a template's literal text: URL-reserved characters, '%' (already encoded
# text) and the unreserved ones (quote never encodes letters, digits and '_.-~').
_LITERAL_SAFE = "!#$%&'()*+,/:;=?@[]~"
KNOWN = ("{trace_id}, {span_id}, {service}, {operation}, {start}, {end}, {start_ms}, {end_ms} "
         "(also _s, _us, _ns, and trace_start…/trace_end…, with padding such as {start_ms-5m}), "
         "{attr:KEY}, {resource:KEY}")


@dataclass(frozen=True)
class Part:
    """One piece of a parsed template: literal text, or a placeholder."""

    kind: str  # "text", "trace_id", "span_id", "service", "operation", "time", "attr", "resource"
    text: str = ""  # literal text (encoded), or the attribute key
    edge: str = ""  # time: "start" or "end"
    of_trace: bool = False  # time: the trace's time even in a span template
    unit: str = ""  # time: "" (RFC 3339) or s/ms/us/ns
    pad_ns: int = 0  # time: added to the time (negative: earlier)


@dataclass(frozen=True)
class LinkTemplate:
    """A configured link template, parsed and checked."""

    name: str
    url: str
    scope: str
    when: str | None
    parts: tuple[Part, ...]

    def render(self, subject: "Subject", max_length: int = 0) -> str | None:
        """The URL for ``subject``, or None when a value it names is missing (or ``when`` does
        not hold, or the URL is longer than ``max_length`` when that is > 0)."""
        if self.when is not None and not subject.has(self.when):
            return None
        out = []
        for p in self.parts:
            if p.kind == "text":
                out.append(p.text)
                continue
            value = subject.value(p)
            if value is None:
                return None
            out.append(value)
        url = "".join(out)
        if max_length and len(url) > max_length:
            return None
        return url


def parse_links(key: str, raw) -> tuple[LinkTemplate, ...]:
    """The templates of ``correlation.links``: a list of tables from TOML, or (from ``--set``
    and the environment) a TOML inline array of tables as text."""
    if isinstance(raw, str):
        try:
            raw = tomllib.loads(f"links = {raw}")["links"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{key}: expected a TOML array of tables such as "
                              f"[{{name = \"Logs\", scope = \"trace\", url = \"https://logs.example/?q={{trace_id}}\"}}]"
                              f" ({exc})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: expected a list of tables ([[{key}]] in TOML), got {type(raw).__name__}")
    templates = []
    seen = set()
    for i, table in enumerate(raw):
        t = parse_template(f"{key}[{i}]", table)
        if (t.scope, t.name) in seen:
            raise ConfigError(f"{key}[{i}] {t.name!r}: another {t.scope} template has this name")
        seen.add((t.scope, t.name))
        templates.append(t)
    return tuple(templates)


def parse_template(where: str, table) -> LinkTemplate:
    """One template from its TOML table; ``where`` names it in errors (``correlation.links[0]``)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with name, url, scope and optionally when")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ConfigError(f"{where}: name must be a non-empty string of at most {MAX_NAME} characters, "
                          f"got {name!r:.60}")
    label = f"{where} {name!r}"
    unknown = [k for k in table if k not in FIELDS]
    if unknown:
        raise ConfigError(f"{label}: unknown field {unknown[0]!r} (a template has {', '.join(FIELDS)})")
    scope = table.get("scope")
    if scope not in SCOPES:
        raise ConfigError(f"{label}: scope must be \"trace\" or \"span\", got {scope!r:.60}")
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{label}: url must be a non-empty string")
    when = table.get("when")
    if when is not None and (not isinstance(when, str) or not when):
        raise ConfigError(f"{label}: when must be an attribute key (a non-empty string), got {when!r:.60}")
    parts = _parse_url(label, url, scope)
    head = parts[0].text if parts and parts[0].kind == "text" else ""
    if not (re.match(r"https?://[^/?#]", head, re.I)
            or (re.fullmatch(r"https?://", head, re.I) and len(parts) > 1)):
        raise ConfigError(f"{label}: url must start with http:// or https:// (written out, not from a "
                          f"placeholder), got {url[:80]!r}")
    return LinkTemplate(name=name, url=url, scope=scope, when=when, parts=tuple(parts))


def _parse_url(label: str, url: str, scope: str) -> list[Part]:
    parts: list[Part] = []
    text: list[str] = []

    def flush():
        if text:
            parts.append(Part("text", quote("".join(text), safe=_LITERAL_SAFE)))
            text.clear()

    i, n = 0, len(url)
    while i < n:
        c = url[i]
        if c == "{" and url.startswith("{{", i):
            text.append("{")
            i += 2
        elif c == "}" and url.startswith("}}", i):
            text.append("}")
            i += 2
        elif c == "}":
            raise ConfigError(f"{label}: the '}}' at character {i + 1} of url closes no placeholder (write '}}}}' for a "
                              f"literal brace)")
        elif c == "{":
            close = url.find("}", i + 1)
            if close < 0:
                raise ConfigError(f"{label}: the placeholder at character {i + 1} of url is not closed "
                                  f"(write '{{{{' for a literal brace)")
            flush()
            parts.append(_placeholder(label, url[i + 1:close], scope))
            i = close + 1
        else:
            text.append(c)
            i += 1
    flush()
    return parts


def _placeholder(label: str, body: str, scope: str) -> Part:
    shown = "{" + body + "}"
    if body in _SIMPLE:
        if body == "span_id" and scope != "span":
            raise ConfigError(f"{label}: placeholder {shown} is only for scope = \"span\" templates")
        return Part(body)
    for prefix in ("attr:", "resource:"):
        if body.startswith(prefix):
            key = body[len(prefix):]
            if not key.strip():
                raise ConfigError(f"{label}: placeholder {shown} names no attribute key")
            return Part(prefix[:-1], text=key)
    m = _TIME.fullmatch(body)
    if m:
        of_trace, edge, unit, sign, amount, pad_unit = m.groups()
        pad = int(amount) * _PAD_NS[pad_unit] if amount else 0
        return Part("time", edge=edge, of_trace=bool(of_trace) or scope == "trace", unit=unit or "",
                    pad_ns=-pad if sign == "-" else pad)
    raise ConfigError(f"{label}: unknown placeholder {shown} in url (known: {KNOWN})")


# --------------------------------------------------------------------------- rendering


def rfc3339_ms(ns: int, up: bool) -> str:
    """Epoch ns as RFC 3339 UTC with milliseconds, rounded down (or ``up``) to the millisecond."""
    ms = -(-ns // 1_000_000) if up else ns // 1_000_000
    secs, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:03d}Z"


def format_time(ns: int, unit: str, up: bool) -> str:
    if not unit:
        return rfc3339_ms(ns, up)
    size = _UNITS_NS[unit]
    return str(-(-ns // size) if up else ns // size)


def encode(value: str) -> str:
    """A value from a span, percent-encoded for any part of a URL."""
    return quote(value, safe="")


class Subject:
    """What one template renders for: a span of a trace, or the trace (its root span, then the
    others)."""

    def __init__(self, trace: "TraceView", span: "SpanView | None"):
        self.trace = trace
        self.span = span
        self.main = span if span is not None else trace.root

    def has(self, key: str) -> bool:
        if self.span is not None:
            return self.span.lookup(key, False) is not None
        return any(s.lookup(key, False) is not None for s in self.trace.in_order())

    def _attr(self, key: str, resource_only: bool) -> str | None:
        if self.span is not None:
            return self.span.lookup(key, resource_only)
        for s in self.trace.in_order():
            v = s.lookup(key, resource_only)
            if v is not None:
                return v
        return None

    def value(self, p: Part) -> str | None:
        if p.kind == "trace_id":
            return self.trace.trace_id
        if p.kind == "span_id":
            return self.span.span_id if self.span is not None else None
        if p.kind == "service":
            return encode(self.main.service) if self.main is not None else None
        if p.kind == "operation":
            return encode(self.main.name) if self.main is not None else None
        if p.kind == "time":
            if p.of_trace or self.span is None:
                ns = self.trace.start if p.edge == "start" else self.trace.end
            else:
                ns = self.span.start if p.edge == "start" else self.span.end
            return format_time(max(ns + p.pad_ns, 0), p.unit, up=p.edge == "end")
        v = self._attr(p.text, p.kind == "resource")
        return None if v is None else encode(v)


@dataclass(eq=False)
class SpanView:
    span_id: str
    parent_id: str
    service: str
    name: str
    start: int
    end: int
    attrs: dict  # key -> rendered value
    resource: dict  # key -> rendered value (shared by the resource's spans)

    def lookup(self, key: str, resource_only: bool) -> str | None:
        if not resource_only:
            v = self.attrs.get(key)
            if v is not None:
                return v
        return self.resource.get(key)


class TraceView:
    """The spans of one trace with what the templates read: IDs, names, times, attributes."""

    def __init__(self, trace_id: str, spans: list[SpanView]):
        self.trace_id = trace_id
        self.spans = spans
        self.start = min((s.start for s in spans), default=0)
        self.end = max((max(s.end, s.start) for s in spans), default=0)
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if not s.parent_id or s.parent_id == s.span_id]
        if not roots:
            roots = [s for s in spans if s.parent_id not in ids]
        pool = roots or spans
        self.root = min(pool, key=lambda s: (s.start, -s.end)) if pool else None
        self._ordered: list[SpanView] | None = None

    def in_order(self) -> list[SpanView]:
        """The root span, then the others by start."""
        if self._ordered is None:
            rest = sorted((s for s in self.spans if s is not self.root), key=lambda s: s.start)
            self._ordered = ([self.root] if self.root is not None else []) + rest
        return self._ordered


def render_links(templates, trace: TraceView, *, span_id: str | None = None,
                 max_span_links: int = 0, max_url_length: int = 0) -> dict:
    """``{"trace": [{name, url}], "spans": {spanId: [{name, url}]}, "spansTruncated": bool}``.

    ``span_id``: render span templates for that span only.  ``max_span_links`` (> 0): span
    links rendered at most; spans past it are left out and ``spansTruncated`` is true.
    """
    trace_templates = [t for t in templates if t.scope == "trace"]
    span_templates = [t for t in templates if t.scope == "span"]
    whole = Subject(trace, None)
    out_trace = []
    for t in trace_templates:
        url = t.render(whole, max_url_length)
        if url is not None:
            out_trace.append({"name": t.name, "url": url})
    spans: dict[str, list[dict]] = {}
    truncated = False
    count = 0
    if span_templates:
        chosen = trace.in_order() if span_id is None else [s for s in trace.spans if s.span_id == span_id]
        for s in chosen:
            subject = Subject(trace, s)
            links = []
            for t in span_templates:
                url = t.render(subject, max_url_length)
                if url is not None:
                    links.append({"name": t.name, "url": url})
            if not links:
                continue
            if max_span_links and count + len(links) > max_span_links:
                truncated = True
                break
            count += len(links)
            listed = spans.setdefault(s.span_id, [])
            listed.extend(link for link in links if link not in listed)
    return {"trace": out_trace, "spans": spans, "spansTruncated": truncated}
