"""Query stage: the TraceQL subset parser — every construct to its criteria objects, every refusal named."""
from __future__ import annotations

import pytest

from collector.store.criteria import (DURATION, KIND, NAME, STATUS, And, Attr, Cond, Or, TraceQuery)
from query.traceql import Selection, TraceQLError, parse, parse_identifier, service_filter

MS = 1_000_000
S = 1_000_000_000


def span(q: str):
    return parse(q).span


# --------------------------------------------------------------------------- what the subset accepts


@pytest.mark.parametrize("q", ["{}", "{ }", "{ true }", "  {}  ", "({})"])
def test_match_everything(q):
    assert parse(q) == Selection()


@pytest.mark.parametrize("q, attr", [
    ('{ span.http.method = "GET" }', Attr("span", "http.method")),
    ('{ resource.service.name = "GET" }', Attr("resource", "service.name")),
    ('{ .http.method = "GET" }', Attr("spanlike", "http.method")),
    ('{span.http.method="GET"}', Attr("span", "http.method")),
    ('{ span."http method".x = "GET" }', Attr("span", "http method.x")),
    ('{ .k8s/pod-name:x = "GET" }', Attr("spanlike", "k8s/pod-name:x")),
])
def test_attribute_scopes_and_names(q, attr):
    assert span(q) == Cond(attr, "=", "GET")


@pytest.mark.parametrize("op", ["=", "!=", "=~", "!~"])
def test_string_operators(op):
    assert span(f'{{ .a {op} "x.*" }}') == Cond(Attr("spanlike", "a"), op, "x.*")


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_number_operators(op):
    assert span(f"{{ span.http.status_code {op} 500 }}") == Cond(Attr("span", "http.status_code"), op, 500)


def test_number_forms():
    assert span("{ .a > 72.5 }") == Cond(Attr("spanlike", "a"), ">", 72.5)
    assert span("{ .a = -3 }") == Cond(Attr("spanlike", "a"), "=", -3)
    assert span("{ .a < -0.5 }") == Cond(Attr("spanlike", "a"), "<", -0.5)
    assert span("{ .a >= 1e3 }") == Cond(Attr("spanlike", "a"), ">=", 1000)
    # An integral float equals the integer by string form, as TraceQL's numeric equality would.
    assert span("{ .a = 1.0 }") == Cond(Attr("spanlike", "a"), "=", 1)


def test_booleans_compare_by_string_form():
    assert span("{ .cache.hit = true }") == Cond(Attr("spanlike", "cache.hit"), "=", "true")
    assert span("{ .cache.hit != false }") == Cond(Attr("spanlike", "cache.hit"), "!=", "false")


def test_nil_is_existence():
    assert span("{ span.db.statement != nil }") == Cond(Attr("span", "db.statement"), "exists")


def test_string_literals():
    assert span(r'{ .a = "q\"uo\\te\n\u00e9" }') == Cond(Attr("spanlike", "a"), "=", 'q"uo\\te\né')
    assert span("{ .a = `raw\\n` }") == Cond(Attr("spanlike", "a"), "=", "raw\\n")


@pytest.mark.parametrize("q, field", [("name", NAME), ("span:name", NAME)])
def test_name(q, field):
    assert span(f'{{ {q} = "GET /" }}') == Cond(field, "=", "GET /")
    assert span(f'{{ {q} =~ "GET.*" }}') == Cond(field, "=~", "GET.*")


@pytest.mark.parametrize("value", ["error", "ok", "unset"])
def test_status(value):
    assert span(f"{{ status = {value} }}") == Cond(STATUS, "=", value)
    assert span(f"{{ span:status != {value} }}") == Cond(STATUS, "!=", value)


@pytest.mark.parametrize("value", ["unspecified", "internal", "server", "client", "producer", "consumer"])
def test_kind(value):
    assert span(f"{{ kind = {value} }}") == Cond(KIND, "=", value)
    assert span(f"{{ span:kind != {value} }}") == Cond(KIND, "!=", value)


@pytest.mark.parametrize("literal, ns", [
    ("100ms", 100 * MS), ("1.5s", 1500 * MS), ("250us", 250_000), ("250µs", 250_000), ("7ns", 7),
    ("2m", 120 * S), ("1h30m", 5400 * S), ("1d", 86400 * S), ("500", 500)])
def test_duration_literals(literal, ns):
    assert span(f"{{ duration > {literal} }}") == Cond(DURATION, ">", ns)


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_duration_operators(op):
    assert span(f"{{ span:duration {op} 10ms }}") == Cond(DURATION, op, 10 * MS)


def test_attribute_compared_with_a_duration_uses_nanoseconds():
    assert span("{ .wait > 1s }") == Cond(Attr("spanlike", "wait"), ">", S)


def test_and_or_and_parentheses():
    a, b, c = (Cond(Attr("spanlike", k), "=", 1) for k in "abc")
    assert span("{ .a = 1 && .b = 1 }") == And((a, b))
    assert span("{ .a = 1 || .b = 1 }") == Or((a, b))
    # && binds tighter than ||
    assert span("{ .a = 1 || .b = 1 && .c = 1 }") == Or((a, And((b, c))))
    assert span("{ (.a = 1 || .b = 1) && .c = 1 }") == And((Or((a, b)), c))
    # groups of the same operator flatten
    assert span("{ .a = 1 && (.b = 1 && .c = 1) }") == And((a, b, c))
    assert span("{ (.a = 1 || .b = 1) || .c = 1 }") == Or((a, b, c))
    assert span("{ ((.a = 1)) }") == a


def test_trace_duration():
    assert parse("{ trace:duration > 1s }") == Selection(trace_min_duration_ns=S + 1)
    assert parse("{ traceDuration >= 1s }") == Selection(trace_min_duration_ns=S)
    assert parse("{ trace:duration < 2s }") == Selection(trace_max_duration_ns=2 * S - 1)
    assert parse("{ trace:duration <= 2s }") == Selection(trace_max_duration_ns=2 * S)
    assert parse("{ trace:duration = 2s }") == Selection(trace_min_duration_ns=2 * S, trace_max_duration_ns=2 * S)
    # Several bounds intersect.
    sel = parse("{ trace:duration > 1s && trace:duration >= 3s && trace:duration < 9s && traceDuration <= 5s }")
    assert (sel.trace_min_duration_ns, sel.trace_max_duration_ns) == (3 * S, 5 * S)


def test_root_service_and_root_name():
    assert parse('{ trace:rootService = "fe" }') == Selection(root_service="fe")
    assert parse('{ rootServiceName = "fe" }') == Selection(root_service="fe")
    assert parse('{ trace:rootName = "GET /" }') == Selection(root_name="GET /")
    assert parse('{ rootName = "GET /" && rootName = "GET /" }') == Selection(root_name="GET /")


def test_trace_conditions_split_from_span_conditions():
    sel = parse('{ trace:rootService = "fe" && (.a = 1 || .b = 2) && trace:duration > 1s && status = error }')
    assert sel.span == And((Or((Cond(Attr("spanlike", "a"), "=", 1), Cond(Attr("spanlike", "b"), "=", 2))),
                            Cond(STATUS, "=", "error")))
    assert (sel.root_service, sel.trace_min_duration_ns) == ("fe", S + 1)
    # Parenthesized AND groups are still the top level.
    sel = parse("{ (trace:duration > 1s && .a = 1) && .b = 2 }")
    assert sel.trace_min_duration_ns == S + 1
    assert sel.span == And((Cond(Attr("spanlike", "a"), "=", 1), Cond(Attr("spanlike", "b"), "=", 2)))


def test_selection_builds_a_trace_query():
    sel = parse('{ name = "x" && trace:duration <= 1s && rootServiceName = "fe" && rootName = "r" }')
    q = TraceQuery(limit=7, **sel.query_fields())
    assert q == TraceQuery(span=Cond(NAME, "=", "x"), trace_max_duration_ns=S, root_service="fe",
                           root_name="r", limit=7)


# --------------------------------------------------------------------------- what the subset refuses


def refused(q: str) -> TraceQLError:
    with pytest.raises(TraceQLError) as info:
        parse(q)
    return info.value


@pytest.mark.parametrize("q, named, col", [
    ("{ .a = 1 } | count() > 2", "pipelines ('|'", 12),
    ("{ .a = 1 } | select(span.b)", "pipelines ('|'", 12),
    ("{ .a = 1 } | by(.b)", "pipelines ('|'", 12),
    ("{ .a = 1 } && { .b = 1 }", "spanset operators ('&&'", 12),
    ("{ .a = 1 } || { .b = 1 }", "spanset operators ('||'", 12),
    ("{ .a = 1 } >> { .b = 1 }", "structural operators ('>>'", 12),
    ("{ .a = 1 } > { .b = 1 }", "structural operators ('>'", 12),
    ("{ .a = 1 } ~ { .b = 1 }", "structural operators ('~'", 12),
    ("{ .a = 1 } !< { .b = 1 }", "structural operators ('!<'", 12),
    ("{ .a = 1 } &>> { .b = 1 }", "structural operators ('&>>'", 12),
    ("({ .a = 1 } && { .b = 1 })", "spanset operators ('&&'", 13),
    ("{ .a = 1 } with(most_recent=true)", "query hints", 12),
    ("count() > 1", "count() is not supported", 1),
    ("{ select(.a) }", "select() is not supported", 3),
    ("{ event.exception.message = \"x\" }", "'event.' scope", 3),
    ("{ link.kind = \"x\" }", "'link.' scope", 3),
    ("{ instrumentation.name = \"x\" }", "'instrumentation.' scope", 3),
    ("{ parent.span.a = 1 }", "'parent.' scope", 3),
    ('{ event:name = "x" }', "intrinsic 'event:name'", 3),
    ('{ link:traceID = "x" }', "intrinsic 'link:traceID'", 3),
    ('{ statusMessage = "x" }', "intrinsic 'statusMessage'", 3),
    ("{ childCount > 1 }", "intrinsic 'childCount'", 3),
    ('{ trace:id = "x" }', "intrinsic 'trace:id'", 3),
    ("{ .a + 1 = 2 }", "arithmetic ('+')", 6),
    ("{ .a = 1 * 2 }", "arithmetic ('*')", 10),
    ("{ !(.a = 1) }", "negation ('!')", 3),
    ("{ { .a = 1 } }", "nested spansets", 3),
    ('{ "x" = .a }', "static on the left", 3),
    ("{ .a = .b }", "comparing two fields", 8),
    ("{ duration > trace:duration }", "comparing two fields", 14),
    ("{ .a = nil }", "= nil", 6),
    ("{ .a }", ".a alone is not a condition", 6),
    ("{ foo = 1 }", "unknown intrinsic 'foo'", 3),
    ("{ .a = 1 || trace:duration > 1s }", "trace-level condition trace:duration", 13),
    ('{ (.a = 1 || rootServiceName = "x") && .b = 2 }', "trace-level condition rootServiceName", 14),
    ('{ trace:rootService = "a" && trace:rootService = "b" }', "two different values", 30),
])
def test_unsupported_constructs_are_named_with_their_column(q, named, col):
    err = refused(q)
    assert named in err.message
    assert err.pos == col - 1
    assert str(err).startswith(f"col {col}: ")


@pytest.mark.parametrize("q, named", [
    ('{ status = "error" }', "status compares with one of"),
    ("{ status = server }", "status compares with one of"),
    ("{ kind = error }", "kind compares with one of"),
    ("{ status > error }", "status takes = and !="),
    ("{ status =~ error }", "status takes = and !="),
    ("{ name > \"a\" }", "name takes = != =~ !~"),
    ("{ name = 1 }", "name compares with a string"),
    ('{ duration > "1s" }', "duration compares with a duration"),
    ("{ duration =~ 1s }", "duration takes = != > >= < <="),
    ('{ trace:duration > "x" }', "trace:duration compares with a duration"),
    ("{ trace:duration != 1s }", "trace:duration takes = > >= < <="),
    ("{ trace:rootService != \"x\" }", "trace:rootService takes = only"),
    ("{ rootName = 1 }", "rootName compares with a string"),
    ('{ .a > "x" }', "compares numbers"),
    ("{ .a =~ 1 }", "regular expression in a string"),
    ("{ .a = error }", "is a status or kind"),
    ('{ .a =~ "(" }', "bad regular expression"),
    ("{ trace:duration < 0 }", "can match no trace"),
])
def test_type_errors_are_named(q, named):
    assert named in refused(q).message


@pytest.mark.parametrize("q, named, col", [
    ("", "empty query", 1),
    ("   ", "empty query", 4),
    (".a = 1", "expected '{'", 1),
    ("{ .a = 1", "found the end of the query", 9),
    ("{ .a = }", "expected a value", 8),
    ("{ .a 1 }", "expected a comparison operator", 6),
    ("{ .a = 1 .b = 2 }", "expected '&&', '||' or '}'", 10),
    ("{ .a = 1 } }", "unexpected '}' after the spanset", 12),
    ("({ .a = 1 }", "expected ')'", 12),
    ('{ .a = "open }', "string is not terminated", 8),
    ("{ .a = 'x' }", "double quotes", 8),
    ('{ .a = "\\q" }', "invalid escape", 9),
    ("{ .a = 5xyz }", "neither a number nor a duration", 8),
    ("{ . = 1 }", "attribute name expected", 4),
    ("{ .a = 1 # }", "unexpected character '#'", 10),
    ("{ .a = - }", "expected a number after '-'", 10),
])
def test_syntax_errors_give_the_position(q, named, col):
    err = refused(q)
    assert named in err.message
    assert err.pos == col - 1


# --------------------------------------------------------------------------- tag names and q filters


@pytest.mark.parametrize("name, ident", [
    ("resource.service.name", Attr("resource", "service.name")),
    ("span.http.method", Attr("span", "http.method")),
    (".foo", Attr("spanlike", "foo")),
    ("event.exception.type", Attr("event", "exception.type")),
    ("link.x", Attr("link", "x")),
    ("instrumentation.name", Attr("scope", "name")),
    ("name", NAME), ("span:name", NAME), ("status", STATUS), ("kind", KIND), ("duration", DURATION),
    ("trace:rootService", "trace:rootService"), ("rootServiceName", "trace:rootService"),
    ("rootName", "trace:rootName"), ("traceDuration", "trace:duration"),
])
def test_parse_identifier(name, ident):
    assert parse_identifier(name) == ident


@pytest.mark.parametrize("name", ["foo", "service.name", "span.", "parent.x", ".a b", "{}", "", "statusMessage"])
def test_parse_identifier_refuses(name):
    with pytest.raises(TraceQLError):
        parse_identifier(name)


def test_service_filter():
    assert service_filter('{ resource.service.name = "fe" && span.x = 1 }') == "fe"
    assert service_filter('{ .service.name = "fe" }') == "fe"
    assert service_filter('{ resource.service.name = "fe" || .x = 1 }') is None
    assert service_filter('{ resource.service.name =~ "fe" }') is None
    assert service_filter("{ resource.cluster = }") is None  # incomplete queries narrow nothing
    assert service_filter("{}") is None
    assert service_filter(None) is None
