# cython: language_level=3
"""Decode stage, compiled twin of collector/codec/zipkin.py (same API, same bytes, same errors).

Every mapping rule is documented in the reference module.  This twin writes the common span
straight into a C buffer: from the parsed JSON objects (``json`` is already C) or from a
wire-level walk of proto3 ``ListOfSpans``, with no Python object per tag.  A span that needs
more than that — a special tag (resource, link, trace state, span.kind, endpoint keys), a
non-string JSON tag value, an odd type anywhere, a bad ID — is handed to the reference
functions, so the rare paths and every error message are the reference's own.  Both twins
validate a whole span before writing it and translate spans one at a time, in order, so the
first error reported for a body is the same.  The scope tags (``otel.scope.*``,
``otel.library.*``) and the status tags (``otel.status_code``, ``otel.status_description``,
``error``), which OpenTelemetry exporters put on nearly every span, are handled here in C by the
reference's ``tag_plan`` rules.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from _ext.pbreader cimport Field, expect, pb_fail, read_field
from _ext.pbwriter cimport *
from _ext.utf8 cimport utf8_valid

from collector.codec import otlp_writer as _w
from collector.codec import zipkin as _ref
from collector.errors import DecodeError

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL

cdef uint64_t MAX_US = 0xFFFFFFFFFFFFFFFF // 1000
cdef int[5] KIND_OTLP = [0, 3, 2, 4, 5]
cdef dict KIND_BY_NAME = _ref.KIND_BY_NAME
cdef frozenset SPECIAL = _ref.SPECIAL_TAGS
# Special tags this twin handles itself (scope and status); the others go to the reference.
cdef frozenset HANDLED = frozenset(_ref.SCOPE_KEYS + ("otel.status_code", "otel.status_description"))
cdef frozenset DEFERRED = SPECIAL - HANDLED
cdef dict STATUS_CODES = _ref.STATUS_CODES
assert HANDLED <= SPECIAL

# Reference functions used on rare paths and for every error.
_hex_id = _ref.hex_id
_parent_id = _ref.parent_id
_micros = _ref.micros
_check_end = _ref.check_end
_opt_str = _ref.opt_str
_opt_bool = _ref.opt_bool
_ip_text = _ref.ip_text
_ip_packed = _ref.ip_packed
_json_endpoint = _ref.json_endpoint
_json_span = _ref.json_span
_proto_span = _ref.proto_span
_span_bytes = _ref.span_bytes
_resource_bytes = _ref.resource_bytes
_event_bytes = _ref.event_bytes
_load_json = _ref.load_json

# Deferred special tag keys as UTF-8, bucketed by length, for the byte walks (no str per key).
cdef list _special_bytes = sorted({k.encode() for k in DEFERRED}, key=len)
DEF MAX_SPECIAL_LEN = 64
cdef Py_ssize_t[MAX_SPECIAL_LEN + 2] _bucket


def _init_buckets():
    cdef Py_ssize_t n, k = 0
    for n in range(MAX_SPECIAL_LEN + 2):
        while k < len(_special_bytes) and len(_special_bytes[k]) < n:
            k += 1
        _bucket[n] = k
    assert all(len(b) <= MAX_SPECIAL_LEN for b in _special_bytes)


_init_buckets()


cdef bint is_special(const uint8_t* p, Py_ssize_t n):
    """Whether a tag key (UTF-8) is one the reference's tag_plan must see (not scope/status)."""
    cdef Py_ssize_t k
    cdef bytes cand
    if n >= 10 and memcmp(p, b"otlp.link.", 10) == 0:
        return True
    if n > MAX_SPECIAL_LEN:
        return False
    for k in range(_bucket[n], _bucket[n + 1]):
        cand = <bytes>_special_bytes[k]
        if (<const uint8_t*><char*>cand)[0] == p[0] and memcmp(<char*>cand, p, n) == 0:
            return True
    return False


# ------------------------------------------------------------------ scope and status tags

cdef struct JStr:
    const uint8_t* p
    Py_ssize_t n


# Tag classes: what tag_plan does with a key.
DEF T_PLAIN = 0    # a string attribute
DEF T_DEFER = 1    # needs the reference (resource, link, trace state, span.kind, endpoint keys)
DEF T_SNAME = 2    # otel.scope.name
DEF T_LNAME = 3    # otel.library.name
DEF T_SVER = 4     # otel.scope.version
DEF T_LVER = 5     # otel.library.version
DEF T_SCODE = 6    # otel.status_code
DEF T_SDESC = 7    # otel.status_description
DEF T_ERROR = 8    # error
DEF N_CLASSES = 9


cdef int tag_class(const uint8_t* p, Py_ssize_t n) except -1:
    """The class of a tag key given as UTF-8."""
    if n == 5 and memcmp(p, b"error", 5) == 0:
        return T_ERROR
    if 15 <= n <= 23 and memcmp(p, b"otel.", 5) == 0:
        if n == 15 and memcmp(p, b"otel.scope.name", 15) == 0:
            return T_SNAME
        if n == 17 and memcmp(p, b"otel.library.name", 17) == 0:
            return T_LNAME
        if n == 18 and memcmp(p, b"otel.scope.version", 18) == 0:
            return T_SVER
        if n == 20 and memcmp(p, b"otel.library.version", 20) == 0:
            return T_LVER
        if n == 16 and memcmp(p, b"otel.status_code", 16) == 0:
            return T_SCODE
        if n == 23 and memcmp(p, b"otel.status_description", 23) == 0:
            return T_SDESC
    return T_DEFER if is_special(p, n) else T_PLAIN


cdef struct Plan:
    bint[N_CLASSES] has     # a tag of that class is present
    JStr[N_CLASSES] v       # its value
    JStr sname, sver, msg   # resolved: InstrumentationScope name/version, Status message
    int code                # resolved: Status code


cdef inline void plan_init(Plan* pl) noexcept:
    memset(pl, 0, sizeof(Plan))


cdef inline void plan_take(Plan* pl, int cls, const uint8_t* v, Py_ssize_t vn) noexcept:
    pl.has[cls] = True
    pl.v[cls].p = v
    pl.v[cls].n = vn


cdef inline bint jstr_is(JStr* s, const char* text, Py_ssize_t n) noexcept:
    return s.n == n and memcmp(s.p, text, n) == 0


cdef int status_code(JStr* s) noexcept:
    """STATUS_CODES of a value (UTF-8); other values → 0 (unset)."""
    if jstr_is(s, b"STATUS_CODE_ERROR", 17) or jstr_is(s, b"ERROR", 5):
        return 2
    if jstr_is(s, b"STATUS_CODE_OK", 14) or jstr_is(s, b"OK", 2):
        return 1
    return 0


def _check_status_codes():
    cdef JStr s
    cdef bytes raw
    for key, code in STATUS_CODES.items():
        raw = key.encode()
        s.p = <const uint8_t*><char*>raw
        s.n = len(raw)
        assert status_code(&s) == code, key


_check_status_codes()


cdef void plan_finish(Plan* pl) noexcept:
    """Resolve scope and status exactly as the reference's tag_plan does."""
    cdef JStr* e
    if pl.has[T_SNAME]:
        pl.sname = pl.v[T_SNAME]
    elif pl.has[T_LNAME]:
        pl.sname = pl.v[T_LNAME]
    if pl.has[T_SVER]:
        pl.sver = pl.v[T_SVER]
    elif pl.has[T_LVER]:
        pl.sver = pl.v[T_LVER]
    pl.code = 0
    if pl.has[T_SCODE]:
        pl.code = status_code(&pl.v[T_SCODE])
        if pl.has[T_SDESC]:
            pl.msg = pl.v[T_SDESC]
    if pl.has[T_ERROR]:
        e = &pl.v[T_ERROR]
        if jstr_is(e, b"true", 4):
            pl.code = 2
        elif not jstr_is(e, b"false", 5):
            pl.code = 2
            if pl.msg.n == 0:
                pl.msg = e[0]


cdef inline bint plan_drops(Plan* pl, int cls, const uint8_t* v, Py_ssize_t vn) noexcept:
    """Whether tag_plan removes a tag of this class and value from the attributes."""
    if cls == T_PLAIN:
        return False
    if T_SNAME <= cls <= T_SCODE:
        return True
    if cls == T_SDESC:
        return pl.has[T_SCODE]
    if cls == T_ERROR:
        return vn == 4 and memcmp(v, b"true", 4) == 0
    return False


DEF MAX_GROUP_CACHE = 32

cdef struct GroupEntry:
    JStr svc, sname, sver
    Py_ssize_t g


cdef struct GroupCache:
    GroupEntry[MAX_GROUP_CACHE] e
    Py_ssize_t n


# ------------------------------------------------------------------------------ writers

cdef inline int w_str(PbBuf* b, uint32_t number, object s) except -1:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    return pb_bytes_field(b, number, <const uint8_t*>p, n, False)


cdef inline int kv_raw(PbBuf* b, const uint8_t* k, Py_ssize_t kn, const uint8_t* v,
                       Py_ssize_t vn) except -1:
    """Span.attributes entry: KeyValue{1 key, 2 AnyValue{1 string_value}}."""
    cdef Py_ssize_t m = pb_begin(b, 9)
    cdef Py_ssize_t m2
    pb_bytes_field(b, 1, k, kn, False)
    m2 = pb_begin(b, 2)
    pb_bytes_field(b, 1, v, vn, True)
    pb_end(b, m2, 2, True)
    return pb_end(b, m, 9, True)


cdef inline int w_any_str(PbBuf* b, object value) except -1:
    """KeyValue.value = AnyValue{1 string_value}, written even when empty."""
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(value, &n)
    cdef Py_ssize_t m = pb_begin(b, 2)
    pb_bytes_field(b, 1, <const uint8_t*>p, n, True)
    return pb_end(b, m, 2, True)


cdef inline int kv_str(PbBuf* b, object key, object value) except -1:
    cdef Py_ssize_t kn, vn
    cdef const char* k = PyUnicode_AsUTF8AndSize(key, &kn)
    cdef const char* v = PyUnicode_AsUTF8AndSize(value, &vn)
    return kv_raw(b, <const uint8_t*>k, kn, <const uint8_t*>v, vn)


cdef inline int kv_int(PbBuf* b, const char* key, Py_ssize_t kn, uint64_t v) except -1:
    cdef Py_ssize_t m = pb_begin(b, 9)
    cdef Py_ssize_t m2
    pb_bytes_field(b, 1, <const uint8_t*>key, kn, False)
    m2 = pb_begin(b, 2)
    pb_tag(b, 3, 0)
    pb_varint(b, v)
    pb_end(b, m2, 2, True)
    return pb_end(b, m, 9, True)


cdef inline int kv_true(PbBuf* b, const char* key, Py_ssize_t kn) except -1:
    cdef Py_ssize_t m = pb_begin(b, 9)
    cdef Py_ssize_t m2
    pb_bytes_field(b, 1, <const uint8_t*>key, kn, False)
    m2 = pb_begin(b, 2)
    pb_tag(b, 2, 0)
    pb_varint(b, 1)
    pb_end(b, m2, 2, True)
    return pb_end(b, m, 9, True)


cdef inline int w_event(PbBuf* b, uint64_t time_ns, const uint8_t* v, Py_ssize_t vn) except -1:
    """Span.events entry: Event{1 time, 2 name}."""
    cdef Py_ssize_t m = pb_begin(b, 11)
    pb_fixed64_field(b, 1, time_ns)
    pb_bytes_field(b, 2, v, vn, False)
    return pb_end(b, m, 11, True)


cdef inline int w_raw_field(PbBuf* b, uint32_t number, bytes data) except -1:
    return pb_bytes_field(b, number, <const uint8_t*><char*>data, len(data), True)


cdef inline int w_status(PbBuf* b, int code, const uint8_t* msg, Py_ssize_t mn) except -1:
    cdef Py_ssize_t m = pb_begin(b, 15)
    pb_bytes_field(b, 2, msg, mn, False)
    pb_varint_field(b, 3, <uint64_t>code)
    return pb_end(b, m, 15, False)


cdef int w_ip4(PbBuf* b, const char* key, Py_ssize_t kn, const uint8_t* ip) except -1:
    """A string attribute holding dotted IPv4 text, formatted in C."""
    cdef char[16] text
    cdef int n = 0, k, v, started
    for k in range(4):
        v = ip[k]
        if v >= 100:
            text[n] = <char>(48 + v // 100); n += 1
        if v >= 10:
            text[n] = <char>(48 + (v // 10) % 10); n += 1
        text[n] = <char>(48 + v % 10); n += 1
        if k < 3:
            text[n] = 46; n += 1
    return kv_raw(b, <const uint8_t*>key, kn, <const uint8_t*>text, n)


# ------------------------------------------------------------------------ span collection

cdef Py_ssize_t _last_slow = 0


def _slow_spans_last_call():
    """For tests: how many spans of the last successful call were written by the reference."""
    return _last_slow


cdef struct SpanRef:
    Py_ssize_t off       # span body offset in the span buffer
    Py_ssize_t len       # span body length
    Py_ssize_t next      # next span of the same group, -1 at the end


cdef class _Out:
    """Span bodies in one buffer, grouped by (resource, scope) in order of first appearance."""
    cdef PbBuf spans
    cdef SpanRef* refs
    cdef Py_ssize_t nrefs, cap
    cdef dict groups          # (resource items, scope) → group index
    cdef dict fast            # service name → group index of (service resource, empty scope)
    cdef dict resources       # resource items → resource index
    cdef list res_bytes       # resource index → Resource payload
    cdef list group_res       # group index → resource index
    cdef list res_groups      # resource index → its group indexes, in order
    cdef list group_scope     # group index → InstrumentationScope payload
    cdef list head            # group index → first span
    cdef list tail            # group index → last span
    cdef dict scoped          # (service, scope name, scope version) → group index
    cdef Py_ssize_t nslow     # spans written by the reference

    def __cinit__(self):
        pb_init(&self.spans, 4096)
        self.refs = NULL
        self.nrefs = self.cap = 0
        self.groups = {}
        self.fast = {}
        self.resources = {}
        self.res_bytes = []
        self.group_res = []
        self.res_groups = []
        self.group_scope = []
        self.head = []
        self.tail = []
        self.scoped = {}
        self.nslow = 0

    def __dealloc__(self):
        pb_free(&self.spans)
        PyMem_Free(self.refs)

    cdef Py_ssize_t group(self, tuple resource, tuple scope, object payload=None) except -1:
        """Index of the (resource, scope) group; ``payload`` is the Resource bytes when known."""
        key = (resource, scope)
        g = self.groups.get(key)
        if g is not None:
            return <Py_ssize_t>g
        r = self.resources.get(resource)
        if r is None:
            r = len(self.res_bytes)
            self.res_bytes.append(_resource_bytes(resource) if payload is None else payload)
            self.res_groups.append([])
            self.resources[resource] = r
        g = len(self.group_res)
        self.group_res.append(r)
        self.res_groups[r].append(g)
        self.group_scope.append(_w.f_str(1, scope[0]) + _w.f_str(2, scope[1])
                                if scope[0] or scope[1] else b"")
        self.head.append(-1)
        self.tail.append(-1)
        self.groups[key] = g
        return <Py_ssize_t>g

    cdef Py_ssize_t fast_group(self, object service) except -1:
        """The group of a span whose resource is just its service name, with no scope."""
        cdef PbBuf rb
        cdef Py_ssize_t m
        g = self.fast.get(service)
        if g is None:
            if service:
                pb_init(&rb, 64)
                try:  # Resource.attributes = [KeyValue{service.name: service}], as resource_bytes()
                    m = pb_begin(&rb, 1)
                    pb_bytes_field(&rb, 1, <const uint8_t*>b"service.name", 12, False)
                    w_any_str(&rb, service)
                    pb_end(&rb, m, 1, True)
                    payload = pb_bytes(&rb)
                finally:
                    pb_free(&rb)
                g = self.group(((u"service.name", service),), (u"", u""), payload)
            else:
                g = self.group((), (u"", u""), b"")
            self.fast[service] = g
        return <Py_ssize_t>g

    cdef Py_ssize_t scoped_group(self, object service, object sname, object sver) except -1:
        """The group of a span whose resource is just its service name, in scope (sname, sver)."""
        if not sname and not sver:
            return self.fast_group(service)
        key = (service, sname, sver)
        g = self.scoped.get(key)
        if g is None:
            g = self.group(((u"service.name", service),) if service else (), (sname, sver))
            self.scoped[key] = g
        return <Py_ssize_t>g

    cdef int add(self, Py_ssize_t g, Py_ssize_t off) except -1:
        """Record the span body written at spans[off:] as a member of group ``g``."""
        cdef SpanRef* grown
        cdef Py_ssize_t k = self.nrefs
        if k == self.cap:
            self.cap = self.cap * 2 if self.cap else 64
            grown = <SpanRef*>PyMem_Realloc(self.refs, sizeof(SpanRef) * self.cap)
            if grown == NULL:
                raise MemoryError()
            self.refs = grown
        self.refs[k].off = off
        self.refs[k].len = self.spans.len - off
        self.refs[k].next = -1
        if self.head[g] == -1:
            self.head[g] = k
        else:
            self.refs[<Py_ssize_t>self.tail[g]].next = k
        self.tail[g] = k
        self.nrefs += 1
        return 0

    cdef int add_python(self, tuple got) except -1:
        """A span translated by the reference: (resource, scope, body)."""
        cdef Py_ssize_t g = self.group(got[0], got[1])
        cdef Py_ssize_t off = self.spans.len
        cdef bytes body = got[2]
        self.nslow += 1
        pb_raw(&self.spans, <const uint8_t*><char*>body, len(body))
        return self.add(g, off)

    cdef bytes finish(self):
        global _last_slow
        cdef PbBuf out
        cdef Py_ssize_t r, g, k, m, m2
        cdef bytes data
        _last_slow = self.nslow
        pb_init(&out, self.spans.len + 64 * len(self.group_res) + 64)
        try:
            for r in range(len(self.res_bytes)):
                m = pb_begin(&out, 1)
                w_raw_field(&out, 1, self.res_bytes[r])
                for g in self.res_groups[r]:
                    m2 = pb_begin(&out, 2)
                    data = self.group_scope[g]
                    pb_bytes_field(&out, 1, <const uint8_t*><char*>data, len(data), False)
                    k = self.head[g]
                    while k != -1:
                        pb_bytes_field(&out, 2, self.spans.data + self.refs[k].off, self.refs[k].len, True)
                        k = self.refs[k].next
                    pb_end(&out, m2, 2, True)
                pb_end(&out, m, 1, True)
            return pb_bytes(&out)
        finally:
            pb_free(&out)


cdef inline bint jstr_eq(JStr* a, JStr* b) noexcept:
    return a.n == b.n and (a.n == 0 or memcmp(a.p, b.p, a.n) == 0)


cdef inline str jstr_text(JStr* s):
    return PyUnicode_DecodeUTF8(<const char*>s.p, s.n, NULL) if s.n else u""


cdef Py_ssize_t cached_group(_Out out, GroupCache* cache, JStr* svc, JStr* sname,
                             JStr* sver) except -1:
    """out.scoped_group of UTF-8 strings, through a small per-call cache keyed by their bytes
    (which must stay in place for the call)."""
    cdef Py_ssize_t k, g
    cdef GroupEntry* e
    for k in range(cache.n):
        e = &cache.e[k]
        if jstr_eq(&e.svc, svc) and jstr_eq(&e.sname, sname) and jstr_eq(&e.sver, sver):
            return e.g
    g = out.scoped_group(jstr_text(svc), jstr_text(sname), jstr_text(sver))
    if cache.n < MAX_GROUP_CACHE:
        e = &cache.e[cache.n]
        e.svc = svc[0]
        e.sname = sname[0]
        e.sver = sver[0]
        e.g = g
        cache.n += 1
    return g


# -------------------------------------------------------------------------------- v2 JSON

cdef inline int hexdig(uint8_t c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef bint parse_hex(object v, Py_ssize_t nhex, uint8_t* out):
    """Parse a str of exactly ``nhex`` hex digits into out; False when it is anything else."""
    cdef const uint8_t* p
    cdef Py_ssize_t k
    cdef int hi, lo
    if type(v) is not str or not PyUnicode_IS_ASCII(v) or len(<str>v) != nhex:
        return False
    p = <const uint8_t*>PyUnicode_DATA(v)
    for k in range(0, nhex, 2):
        hi = hexdig(p[k])
        lo = hexdig(p[k + 1])
        if hi < 0 or lo < 0:
            return False
        out[k >> 1] = <uint8_t>((hi << 4) | lo)
    return True


cdef inline bint all_zero(const uint8_t* p, Py_ssize_t n):
    cdef Py_ssize_t k
    for k in range(n):
        if p[k]:
            return False
    return True


cdef inline uint64_t json_micros(object v, Py_ssize_t i, str field) except? 0xFFFFFFFFFFFFFFFF:
    if v is None:
        return 0
    if type(v) is int and 0 <= v <= MAX_US:
        return <uint64_t>v
    return <uint64_t>_micros(v, f"span[{i}].{field}")


cdef struct JEp:
    bint present
    uint64_t port


cdef int json_endpoint(object ep, Py_ssize_t i, str field, JEp* out, list strs) except -1:
    """Check an endpoint; strs gets [service, ip] (str) for the writer."""
    out.present = False
    out.port = 0
    if ep is None:
        strs.append(u"")
        strs.append(u"")
        return 0
    if type(ep) is not dict:
        _json_endpoint(ep, i, field)  # raises
    svc = (<dict>ep).get(u"serviceName")
    ip4 = (<dict>ep).get(u"ipv4")
    ip6 = (<dict>ep).get(u"ipv6")
    port = (<dict>ep).get(u"port")
    if not ((svc is None or type(svc) is str) and (ip4 is None or type(ip4) is str)
            and (ip6 is None or type(ip6) is str) and (port is None or type(port) is int)):
        _json_endpoint(ep, i, field)  # raises
    out.present = True
    if port is not None and 0 < port < 65536:
        out.port = <uint64_t>port
    strs.append(svc if svc is not None else u"")
    if ip6:
        strs.append(_ip_text(ip6))
    elif ip4:
        strs.append(_ip_text(ip4))
    else:
        strs.append(u"")
    return 0


cdef int json_span(_Out out, object s, Py_ssize_t i) except -1:
    cdef uint8_t[16] tid
    cdef uint8_t[8] sid
    cdef uint8_t[8] pid
    cdef bint has_parent = False, slow = False, handled = False, has_code = False, shared, debug
    cdef uint64_t ts, dur
    cdef int kind = 0, code = 0
    cdef JEp local, remote
    cdef Py_ssize_t off, g, n
    cdef bytes raw
    cdef list strs = []
    cdef PbBuf* b
    cdef const char* p
    cdef dict d, td
    if type(s) is not dict:
        _json_span(s, i)  # raises
    d = <dict>s
    # --- validate, in the reference's order
    v = d.get(u"traceId")
    memset(tid, 0, 16)
    if not ((parse_hex(v, 32, tid) or parse_hex(v, 16, tid + 8)) and not all_zero(tid, 16)):
        raw = _hex_id(v, i, u"traceId", (16, 32))
        memcpy(tid, <char*>raw, 16)
    v = d.get(u"id")
    if not (parse_hex(v, 16, sid) and not all_zero(sid, 8)):
        raw = _hex_id(v, i, u"id", (16,))
        memcpy(sid, <char*>raw, 8)
    v = d.get(u"parentId")
    if v is not None:
        if parse_hex(v, 16, pid):
            has_parent = not all_zero(pid, 8) and memcmp(pid, sid, 8) != 0
        else:
            raw = _parent_id(v, i, (<char*>sid)[:8])
            has_parent = len(raw) == 8
            if has_parent:
                memcpy(pid, <char*>raw, 8)
    v = d.get(u"kind")
    if v is not None:
        if type(v) is not str:
            _opt_str(v, f"span[{i}].kind")  # raises
        k = KIND_BY_NAME.get(v)
        if k is None:
            k = KIND_BY_NAME.get((<str>v).upper(), 0)
        kind = <int>k
    name = d.get(u"name")
    if name is None:
        name = u""
    elif type(name) is not str:
        _opt_str(name, f"span[{i}].name")  # raises
    ts = json_micros(d.get(u"timestamp"), i, u"timestamp")
    dur = json_micros(d.get(u"duration"), i, u"duration")
    if ts + dur > MAX_US:
        _check_end(ts, dur, i)  # raises
    json_endpoint(d.get(u"localEndpoint"), i, u"localEndpoint", &local, strs)
    json_endpoint(d.get(u"remoteEndpoint"), i, u"remoteEndpoint", &remote, strs)
    annotations = d.get(u"annotations")
    if annotations is not None:
        if type(annotations) is not list:
            _json_span(s, i)  # raises
        for a in <list>annotations:
            if type(a) is not dict:
                _json_span(s, i)  # raises
            v = (<dict>a).get(u"timestamp")
            if not (v is None or (type(v) is int and 0 <= v <= MAX_US)):
                _json_span(s, i)  # raises, or the value is fine (a float, a digit string)
                slow = True
            v = (<dict>a).get(u"value")
            if v is not None and type(v) is not str:
                _json_span(s, i)  # raises
    tags = d.get(u"tags")
    if tags is not None:
        if type(tags) is not dict:
            _json_span(s, i)  # raises
        for k, v in (<dict>tags).items():
            if type(v) is not str:
                _json_span(s, i)  # raises, or v becomes text: the reference writes the span
                slow = True
            elif k in SPECIAL:
                if k in HANDLED:
                    handled = True
                else:
                    slow = True
            elif (<str>k).startswith(u"otlp.link."):
                slow = True
    shared_v = d.get(u"shared")
    debug_v = d.get(u"debug")
    if not ((shared_v is None or shared_v is True or shared_v is False)
            and (debug_v is None or debug_v is True or debug_v is False)):
        _json_span(s, i)  # raises
    if slow:
        out.add_python(_span_bytes(_json_span(s, i), i))
        return 0
    shared = shared_v is True
    debug = debug_v is True
    # --- scope and status (tag_plan's rules)
    service = strs[0]
    message = u""
    if handled:
        td = <dict>tags
        v = td.get(u"otel.scope.name")
        sname = v if v is not None else (td.get(u"otel.library.name") or u"")
        v = td.get(u"otel.scope.version")
        sver = v if v is not None else (td.get(u"otel.library.version") or u"")
        v = td.get(u"otel.status_code")
        if v is not None:
            has_code = True
            code = <int>STATUS_CODES.get(v, 0)
            v = td.get(u"otel.status_description")
            if v is not None:
                message = v
        g = out.scoped_group(service, sname, sver)
    else:
        g = out.fast_group(service)
    error = None
    if tags:
        error = (<dict>tags).get(u"error")
        if error is not None:
            if error == u"true":
                code = 2
            elif error != u"false":
                code = 2
                if not message:
                    message = error
    # --- write
    off = out.spans.len
    b = &out.spans
    pb_bytes_field(b, 1, tid, 16, False)
    pb_bytes_field(b, 2, sid, 8, False)
    if has_parent:
        pb_bytes_field(b, 4, pid, 8, False)
    w_str(b, 5, name)
    pb_varint_field(b, 6, <uint64_t>KIND_OTLP[kind])
    pb_fixed64_field(b, 7, ts * 1000)
    pb_fixed64_field(b, 8, (ts + dur) * 1000)
    if tags:
        for k, v in (<dict>tags).items():
            if k == u"error":
                if v == u"true":
                    continue
            elif handled and k in HANDLED and (has_code or k != u"otel.status_description"):
                continue
            kv_str(b, k, v)
    write_endpoints(b, &local, &remote, strs, ts == 0, shared, debug)
    if annotations:
        for a in <list>annotations:
            v = (<dict>a).get(u"value")
            t = (<dict>a).get(u"timestamp")
            n = 0
            if v is None:
                v = u""
            if u"|" in <str>v:
                w_raw_field(b, 11, _event_bytes((t or 0) * 1000, v))
            else:
                p = PyUnicode_AsUTF8AndSize(v, &n)
                w_event(b, (<uint64_t>t if t is not None else 0) * 1000, <const uint8_t*>p, n)
    if code or message:
        p = PyUnicode_AsUTF8AndSize(message, &n)
        w_status(b, code, <const uint8_t*>p, n)
    out.add(g, off)
    return 0


cdef int write_endpoints(PbBuf* b, JEp* local, JEp* remote, list strs, bint start_absent,
                         bint shared, bint debug) except -1:
    """net.host.*, peer.service, net.peer.*, the absent-start flag, zipkin.shared/debug."""
    if local.present:
        if strs[1]:
            kv_str(b, u"net.host.ip", strs[1])
        if local.port:
            kv_int(b, b"net.host.port", 13, local.port)
    if remote.present:
        if strs[2]:
            kv_str(b, u"peer.service", strs[2])
        if strs[3]:
            kv_str(b, u"net.peer.ip", strs[3])
        if remote.port:
            kv_int(b, b"net.peer.port", 13, remote.port)
    if start_absent:
        kv_true(b, b"otel.zipkin.absentField.startTime", 33)
    if shared:
        kv_true(b, b"zipkin.shared", 13)
    if debug:
        kv_true(b, b"zipkin.debug", 12)
    return 0


cdef str _surrogate_message(Py_ssize_t i):
    return f"span[{i}]: text is not valid Unicode (a lone surrogate)"


def v2_spans_to_otlp(list spans):
    """OTLP request bytes of parsed v2 JSON spans (a list of dicts)."""
    cdef _Out out = _Out()
    cdef Py_ssize_t i
    for i in range(len(spans)):
        try:
            json_span(out, spans[i], i)
        except UnicodeEncodeError:
            raise DecodeError(_surrogate_message(i)) from None
    return out.finish()


def v2_json_to_otlp(body):
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin v2 JSON body (an array of spans)."""
    cdef _Out out
    if type(body) is bytes:
        out = _Out()
        if j_request(out, <bytes>body):
            return out.finish()
    return v2_spans_to_otlp(_load_json(body))


# ------------------------------------------------------------------------------ v2 proto3

cdef inline int check_utf8(const uint8_t* p, Field* f, str ctx, str name, Py_ssize_t kpos) except -1:
    if not utf8_valid(p + f.start, f.end - f.start):
        pb_fail(f"{ctx}.{name}: invalid UTF-8 (at offset {kpos})")
    return 0


cdef inline int32_t as_int32(uint64_t v):
    return <int32_t>(<uint32_t>(v & 0xFFFFFFFF))


cdef struct PEp:
    bint present
    Py_ssize_t svc_off, svc_len, ip4_off, ip4_len, ip6_off, ip6_len
    int32_t port


cdef struct PAnn:
    uint64_t ts
    Py_ssize_t off, len


cdef struct PTag:
    Py_ssize_t koff, klen, voff, vlen
    int cls


cdef struct PSpan:
    Py_ssize_t tid_off, tid_len, pid_off, pid_len, sid_off, sid_len, name_off, name_len
    uint64_t kind, ts, dur
    bint debug, shared
    PEp local, remote


cdef struct Scratch:
    PAnn* anns
    Py_ssize_t nanns, cap_anns
    PTag* tags
    Py_ssize_t ntags, cap_tags
    GroupCache groups


cdef int proto_endpoint(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, PEp* ep) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    ep.present = True
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, u"Endpoint")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, u"Endpoint", u"service_name", kpos)
            check_utf8(p, &f, u"Endpoint", u"service_name", kpos)
            ep.svc_off = f.start
            ep.svc_len = f.end - f.start
        elif f.number == 2:
            expect(f.wt, 2, u"Endpoint", u"ipv4", kpos)
            ep.ip4_off = f.start
            ep.ip4_len = f.end - f.start
        elif f.number == 3:
            expect(f.wt, 2, u"Endpoint", u"ipv6", kpos)
            ep.ip6_off = f.start
            ep.ip6_len = f.end - f.start
        elif f.number == 4:
            expect(f.wt, 0, u"Endpoint", u"port", kpos)
            ep.port = as_int32(f.value)
    return 0


cdef int add_ann(Scratch* sc, uint64_t ts, Py_ssize_t off, Py_ssize_t n) except -1:
    cdef PAnn* grown
    if sc.nanns == sc.cap_anns:
        sc.cap_anns = sc.cap_anns * 2 if sc.cap_anns else 16
        grown = <PAnn*>PyMem_Realloc(sc.anns, sizeof(PAnn) * sc.cap_anns)
        if grown == NULL:
            raise MemoryError()
        sc.anns = grown
    sc.anns[sc.nanns].ts = ts
    sc.anns[sc.nanns].off = off
    sc.anns[sc.nanns].len = n
    sc.nanns += 1
    return 0


cdef int add_tag(Scratch* sc, const uint8_t* p, Py_ssize_t koff, Py_ssize_t klen, Py_ssize_t voff,
                 Py_ssize_t vlen) except -1:
    """A map entry; a repeated key keeps its first place and takes the last value (dict order)."""
    cdef PTag* grown
    cdef Py_ssize_t k
    for k in range(sc.ntags):
        if sc.tags[k].klen == klen and memcmp(p + sc.tags[k].koff, p + koff, klen) == 0:
            sc.tags[k].voff = voff
            sc.tags[k].vlen = vlen
            return 0
    if sc.ntags == sc.cap_tags:
        sc.cap_tags = sc.cap_tags * 2 if sc.cap_tags else 16
        grown = <PTag*>PyMem_Realloc(sc.tags, sizeof(PTag) * sc.cap_tags)
        if grown == NULL:
            raise MemoryError()
        sc.tags = grown
    sc.tags[sc.ntags].koff = koff
    sc.tags[sc.ntags].klen = klen
    sc.tags[sc.ntags].voff = voff
    sc.tags[sc.ntags].vlen = vlen
    sc.ntags += 1
    return 0


cdef int proto_span(_Out out, const uint8_t* p, bytes buf, Py_ssize_t start, Py_ssize_t end,
                    Py_ssize_t i, Scratch* sc) except -1:
    cdef PSpan s
    cdef Field f, f2
    cdef Py_ssize_t pos = start, kpos, q, k2, off, k, aoff, alen
    cdef uint64_t at
    cdef bint slow = False, has_parent
    cdef const uint8_t* tid
    cdef uint8_t[16] padded
    cdef Py_ssize_t g
    cdef PbBuf* b
    cdef PTag* t
    cdef Plan pl
    cdef JStr svc
    memset(&s, 0, sizeof(PSpan))
    sc.nanns = 0
    sc.ntags = 0
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, u"Span")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, u"Span", u"trace_id", kpos)
            s.tid_off = f.start; s.tid_len = f.end - f.start
        elif f.number == 2:
            expect(f.wt, 2, u"Span", u"parent_id", kpos)
            s.pid_off = f.start; s.pid_len = f.end - f.start
        elif f.number == 3:
            expect(f.wt, 2, u"Span", u"id", kpos)
            s.sid_off = f.start; s.sid_len = f.end - f.start
        elif f.number == 4:
            expect(f.wt, 0, u"Span", u"kind", kpos)
            s.kind = f.value if f.value <= 4 else 0
        elif f.number == 5:
            expect(f.wt, 2, u"Span", u"name", kpos)
            check_utf8(p, &f, u"Span", u"name", kpos)
            s.name_off = f.start; s.name_len = f.end - f.start
        elif f.number == 6:
            expect(f.wt, 1, u"Span", u"timestamp", kpos)
            memcpy(&s.ts, p + f.start, 8)
        elif f.number == 7:
            expect(f.wt, 0, u"Span", u"duration", kpos)
            s.dur = f.value
        elif f.number == 8:
            expect(f.wt, 2, u"Span", u"local_endpoint", kpos)
            proto_endpoint(p, f.start, f.end, &s.local)
        elif f.number == 9:
            expect(f.wt, 2, u"Span", u"remote_endpoint", kpos)
            proto_endpoint(p, f.start, f.end, &s.remote)
        elif f.number == 10:
            expect(f.wt, 2, u"Span", u"annotations", kpos)
            at = 0
            aoff = alen = 0
            q = f.start
            while q < f.end:
                k2 = q
                read_field(p, q, f.end, &f2, u"Annotation")
                q = f2.next
                if f2.number == 1:
                    expect(f2.wt, 1, u"Annotation", u"timestamp", k2)
                    memcpy(&at, p + f2.start, 8)
                elif f2.number == 2:
                    expect(f2.wt, 2, u"Annotation", u"value", k2)
                    check_utf8(p, &f2, u"Annotation", u"value", k2)
                    aoff = f2.start; alen = f2.end - f2.start
            add_ann(sc, at, aoff, alen)
        elif f.number == 11:
            expect(f.wt, 2, u"Span", u"tags", kpos)
            aoff = alen = 0
            k = f.start   # key offset
            k2 = 0        # key length
            q = f.start
            while q < f.end:
                kpos = q
                read_field(p, q, f.end, &f2, u"Span.TagsEntry")
                q = f2.next
                if f2.number == 1:
                    expect(f2.wt, 2, u"Span.TagsEntry", u"key", kpos)
                    check_utf8(p, &f2, u"Span.TagsEntry", u"key", kpos)
                    k = f2.start; k2 = f2.end - f2.start
                elif f2.number == 2:
                    expect(f2.wt, 2, u"Span.TagsEntry", u"value", kpos)
                    check_utf8(p, &f2, u"Span.TagsEntry", u"value", kpos)
                    aoff = f2.start; alen = f2.end - f2.start
            add_tag(sc, p, k, k2, aoff, alen)
        elif f.number == 12:
            expect(f.wt, 0, u"Span", u"debug", kpos)
            s.debug = f.value != 0
        elif f.number == 13:
            expect(f.wt, 0, u"Span", u"shared", kpos)
            s.shared = f.value != 0
    # Semantic checks, in the reference's order.
    if s.tid_len == 0:
        pb_fail(f"span[{i}].trace_id: missing")
    if s.tid_len != 8 and s.tid_len != 16:
        pb_fail(f"span[{i}].trace_id: {s.tid_len} bytes, expected 8 or 16")
    if all_zero(p + s.tid_off, s.tid_len):
        pb_fail(f"span[{i}].trace_id: all zeros")
    if s.sid_len == 0:
        pb_fail(f"span[{i}].id: missing")
    if s.sid_len != 8:
        pb_fail(f"span[{i}].id: {s.sid_len} bytes, expected 8")
    if all_zero(p + s.sid_off, 8):
        pb_fail(f"span[{i}].id: all zeros")
    if s.pid_len and s.pid_len != 8:
        pb_fail(f"span[{i}].parent_id: {s.pid_len} bytes, expected 8")
    has_parent = (s.pid_len == 8 and not all_zero(p + s.pid_off, 8)
                  and memcmp(p + s.pid_off, p + s.sid_off, 8) != 0)
    if s.ts > MAX_US:
        pb_fail(f"span[{i}].timestamp: {s.ts} is out of range")
    if s.dur > MAX_US:
        pb_fail(f"span[{i}].duration: {s.dur} is out of range")
    if s.ts + s.dur > MAX_US:
        _check_end(s.ts, s.dur, i)  # raises
    for k in range(sc.nanns):
        if sc.anns[k].ts > MAX_US:
            pb_fail(f"span[{i}].annotations[{k}].timestamp: {sc.anns[k].ts} is out of range")
    # Scope and status tags are planned here; anything else beyond plain attributes goes to
    # the reference.
    plan_init(&pl)
    for k in range(sc.ntags):
        t = &sc.tags[k]
        t.cls = tag_class(p + t.koff, t.klen)
        if t.cls == T_DEFER:
            slow = True
            break
        if t.cls != T_PLAIN:
            plan_take(&pl, t.cls, p + t.voff, t.vlen)
    if slow:
        out.add_python(_span_bytes(_proto_span(buf, start, end, i), i))
        return 0
    plan_finish(&pl)
    # --- write
    svc.p = p + s.local.svc_off
    svc.n = s.local.svc_len if s.local.present else 0
    g = cached_group(out, &sc.groups, &svc, &pl.sname, &pl.sver)
    off = out.spans.len
    b = &out.spans
    if s.tid_len == 8:
        memset(padded, 0, 8)
        memcpy(padded + 8, p + s.tid_off, 8)
        pb_bytes_field(b, 1, padded, 16, False)
    else:
        pb_bytes_field(b, 1, p + s.tid_off, 16, False)
    pb_bytes_field(b, 2, p + s.sid_off, 8, False)
    if has_parent:
        pb_bytes_field(b, 4, p + s.pid_off, 8, False)
    pb_bytes_field(b, 5, p + s.name_off, s.name_len, False)
    pb_varint_field(b, 6, <uint64_t>KIND_OTLP[s.kind])
    pb_fixed64_field(b, 7, s.ts * 1000)
    pb_fixed64_field(b, 8, (s.ts + s.dur) * 1000)
    for k in range(sc.ntags):
        t = &sc.tags[k]
        if not plan_drops(&pl, t.cls, p + t.voff, t.vlen):
            kv_raw(b, p + t.koff, t.klen, p + t.voff, t.vlen)
    proto_endpoint_attrs(b, p, &s.local, True)
    proto_endpoint_attrs(b, p, &s.remote, False)
    if s.ts == 0:
        kv_true(b, b"otel.zipkin.absentField.startTime", 33)
    if s.shared:
        kv_true(b, b"zipkin.shared", 13)
    if s.debug:
        kv_true(b, b"zipkin.debug", 12)
    for k in range(sc.nanns):
        if memchr_pipe(p + sc.anns[k].off, sc.anns[k].len):
            w_raw_field(b, 11, _event_bytes(
                sc.anns[k].ts * 1000,
                PyUnicode_DecodeUTF8(<char*>p + sc.anns[k].off, sc.anns[k].len, NULL)))
        else:
            w_event(b, sc.anns[k].ts * 1000, p + sc.anns[k].off, sc.anns[k].len)
    w_status(b, pl.code, pl.msg.p, pl.msg.n)
    out.add(g, off)
    return 0


cdef inline bint memchr_pipe(const uint8_t* p, Py_ssize_t n):
    cdef Py_ssize_t k
    for k in range(n):
        if p[k] == 124:
            return True
    return False


cdef int proto_endpoint_attrs(PbBuf* b, const uint8_t* p, PEp* ep, bint local) except -1:
    if not ep.present:
        return 0
    if not local and ep.svc_len:
        kv_raw(b, <const uint8_t*>b"peer.service", 12, p + ep.svc_off, ep.svc_len)
    if ep.ip6_len == 16:
        text = _ip_packed(<bytes>(<char*>p + ep.ip6_off)[:16])
        if local:
            kv_str(b, u"net.host.ip", text)
        else:
            kv_str(b, u"net.peer.ip", text)
    elif ep.ip4_len == 4:
        if local:
            w_ip4(b, b"net.host.ip", 11, p + ep.ip4_off)
        else:
            w_ip4(b, b"net.peer.ip", 11, p + ep.ip4_off)
    if 0 < ep.port < 65536:
        if local:
            kv_int(b, b"net.host.port", 13, <uint64_t>ep.port)
        else:
            kv_int(b, b"net.peer.port", 13, <uint64_t>ep.port)
    return 0


def v2_proto_to_otlp(body):
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin proto3 ``ListOfSpans`` body."""
    cdef bytes buf = bytes(body)
    cdef const uint8_t* p = <const uint8_t*><char*>buf
    cdef Py_ssize_t pos = 0, end = len(buf), kpos, i = 0
    cdef Field f
    cdef Scratch sc
    cdef _Out out = _Out()
    memset(&sc, 0, sizeof(Scratch))
    try:
        while pos < end:
            kpos = pos
            read_field(p, pos, end, &f, u"ListOfSpans")
            pos = f.next
            if f.number == 1:
                expect(f.wt, 2, u"ListOfSpans", u"spans", kpos)
                proto_span(out, p, buf, f.start, f.end, i, &sc)
                i += 1
        return out.finish()
    finally:
        PyMem_Free(sc.anns)
        PyMem_Free(sc.tags)


# ---------------------------------------------------------------- v2 JSON fast path (bytes)
#
# The common request is scanned straight from the body bytes: an array of span objects with
# the known keys only (each at most once), IDs of 16/32 hex digits, times and ports as plain
# JSON integers, strings of valid UTF-8 (escapes are decoded in values; an escaped key, ID,
# kind or IP, or a lone surrogate, is not taken), tags whose values are strings and whose keys
# are not special (scope and status tags are fine), true/false flags.  Anything else (null, a float, an unknown or repeated
# key, a bad ID, a value out of range, malformed JSON, …) abandons the whole request, which
# then takes the path above unchanged: every error and every rare case comes from there.

cdef struct JEnd:
    bint present
    JStr svc, ip4, ip6
    uint64_t port


cdef struct JAnn:
    uint64_t ts
    JStr value


cdef struct JTag:
    JStr k, v
    int cls


cdef struct JSpan:
    uint8_t[16] tid
    uint8_t[8] sid
    uint8_t[8] pid
    bint has_pid
    JStr name, kind
    uint64_t ts, dur
    bint debug, shared
    JEnd local, remote


cdef struct JP:
    const uint8_t* p
    Py_ssize_t n, pos
    uint8_t* scratch      # decoded escaped strings; len(body) bytes, allocated on first need
    Py_ssize_t slen
    JAnn* anns
    Py_ssize_t nanns, cap_anns
    JTag* tags
    Py_ssize_t ntags, cap_tags
    GroupCache groups


# span keys (bits of JSpan.seen)
DEF K_TRACE = 1
DEF K_ID = 2
DEF K_PARENT = 4
DEF K_NAME = 8
DEF K_KIND = 16
DEF K_TS = 32
DEF K_DUR = 64
DEF K_LOCAL = 128
DEF K_REMOTE = 256
DEF K_ANNS = 512
DEF K_TAGS = 1024
DEF K_DEBUG = 2048
DEF K_SHARED = 4096


cdef inline int j_peek(JP* j) noexcept:
    """Skip JSON whitespace; the next byte, or -1 at the end."""
    cdef uint8_t c
    while j.pos < j.n:
        c = j.p[j.pos]
        if c == 32 or c == 10 or c == 13 or c == 9:
            j.pos += 1
        else:
            return c
    return -1


cdef inline bint j_eat(JP* j, uint8_t want) noexcept:
    if j_peek(j) == want:
        j.pos += 1
        return True
    return False


cdef inline uint64_t haszero(uint64_t v) noexcept:
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL


cdef int8_t[256] HEXVAL
for _c in range(256):
    HEXVAL[_c] = hexdig(_c)
del _c


cdef inline int hex4(const uint8_t* p) noexcept:
    cdef int a = hexdig(p[0]), b = hexdig(p[1]), c = hexdig(p[2]), d = hexdig(p[3])
    if a < 0 or b < 0 or c < 0 or d < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef int j_str_escaped(JP* j, JStr* out, Py_ssize_t start) except -1:
    """The rest of a string with escapes, decoded into the scratch buffer (0: abandon)."""
    cdef const uint8_t* p = j.p
    cdef Py_ssize_t n = j.n, k = start, run = start
    cdef uint8_t* d
    cdef Py_ssize_t m = 0
    cdef uint8_t c, hi = 0
    cdef int cp, lo
    if j.scratch == NULL:
        j.scratch = <uint8_t*>PyMem_Malloc(n if n > 0 else 1)
        if j.scratch == NULL:
            raise MemoryError()
    d = j.scratch + j.slen
    while k < n:
        c = p[k]
        if c != 34 and c != 92:
            if c < 0x20:
                return 0
            hi |= c
            k += 1
            continue
        # flush the raw run p[run:k]
        if hi & 0x80 and not utf8_valid(p + run, k - run):
            return 0
        memcpy(d + m, p + run, k - run)
        m += k - run
        hi = 0
        if c == 34:
            out.p = d
            out.n = m
            j.slen += m
            j.pos = k + 1
            return 1
        if k + 1 >= n:
            return 0
        c = p[k + 1]
        if c == 117:  # \uXXXX
            if k + 6 > n:
                return 0
            cp = hex4(p + k + 2)
            if cp < 0:
                return 0
            k += 6
            if 0xD800 <= cp <= 0xDBFF:
                if k + 6 > n or p[k] != 92 or p[k + 1] != 117:
                    return 0
                lo = hex4(p + k + 2)
                if lo < 0xDC00 or lo > 0xDFFF:
                    return 0
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                k += 6
            elif 0xDC00 <= cp <= 0xDFFF:
                return 0
            if cp < 0x80:
                d[m] = <uint8_t>cp; m += 1
            elif cp < 0x800:
                d[m] = <uint8_t>(0xC0 | (cp >> 6)); d[m + 1] = <uint8_t>(0x80 | (cp & 0x3F)); m += 2
            elif cp < 0x10000:
                d[m] = <uint8_t>(0xE0 | (cp >> 12)); d[m + 1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
                d[m + 2] = <uint8_t>(0x80 | (cp & 0x3F)); m += 3
            else:
                d[m] = <uint8_t>(0xF0 | (cp >> 18)); d[m + 1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
                d[m + 2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F)); d[m + 3] = <uint8_t>(0x80 | (cp & 0x3F))
                m += 4
        else:
            if c == 34 or c == 92 or c == 47:
                d[m] = c
            elif c == 110:
                d[m] = 10
            elif c == 116:
                d[m] = 9
            elif c == 114:
                d[m] = 13
            elif c == 98:
                d[m] = 8
            elif c == 102:
                d[m] = 12
            else:
                return 0
            m += 1
            k += 2
        run = k
    return 0


cdef inline int j_str(JP* j, JStr* out, bint escapes) except -1:
    """A JSON string at j.pos (the opening quote is checked); 0: abandon."""
    cdef const uint8_t* p = j.p
    cdef Py_ssize_t start, k
    cdef uint8_t c, hi = 0
    cdef uint64_t x, acc = 0
    if j_peek(j) != 34:
        return 0
    start = k = j.pos + 1
    # 8 bytes at a time until a chunk holds '"', '\\' or a control byte (exact tests, SWAR)
    while k + 8 <= j.n:
        memcpy(&x, p + k, 8)
        if ((haszero(x ^ 0x2222222222222222ULL) | haszero(x ^ 0x5C5C5C5C5C5C5C5CULL)
             | ((x - 0x2020202020202020ULL) & ~x & 0x8080808080808080ULL))):
            break
        acc |= x
        k += 8
    if acc & 0x8080808080808080ULL:
        hi = 0x80
    while k < j.n:
        c = p[k]
        if c == 34:
            if hi & 0x80 and not utf8_valid(p + start, k - start):
                return 0
            out.p = p + start
            out.n = k - start
            j.pos = k + 1
            return 1
        if c == 92:
            return j_str_escaped(j, out, start) if escapes else 0
        if c < 0x20:
            return 0
        hi |= c
        k += 1
    return 0


cdef inline bint j_uint(JP* j, uint64_t* out) noexcept:
    """A plain non-negative JSON integer of at most 17 digits."""
    cdef const uint8_t* p = j.p
    cdef Py_ssize_t k, start
    cdef uint64_t v = 0
    cdef uint8_t c
    if j_peek(j) < 0:
        return False
    k = start = j.pos
    while k < j.n:
        c = p[k]
        if c < 48 or c > 57:
            break
        v = v * 10 + (c - 48)
        k += 1
    if k == start or k - start > 17 or (p[start] == 48 and k - start > 1):
        return False
    j.pos = k
    out[0] = v
    return True


cdef inline bint j_bool(JP* j, bint* out) noexcept:
    cdef int c = j_peek(j)
    if c == 116 and j.pos + 4 <= j.n and memcmp(j.p + j.pos, b"true", 4) == 0:
        out[0] = True
        j.pos += 4
        return True
    if c == 102 and j.pos + 5 <= j.n and memcmp(j.p + j.pos, b"false", 5) == 0:
        out[0] = False
        j.pos += 5
        return True
    return False


cdef inline int j_next(JP* j) noexcept:
    """After a member: 1 when another follows (',' eaten), 0 at '}' or ']' (eaten), -1 otherwise."""
    cdef int c = j_peek(j)
    if c == 44:
        j.pos += 1
        return 1
    if c == 125 or c == 93:
        j.pos += 1
        return 0
    return -1


cdef inline bint key_is(JStr* k, const char* name, Py_ssize_t n) noexcept:
    return k.n == n and memcmp(k.p, name, n) == 0


cdef inline bint j_hex(JStr* s, Py_ssize_t nhex, uint8_t* out) noexcept:
    cdef Py_ssize_t k
    cdef int hi, lo
    if s.n != nhex:
        return False
    for k in range(0, nhex, 2):
        hi = HEXVAL[s.p[k]]
        lo = HEXVAL[s.p[k + 1]]
        if (hi | lo) < 0:
            return False
        out[k >> 1] = <uint8_t>((hi << 4) | lo)
    return True


cdef int j_endpoint(JP* j, JEnd* ep) except -1:
    cdef JStr key
    cdef int seen = 0, bit, more
    if not j_eat(j, 123):
        return 0
    ep.present = True
    if j_eat(j, 125):
        return 1
    while True:
        if not j_str(j, &key, False) or not j_eat(j, 58):
            return 0
        if key_is(&key, b"serviceName", 11):
            bit = 1
            if not j_str(j, &ep.svc, True):
                return 0
        elif key_is(&key, b"ipv4", 4):
            bit = 2
            if not j_str(j, &ep.ip4, False):
                return 0
        elif key_is(&key, b"ipv6", 4):
            bit = 4
            if not j_str(j, &ep.ip6, False):
                return 0
        elif key_is(&key, b"port", 4):
            bit = 8
            if not j_uint(j, &ep.port):
                return 0
        else:
            return 0
        if seen & bit:
            return 0
        seen |= bit
        more = j_next(j)
        if more == 0:
            return 1 if j.p[j.pos - 1] == 125 else 0
        if more < 0:
            return 0


cdef int j_grow_anns(JP* j) except -1:
    cdef JAnn* grown
    j.cap_anns = j.cap_anns * 2 if j.cap_anns else 16
    grown = <JAnn*>PyMem_Realloc(j.anns, sizeof(JAnn) * j.cap_anns)
    if grown == NULL:
        raise MemoryError()
    j.anns = grown
    return 0


cdef int j_grow_tags(JP* j) except -1:
    cdef JTag* grown
    j.cap_tags = j.cap_tags * 2 if j.cap_tags else 32
    grown = <JTag*>PyMem_Realloc(j.tags, sizeof(JTag) * j.cap_tags)
    if grown == NULL:
        raise MemoryError()
    j.tags = grown
    return 0


cdef int j_annotations(JP* j) except -1:
    cdef JStr key
    cdef JAnn* a
    cdef int seen, bit, more
    if not j_eat(j, 91):
        return 0
    if j_eat(j, 93):
        return 1
    while True:
        if not j_eat(j, 123):
            return 0
        if j.nanns == j.cap_anns:
            j_grow_anns(j)
        a = &j.anns[j.nanns]
        a.ts = 0
        a.value.p = NULL
        a.value.n = 0
        seen = 0
        if not j_eat(j, 125):
            while True:
                if not j_str(j, &key, False) or not j_eat(j, 58):
                    return 0
                if key_is(&key, b"timestamp", 9):
                    bit = 1
                    if not j_uint(j, &a.ts) or a.ts > MAX_US:
                        return 0
                elif key_is(&key, b"value", 5):
                    bit = 2
                    if not j_str(j, &a.value, True):
                        return 0
                else:
                    return 0
                if seen & bit:
                    return 0
                seen |= bit
                more = j_next(j)
                if more == 0:
                    if j.p[j.pos - 1] != 125:
                        return 0
                    break
                if more < 0:
                    return 0
        j.nanns += 1
        more = j_next(j)
        if more == 0:
            return 1 if j.p[j.pos - 1] == 93 else 0
        if more < 0:
            return 0


cdef int j_tags(JP* j) except -1:
    cdef JTag* t
    cdef Py_ssize_t k
    cdef int more
    if not j_eat(j, 123):
        return 0
    if j_eat(j, 125):
        return 1
    while True:
        if j.ntags == j.cap_tags:
            j_grow_tags(j)
        t = &j.tags[j.ntags]
        if not j_str(j, &t.k, True) or not j_eat(j, 58) or not j_str(j, &t.v, True):
            return 0
        t.cls = tag_class(t.k.p, t.k.n)
        if t.cls == T_DEFER:
            return 0
        for k in range(j.ntags):
            if j.tags[k].k.n == t.k.n and memcmp(j.tags[k].k.p, t.k.p, t.k.n) == 0:
                return 0
        j.ntags += 1
        more = j_next(j)
        if more == 0:
            return 1 if j.p[j.pos - 1] == 125 else 0
        if more < 0:
            return 0


cdef int j_span(JP* j, JSpan* s) except -1:
    """Parse one span object at j.pos into s, j.anns, j.tags; 0: abandon."""
    cdef JStr key, v
    cdef int seen = 0, bit, more
    memset(s, 0, sizeof(JSpan))
    j.nanns = 0
    j.ntags = 0
    if not j_eat(j, 123):
        return 0
    if j_eat(j, 125):
        return 0  # no IDs
    while True:
        if not j_str(j, &key, False) or not j_eat(j, 58):
            return 0
        if key.n == 0:
            return 0
        bit = 0
        if key.n == 7 and memcmp(key.p, b"traceId", 7) == 0:
            bit = K_TRACE
            if not j_str(j, &v, False):
                return 0
            if v.n == 32:
                if not j_hex(&v, 32, s.tid):
                    return 0
            elif v.n == 16:
                if not j_hex(&v, 16, s.tid + 8):
                    return 0
            else:
                return 0
            if all_zero(s.tid, 16):
                return 0
        elif key.n == 2 and key.p[0] == 105 and key.p[1] == 100:
            bit = K_ID
            if not j_str(j, &v, False) or not j_hex(&v, 16, s.sid) or all_zero(s.sid, 8):
                return 0
        elif key_is(&key, b"parentId", 8):
            bit = K_PARENT
            if not j_str(j, &v, False):
                return 0
            if v.n:
                if not j_hex(&v, 16, s.pid):
                    return 0
                s.has_pid = True
        elif key_is(&key, b"name", 4):
            bit = K_NAME
            if not j_str(j, &s.name, True):
                return 0
        elif key_is(&key, b"kind", 4):
            bit = K_KIND
            if not j_str(j, &s.kind, False):
                return 0
        elif key_is(&key, b"timestamp", 9):
            bit = K_TS
            if not j_uint(j, &s.ts) or s.ts > MAX_US:
                return 0
        elif key_is(&key, b"duration", 8):
            bit = K_DUR
            if not j_uint(j, &s.dur) or s.dur > MAX_US:
                return 0
        elif key_is(&key, b"localEndpoint", 13):
            bit = K_LOCAL
            if not j_endpoint(j, &s.local):
                return 0
        elif key_is(&key, b"remoteEndpoint", 14):
            bit = K_REMOTE
            if not j_endpoint(j, &s.remote):
                return 0
        elif key_is(&key, b"annotations", 11):
            bit = K_ANNS
            if not j_annotations(j):
                return 0
        elif key_is(&key, b"tags", 4):
            bit = K_TAGS
            if not j_tags(j):
                return 0
        elif key_is(&key, b"debug", 5):
            bit = K_DEBUG
            if not j_bool(j, &s.debug):
                return 0
        elif key_is(&key, b"shared", 6):
            bit = K_SHARED
            if not j_bool(j, &s.shared):
                return 0
        else:
            return 0
        if seen & bit:
            return 0
        seen |= bit
        more = j_next(j)
        if more == 0:
            if j.p[j.pos - 1] != 125:
                return 0
            break
        if more < 0:
            return 0
    if (seen & (K_TRACE | K_ID)) != (K_TRACE | K_ID):
        return 0
    if s.ts + s.dur > MAX_US:
        return 0
    return 1


cdef int j_kind(JStr* k) noexcept:
    """Zipkin kind number of an ASCII kind name (case-insensitive); -1 when not ASCII."""
    cdef uint8_t[8] up
    cdef Py_ssize_t i
    cdef uint8_t c
    for i in range(k.n):
        if k.p[i] >= 0x80:
            return -1
    if k.n != 6 and k.n != 8:
        return 0
    for i in range(k.n):
        c = k.p[i]
        up[i] = c - 32 if 97 <= c <= 122 else c
    if k.n == 6:
        if memcmp(up, b"CLIENT", 6) == 0:
            return 1
        if memcmp(up, b"SERVER", 6) == 0:
            return 2
        return 0
    if memcmp(up, b"PRODUCER", 8) == 0:
        return 3
    if memcmp(up, b"CONSUMER", 8) == 0:
        return 4
    return 0


cdef bint plain_ipv4(JStr* s) noexcept:
    """Dotted-quad text that inet_pton accepts and inet_ntop prints back unchanged."""
    cdef Py_ssize_t i, digits = 0, octets = 0
    cdef int v = 0
    cdef uint8_t c
    for i in range(s.n):
        c = s.p[i]
        if 48 <= c <= 57:
            if digits and v == 0:
                return False
            v = v * 10 + (c - 48)
            if v > 255:
                return False
            if not digits:
                octets += 1
                if octets > 4:
                    return False
            digits += 1
        elif c == 46 and digits:
            if octets == 4:
                return False
            digits = 0
            v = 0
        else:
            return False
    return octets == 4 and digits > 0


cdef inline str j_text(JStr* s):
    return PyUnicode_DecodeUTF8(<const char*>s.p, s.n, NULL)


cdef int j_ip_attr(PbBuf* b, const char* key, Py_ssize_t kn, JEnd* ep) except -1:
    cdef JStr* ip = &ep.ip6 if ep.ip6.n else &ep.ip4
    cdef Py_ssize_t tn
    cdef const char* tp
    if ip.n == 0:
        return 0
    if ip is &ep.ip4 and plain_ipv4(ip):
        return kv_raw(b, <const uint8_t*>key, kn, ip.p, ip.n)
    text = _ip_text(j_text(ip))
    tp = PyUnicode_AsUTF8AndSize(text, &tn)
    return kv_raw(b, <const uint8_t*>key, kn, <const uint8_t*>tp, tn)


cdef Py_ssize_t j_group(JP* j, _Out out, JSpan* s, Plan* pl) except -1:
    cdef JStr svc
    svc.p = NULL
    svc.n = 0
    if s.local.present:
        svc = s.local.svc
    return cached_group(out, &j.groups, &svc, &pl.sname, &pl.sver)


cdef int j_write(JP* j, _Out out, JSpan* s) except -1:
    """Write the parsed span (s, j.anns, j.tags) as the existing path does; 0: abandon."""
    cdef int kind = 0
    cdef Py_ssize_t g, off, k
    cdef PbBuf* b
    cdef JTag* t
    cdef JAnn* a
    cdef Plan pl
    cdef bint has_parent = s.has_pid and not all_zero(s.pid, 8) and memcmp(s.pid, s.sid, 8) != 0
    if s.kind.n:
        kind = j_kind(&s.kind)
        if kind < 0:
            return 0
    plan_init(&pl)
    for k in range(j.ntags):
        t = &j.tags[k]
        if t.cls != T_PLAIN:
            plan_take(&pl, t.cls, t.v.p, t.v.n)
    plan_finish(&pl)
    g = j_group(j, out, s, &pl)
    off = out.spans.len
    b = &out.spans
    pb_bytes_field(b, 1, s.tid, 16, False)
    pb_bytes_field(b, 2, s.sid, 8, False)
    if has_parent:
        pb_bytes_field(b, 4, s.pid, 8, False)
    pb_bytes_field(b, 5, s.name.p, s.name.n, False)
    pb_varint_field(b, 6, <uint64_t>KIND_OTLP[kind])
    pb_fixed64_field(b, 7, s.ts * 1000)
    pb_fixed64_field(b, 8, (s.ts + s.dur) * 1000)
    for k in range(j.ntags):
        t = &j.tags[k]
        if not plan_drops(&pl, t.cls, t.v.p, t.v.n):
            kv_raw(b, t.k.p, t.k.n, t.v.p, t.v.n)
    if s.local.present:
        j_ip_attr(b, b"net.host.ip", 11, &s.local)
        if 0 < s.local.port < 65536:
            kv_int(b, b"net.host.port", 13, s.local.port)
    if s.remote.present:
        if s.remote.svc.n:
            kv_raw(b, <const uint8_t*>b"peer.service", 12, s.remote.svc.p, s.remote.svc.n)
        j_ip_attr(b, b"net.peer.ip", 11, &s.remote)
        if 0 < s.remote.port < 65536:
            kv_int(b, b"net.peer.port", 13, s.remote.port)
    if s.ts == 0:
        kv_true(b, b"otel.zipkin.absentField.startTime", 33)
    if s.shared:
        kv_true(b, b"zipkin.shared", 13)
    if s.debug:
        kv_true(b, b"zipkin.debug", 12)
    for k in range(j.nanns):
        a = &j.anns[k]
        if memchr_pipe(a.value.p, a.value.n):
            w_raw_field(b, 11, _event_bytes(a.ts * 1000, j_text(&a.value)))
        else:
            w_event(b, a.ts * 1000, a.value.p, a.value.n)
    w_status(b, pl.code, pl.msg.p, pl.msg.n)
    out.add(g, off)
    return 1


cdef int j_request(_Out out, bytes body) except -1:
    """The whole request through the fast path into ``out``; 0: abandoned (out is garbage)."""
    cdef JP j
    cdef JSpan s
    cdef int more, ok = 0
    memset(&j, 0, sizeof(JP))
    j.p = <const uint8_t*><char*>body
    j.n = len(body)
    pb_reserve(&out.spans, j.n)
    try:
        if not j_eat(&j, 91):
            return 0
        if not j_eat(&j, 93):
            while True:
                if not j_span(&j, &s) or not j_write(&j, out, &s):
                    return 0
                more = j_next(&j)
                if more < 0:
                    return 0
                if more == 0:
                    if j.p[j.pos - 1] != 93:
                        return 0
                    break
        ok = j_peek(&j) == -1
        return ok
    finally:
        PyMem_Free(j.scratch)
        PyMem_Free(j.anns)
        PyMem_Free(j.tags)


def _fast_path_used(body):
    """For tests: whether ``v2_json_to_otlp(body)`` is served by the byte-level fast path."""
    return type(body) is bytes and j_request(_Out(), <bytes>body) == 1


# ----------------------------------------------------------------------- v1 (reference)

v1_to_v2 = _ref.v1_to_v2


def v1_spans_to_otlp(list spans):
    """OTLP request bytes of v1 spans already parsed into the v1 JSON shape (list of dicts)."""
    return v2_spans_to_otlp(v1_to_v2(spans))


def v1_json_to_otlp(body):
    """OTLP ``ExportTraceServiceRequest`` bytes of a Zipkin v1 JSON body (an array of spans)."""
    return v1_spans_to_otlp(_load_json(body))
