"""Query stage: a documented subset of TraceQL, parsed by hand into the neutral search model.

The subset (``docs/api-tempo.md`` has the grammar) is one spanset ``{ ... }`` whose conditions
are combined with ``&&``, ``||`` and parentheses.  A condition compares a field with a static:

* attributes ``span.key``, ``resource.key`` and unscoped ``.key`` (span attributes or resource,
  as TraceQL looks them up) become ``Cond(Attr(...))``;
* the span intrinsics ``name``, ``status``, ``kind`` and ``duration`` (and their ``span:``
  spellings) become ``Cond(NAME|STATUS|KIND|DURATION)``;
* the trace intrinsics ``trace:duration``/``traceDuration``, ``trace:rootService``/
  ``rootServiceName`` and ``trace:rootName``/``rootName`` become ``TraceQuery`` fields; they may
  only be ANDed at the top of the spanset, because the search model holds them once per query.

Everything else TraceQL has (pipelines, aggregates, structural and spanset operators, arithmetic,
``select()``, other scopes and intrinsics) is refused with a ``TraceQLError`` that names the
construct and its column.  The tokenizer follows Tempo's lexer where the two meet: attribute
names run until whitespace or one of ``{}()=~!<>&|^,`` and may hold double-quoted parts, numbers
followed by a unit are durations (``ns us µs ms s m h d w y``), strings are Go strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from collector.store.criteria import (DURATION, KIND, KINDS, NAME, STATUS, STATUSES, And, Attr, Cond,
                                      CriteriaError, Or)

__all__ = ["TraceQLError", "Selection", "parse", "parse_identifier", "service_filter",
           "INTRINSIC_TAGS"]


class TraceQLError(ValueError):
    """A query outside the subset or not TraceQL at all; ``pos`` is the 0-based offset."""

    def __init__(self, message: str, pos: int):
        super().__init__(message, pos)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return f"col {self.pos + 1}: {self.message}"


@dataclass(frozen=True)
class Selection:
    """What a query selects: a span expression and conditions on the whole trace."""

    span: object = None  # criteria Expr, or None for "any span"
    trace_min_duration_ns: int | None = None
    trace_max_duration_ns: int | None = None
    root_service: str | None = None
    root_name: str | None = None

    def query_fields(self) -> dict:
        """Keyword arguments for ``criteria.TraceQuery``."""
        return {"span": self.span, "trace_min_duration_ns": self.trace_min_duration_ns,
                "trace_max_duration_ns": self.trace_max_duration_ns,
                "root_service": self.root_service, "root_name": self.root_name}


# --------------------------------------------------------------------------- vocabulary

SPAN_INTRINSICS = {"name": NAME, "span:name": NAME, "status": STATUS, "span:status": STATUS,
                   "kind": KIND, "span:kind": KIND, "duration": DURATION, "span:duration": DURATION}
T_DURATION, T_ROOT_SERVICE, T_ROOT_NAME = "trace:duration", "trace:rootService", "trace:rootName"
TRACE_INTRINSICS = {"trace:duration": T_DURATION, "traceDuration": T_DURATION,
                    "trace:rootService": T_ROOT_SERVICE, "rootServiceName": T_ROOT_SERVICE,
                    "trace:rootName": T_ROOT_NAME, "rootName": T_ROOT_NAME}
# What /api/search/tags?scope=intrinsic lists: the intrinsics this subset can query.
INTRINSIC_TAGS = tuple(sorted({*SPAN_INTRINSICS, *TRACE_INTRINSICS}))
# TraceQL intrinsics outside the subset, named when refused.
OTHER_INTRINSICS = frozenset((
    "statusMessage", "span:statusMessage", "childCount", "span:childCount", "parent",
    "nestedSetLeft", "nestedSetRight", "nestedSetParent", "span:id", "span:parentID", "trace:id",
    "event:name", "event:timeSinceStart", "link:traceID", "link:spanID", "instrumentation:name",
    "instrumentation:version"))
AGGREGATES = frozenset(("count", "avg", "max", "min", "sum", "rate", "count_over_time",
                        "min_over_time", "max_over_time", "avg_over_time", "sum_over_time",
                        "quantile_over_time", "histogram_over_time", "compare", "topk", "bottomk"))
FUNCTIONS = frozenset(("select", "by", "coalesce"))
ATTR_SCOPES = {"span": "span", "resource": "resource"}
OTHER_SCOPES = ("event", "link", "instrumentation", "parent")
STRUCTURAL = frozenset((">", ">>", "<", "<<", "~", "!>", "!>>", "!<", "!<<", "!~",
                        "&>", "&>>", "&<", "&<<", "&~"))
COMPARISONS = ("=", "!=", "=~", "!~", ">", ">=", "<", "<=")
ARITHMETIC = frozenset("+-*/%^")
_ATTR_STOP = frozenset("{}()=~!<>&|^,")
_DIGITS = frozenset("0123456789")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9,
                   "y": 365 * 86400 * 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w|y)")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)?")
# Operators, longest first so ">>" is not read as ">" ">".
_PUNCT = ("!>>", "!<<", "&>>", "&<<", "&&", "||", "!=", "=~", "!~", ">=", "<=", ">>", "<<", "!>",
          "!<", "&>", "&<", "&~", "{", "}", "(", ")", "=", ">", "<", "~", "!", "|", "&", ",",
          "+", "-", "*", "/", "%", "^")


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Tok:
    kind: str  # punct text, or STRING NUMBER DURATION IDENT ATTR EOF
    pos: int
    value: object = None  # STRING: str; NUMBER: int|float; DURATION: ns; IDENT: name; ATTR: (scope, key)
    text: str = ""


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            toks.append(Tok("EOF", i, text="end of query"))
            return toks
        c = src[i]
        if c == '"' or c == "`":
            value, end = _string(src, i)
            toks.append(Tok("STRING", i, value, src[i:end]))
            i = end
        elif c == "'":
            raise TraceQLError("strings are written in double quotes (\"...\") or backquotes", i)
        elif c in _DIGITS or (c == "." and i + 1 < n and src[i + 1] in _DIGITS):
            tok, i = _number(src, i)
            toks.append(tok)
        elif c == ".":
            key, end = _attribute_name(src, i + 1)
            toks.append(Tok("ATTR", i, ("spanlike", key), src[i:end]))
            i = end
        elif c.isascii() and (c.isalpha() or c == "_"):
            m = _IDENT.match(src, i)
            word = m.group()
            end = m.end()
            if word in ATTR_SCOPES or word in OTHER_SCOPES:
                if end < n and src[end] == ".":
                    key, end = _attribute_name(src, end + 1)
                    toks.append(Tok("ATTR", i, (word, key), src[i:end]))
                    i = end
                    continue
            toks.append(Tok("IDENT", i, word, word))
            i = end
        else:
            for p in _PUNCT:
                if src.startswith(p, i):
                    toks.append(Tok(p, i, text=p))
                    i += len(p)
                    break
            else:
                raise TraceQLError(f"unexpected character {c!r}", i)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}


def _string(src: str, start: int) -> tuple[str, int]:
    """A Go string literal at ``start``: ``"..."`` with escapes, or a raw ```...``` string."""
    quote = src[start]
    i, out = start + 1, []
    while i < len(src):
        c = src[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and quote == '"':
            if i + 1 >= len(src):
                break
            e = src[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            if width is not None:
                digits = src[i + 2:i + 2 + width]
                if len(digits) == width and all(d in "0123456789abcdefABCDEF" for d in digits):
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
            elif e in "01234567":
                digits = src[i + 1:i + 4]
                if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) < 256:
                    out.append(chr(int(digits, 8)))
                    i += 4
                    continue
            raise TraceQLError(f"invalid escape sequence \\{e} in string", i)
        if c == "\n" and quote == '"':
            break
        out.append(c)
        i += 1
    raise TraceQLError("string is not terminated", start)


def _number(src: str, start: int) -> tuple[Tok, int]:
    m = _NUMBER.match(src, start)
    end = m.end()
    if end < len(src) and (src[end].isalpha() or src[end] in "µμ"):
        # A unit follows: the whole run up to a delimiter must be a duration (1h30m, 1.5s).
        stop = end
        while stop < len(src) and (src[stop].isalnum() or src[stop] in ".µμ"):
            stop += 1
        text = src[start:stop]
        pos, total = 0, 0.0
        while pos < len(text):
            part = _DURATION_PART.match(text, pos)
            if not part:
                raise TraceQLError(f"{text!r} is neither a number nor a duration such as 100ms, 1.5s or 1h30m",
                                   start)
            total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
            pos = part.end()
        return Tok("DURATION", start, int(round(total)), text), stop
    text = m.group()
    value = float(text) if any(ch in text for ch in ".eE") else int(text)
    return Tok("NUMBER", start, value, text), end


def _attribute_name(src: str, i: int) -> tuple[str, int]:
    """An attribute key from ``i``: everything up to whitespace or ``{}()=~!<>&|^,``; quoted parts allowed."""
    start, out = i, []
    while i < len(src):
        c = src[i]
        if c == '"':
            j, part = i + 1, []
            while True:
                if j >= len(src):
                    raise TraceQLError("quoted attribute name is not terminated", i)
                if src[j] == '"':
                    break
                if src[j] == "\\":
                    if j + 1 < len(src) and src[j + 1] in '\\"':
                        part.append(src[j + 1])
                        j += 2
                        continue
                    raise TraceQLError("invalid escape sequence in attribute name", j)
                part.append(src[j])
                j += 1
            out.append("".join(part))
            i = j + 1
        elif c.isspace() or c in _ATTR_STOP:
            break
        else:
            out.append(c)
            i += 1
    if not out:
        raise TraceQLError("attribute name expected after '.'", start)
    return "".join(out), i


# --------------------------------------------------------------------------- parser

@dataclass(frozen=True)
class _TraceCond:
    field: str
    op: str
    value: object
    pos: int
    text: str


@dataclass(frozen=True)
class _Node:
    kind: str  # "and" | "or"
    parts: tuple


_TRUE = object()  # the body `{ true }`


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.toks = tokenize(src)
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, kind: str, what: str) -> Tok:
        if self.tok.kind != kind:
            raise TraceQLError(f"expected {what}, found {_show(self.tok)}", self.tok.pos)
        return self.take()

    # query := spanset | '(' query ')'
    def query(self):
        body = self.outer()
        self.after_spanset(nested=False)
        return body

    def outer(self):
        if self.tok.kind == "(":
            self.take()
            body = self.outer()
            if self.tok.kind != ")":
                self.after_spanset(nested=True)
            self.take()
            return body
        return self.spanset()

    def after_spanset(self, nested: bool) -> None:
        """Name what follows a spanset when it is not the end of the query (or of its parentheses)."""
        t = self.tok
        if t.kind == "EOF":
            if nested:
                raise TraceQLError("expected ')'", t.pos)
            return
        if t.kind == "|":
            raise TraceQLError("pipelines ('|' after the spanset) are not supported", t.pos)
        if t.kind in ("&&", "||"):
            raise TraceQLError(f"spanset operators ('{t.kind}' between two spansets) are not supported", t.pos)
        if t.kind in STRUCTURAL:
            raise TraceQLError(f"structural operators ('{t.kind}' between spansets) are not supported", t.pos)
        if t.kind == "IDENT" and t.value == "with":
            raise TraceQLError("query hints (with(...)) are not supported", t.pos)
        raise TraceQLError(f"unexpected {_show(t)} after the spanset", t.pos)

    def spanset(self):
        t = self.tok
        if t.kind != "{":
            if t.kind == "IDENT" and (t.value in AGGREGATES or t.value in FUNCTIONS):
                raise TraceQLError(f"{t.value}() is not supported; a query is one spanset {{ ... }}", t.pos)
            if t.kind == "EOF":
                raise TraceQLError("empty query; write {} to match every trace", t.pos)
            raise TraceQLError(f"expected '{{' to open a spanset, found {_show(t)}", t.pos)
        self.take()
        if self.tok.kind == "}":
            self.take()
            return None
        if self.tok.kind == "IDENT" and self.tok.value == "true" and self.toks[self.i + 1].kind == "}":
            self.i += 2
            return _TRUE
        body = self.or_expr()
        if self.tok.kind != "}":
            t = self.tok
            if t.kind in COMPARISONS:
                raise TraceQLError(f"expected '&&', '||' or '}}', found {_show(t)} "
                                   "(a comparison joins one field and one static)", t.pos)
            raise TraceQLError(f"expected '&&', '||' or '}}', found {_show(t)}", t.pos)
        self.take()
        return body

    def or_expr(self):
        parts = [self.and_expr()]
        while self.tok.kind == "||":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else _Node("or", tuple(parts))

    def and_expr(self):
        parts = [self.primary()]
        while self.tok.kind == "&&":
            self.take()
            parts.append(self.primary())
        return parts[0] if len(parts) == 1 else _Node("and", tuple(parts))

    def primary(self):
        t = self.tok
        if t.kind == "(":
            self.take()
            inner = self.or_expr()
            self.expect(")", "')'")
            return inner
        if t.kind == "!":
            raise TraceQLError("negation ('!') is not supported; use != or !~", t.pos)
        if t.kind == "{":
            raise TraceQLError("nested spansets are not supported", t.pos)
        if t.kind in ("STRING", "NUMBER", "DURATION") or t.kind == "-":
            raise TraceQLError("a comparison starts with an attribute or intrinsic "
                               "(a static on the left is not supported)", t.pos)
        if t.kind == "IDENT" and t.value in ("true", "false", "nil"):
            raise TraceQLError(f"a bare '{t.value}' is not a condition here (only {{ true }} is supported)", t.pos)
        field = self.field()
        op = self.tok
        if op.kind not in COMPARISONS:
            if op.kind in ARITHMETIC:
                raise TraceQLError(f"arithmetic ('{op.kind}') is not supported", op.pos)
            if op.kind in ("&&", "||", "}", ")"):
                raise TraceQLError(f"{t.text} alone is not a condition; compare it, e.g. {t.text} != nil", op.pos)
            raise TraceQLError(f"expected a comparison operator after {t.text}, found {_show(op)}", op.pos)
        self.take()
        value = self.static()
        after = self.tok
        if after.kind in ARITHMETIC:
            raise TraceQLError(f"arithmetic ('{after.kind}') is not supported", after.pos)
        return self.condition(t, field, op, value)

    def field(self):
        t = self.take()
        if t.kind == "ATTR":
            scope, key = t.value
            if scope in OTHER_SCOPES:
                raise TraceQLError(f"the '{scope}.' scope is not supported (use span., resource. or .)", t.pos)
            return ("attr", Attr(scope, key))
        if t.kind == "IDENT":
            name = t.value
            if name in SPAN_INTRINSICS:
                return ("span", SPAN_INTRINSICS[name])
            if name in TRACE_INTRINSICS:
                return ("trace", TRACE_INTRINSICS[name])
            if name in OTHER_INTRINSICS or ":" in name:
                raise TraceQLError(f"intrinsic '{name}' is not supported", t.pos)
            if name in AGGREGATES or name in FUNCTIONS:
                raise TraceQLError(f"{name}() is not supported", t.pos)
            raise TraceQLError(f"unknown intrinsic '{name}'; attributes need a scope: "
                               f"span.{name}, resource.{name} or .{name}", t.pos)
        raise TraceQLError(f"expected an attribute or intrinsic, found {_show(t)}", t.pos)

    def static(self) -> Tok:
        t = self.take()
        if t.kind == "-":
            num = self.tok
            if num.kind in ("NUMBER", "DURATION"):
                self.take()
                return Tok(num.kind, t.pos, -num.value, "-" + num.text)
            raise TraceQLError("expected a number after '-'", num.pos)
        if t.kind in ("STRING", "NUMBER", "DURATION"):
            return t
        if t.kind == "IDENT" and t.value in ("true", "false", "nil", *STATUSES, *KINDS):
            return t
        if t.kind == "ATTR" or (t.kind == "IDENT" and (t.value in SPAN_INTRINSICS or t.value in TRACE_INTRINSICS)):
            raise TraceQLError("comparing two fields is not supported; compare with a static value", t.pos)
        raise TraceQLError(f"expected a value (string, number, duration, true, false, nil, a status or "
                           f"a kind), found {_show(t)}", t.pos)

    # ------------------------------------------------------------ typing

    def condition(self, ftok: Tok, field, op: Tok, v: Tok):
        where, f = field
        name = ftok.text
        o = op.kind
        if where == "trace":
            return self.trace_condition(ftok, f, op, v)
        if where == "attr":
            return self.attr_condition(f, name, op, v)
        if f == NAME:
            if v.kind != "STRING":
                raise TraceQLError(f"{name} compares with a string, not {_show(v)}", v.pos)
            if o not in ("=", "!=", "=~", "!~"):
                raise TraceQLError(f"{name} takes = != =~ !~, not {o}", op.pos)
            return self.cond(NAME, o, v.value, v.pos)
        if f in (STATUS, KIND):
            allowed = STATUSES if f == STATUS else KINDS
            if not (v.kind == "IDENT" and v.value in allowed):
                raise TraceQLError(f"{name} compares with one of {', '.join(allowed)} (unquoted), "
                                   f"not {_show(v)}", v.pos)
            if o not in ("=", "!="):
                raise TraceQLError(f"{name} takes = and !=, not {o}", op.pos)
            return self.cond(f, o, v.value, v.pos)
        # DURATION
        if v.kind not in ("DURATION", "NUMBER") or isinstance(v.value, float) and v.kind == "NUMBER":
            raise TraceQLError(f"{name} compares with a duration such as 100ms or 1.5s, not {_show(v)}", v.pos)
        if o in ("=~", "!~"):
            raise TraceQLError(f"{name} takes = != > >= < <=, not {o}", op.pos)
        return self.cond(DURATION, o, int(v.value), v.pos)

    def attr_condition(self, attr: Attr, name: str, op: Tok, v: Tok):
        o = op.kind
        if v.kind == "IDENT" and v.value == "nil":
            if o == "!=":
                return self.cond(attr, "exists", None, v.pos)
            if o == "=":
                raise TraceQLError(f"{name} = nil (testing that an attribute is absent) is not supported",
                                   op.pos)
            raise TraceQLError(f"nil takes != only, not {o}", op.pos)
        if v.kind == "IDENT" and v.value in (*STATUSES, *KINDS):
            raise TraceQLError(f"{v.value} is a status or kind; compare an attribute with a string, "
                               f"number or boolean", v.pos)
        if o in ("=~", "!~"):
            if v.kind != "STRING":
                raise TraceQLError(f"{o} takes a regular expression in a string, not {_show(v)}", v.pos)
            return self.cond(attr, o, v.value, v.pos)
        if o in (">", ">=", "<", "<="):
            if v.kind not in ("NUMBER", "DURATION"):
                raise TraceQLError(f"{o} compares numbers; {_show(v)} is not a number", v.pos)
            return self.cond(attr, o, v.value, v.pos)
        if v.kind == "STRING":
            return self.cond(attr, o, v.value, v.pos)
        if v.kind == "IDENT":  # true / false: compared by their string form
            return self.cond(attr, o, v.value, v.pos)
        return self.cond(attr, o, _number_value(v.value), v.pos)

    def trace_condition(self, ftok: Tok, f: str, op: Tok, v: Tok):
        o = op.kind
        name = ftok.text
        if f == T_DURATION:
            if v.kind not in ("DURATION", "NUMBER") or isinstance(v.value, float) and v.kind == "NUMBER":
                raise TraceQLError(f"{name} compares with a duration such as 100ms or 1.5s, not {_show(v)}",
                                   v.pos)
            if o not in ("=", ">", ">=", "<", "<="):
                raise TraceQLError(f"{name} takes = > >= < <=, not {o}", op.pos)
            return _TraceCond(f, o, int(v.value), ftok.pos, name)
        if v.kind != "STRING":
            raise TraceQLError(f"{name} compares with a string, not {_show(v)}", v.pos)
        if o != "=":
            raise TraceQLError(f"{name} takes = only, not {o}", op.pos)
        return _TraceCond(f, o, v.value, ftok.pos, name)

    @staticmethod
    def cond(field, op, value, pos) -> Cond:
        try:
            return Cond(field, op, value)
        except CriteriaError as exc:
            raise TraceQLError(str(exc), pos) from None


def _number_value(x):
    """A number as the store compares it by string form: integral floats as ints (``1.0`` → ``1``)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
        return int(x)
    return x


def _show(t: Tok) -> str:
    if t.kind == "EOF":
        return "the end of the query"
    return repr(t.text)


# --------------------------------------------------------------------------- lowering


def parse(text: str) -> Selection:
    """The ``Selection`` a query in the subset asks for; ``TraceQLError`` otherwise."""
    body = _Parser(text).query()
    if body is None or body is _TRUE:
        return Selection()
    conjuncts = _flatten(body, "and")
    trace_conds = [c for c in conjuncts if isinstance(c, _TraceCond)]
    span_parts = [c for c in conjuncts if not isinstance(c, _TraceCond)]
    for part in span_parts:
        _refuse_nested_trace(part)
    sel = {"trace_min_duration_ns": None, "trace_max_duration_ns": None, "root_service": None,
           "root_name": None}
    for c in trace_conds:
        if c.field == T_DURATION:
            lo, hi = {"=": (c.value, c.value), ">": (c.value + 1, None), ">=": (c.value, None),
                      "<": (None, c.value - 1), "<=": (None, c.value)}[c.op]
            if lo is not None:
                cur = sel["trace_min_duration_ns"]
                sel["trace_min_duration_ns"] = lo if cur is None else max(cur, lo)
            if hi is not None:
                if hi < 0:
                    raise TraceQLError(f"{c.text} {c.op} {c.value}ns can match no trace", c.pos)
                cur = sel["trace_max_duration_ns"]
                sel["trace_max_duration_ns"] = hi if cur is None else min(cur, hi)
        else:
            key = "root_service" if c.field == T_ROOT_SERVICE else "root_name"
            if sel[key] is not None and sel[key] != c.value:
                raise TraceQLError(f"{c.text} is compared with two different values", c.pos)
            sel[key] = c.value
    span = None
    if span_parts:
        span = _lower(span_parts[0] if len(span_parts) == 1 else _Node("and", tuple(span_parts)))
    return Selection(span=span, **sel)


def _flatten(node, kind: str) -> list:
    if isinstance(node, _Node) and node.kind == kind:
        out = []
        for p in node.parts:
            out.extend(_flatten(p, kind))
        return out
    return [node]


def _refuse_nested_trace(node) -> None:
    if isinstance(node, _TraceCond):
        raise TraceQLError(f"trace-level condition {node.text} must be ANDed at the top of the spanset, "
                           "not inside '||'", node.pos)
    if isinstance(node, _Node):
        for p in node.parts:
            _refuse_nested_trace(p)


def _lower(node):
    """Criteria ``Cond``/``And``/``Or`` of a parsed node, nested groups of the same kind flattened."""
    if not isinstance(node, _Node):
        return node
    same = And if node.kind == "and" else Or
    parts = []
    for p in node.parts:
        q = _lower(p)
        parts.extend(q.parts if isinstance(q, same) else (q,))
    return same(tuple(parts))


# --------------------------------------------------------------------------- identifiers


def parse_identifier(text: str):
    """A TraceQL attribute or intrinsic as a tag name (``resource.service.name``, ``.foo``, ``name``).

    Returns ``Attr`` for attributes (``event.``/``link.``/``instrumentation.`` scopes included,
    as tag listings offer them), the criteria intrinsic name for span intrinsics, or one of
    ``trace:duration``/``trace:rootService``/``trace:rootName``.
    """
    toks = tokenize(text)
    if len(toks) != 2:
        raise TraceQLError(f"{text!r} is not one TraceQL attribute or intrinsic", toks[min(1, len(toks) - 1)].pos)
    t = toks[0]
    if t.kind == "ATTR":
        scope, key = t.value
        if scope == "parent":
            raise TraceQLError("the 'parent.' scope is not supported", t.pos)
        return Attr({"instrumentation": "scope"}.get(scope, scope), key)
    if t.kind == "IDENT":
        if t.value in SPAN_INTRINSICS:
            return SPAN_INTRINSICS[t.value]
        if t.value in TRACE_INTRINSICS:
            return TRACE_INTRINSICS[t.value]
        raise TraceQLError(f"unknown intrinsic {t.value!r}; attributes need a scope: span.{t.value}, "
                           f"resource.{t.value} or .{t.value}", t.pos)
    raise TraceQLError(f"{text!r} is not a TraceQL attribute or intrinsic", t.pos)


def service_filter(text: str | None) -> str | None:
    """The service a query pins with a top-level ``resource.service.name = "..."`` (or ``.service.name``).

    Used to narrow tag-value listings; a query that does not parse narrows nothing (Tempo's rule
    for filtered tag values)."""
    if not text:
        return None
    try:
        sel = parse(text)
    except TraceQLError:
        return None
    parts = sel.span.parts if isinstance(sel.span, And) else (sel.span,)
    for p in parts:
        if (isinstance(p, Cond) and p.op == "=" and isinstance(p.field, Attr)
                and p.field.scope in ("resource", "spanlike") and p.field.key == "service.name"
                and isinstance(p.value, str)):
            return p.value
    return None
