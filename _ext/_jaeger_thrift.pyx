# cython: language_level=3
"""Decode stage, compiled twin of collector/codec/jaeger_thrift.py (same API, same bytes, same errors, same order).

Jaeger batches are read with a bounds-checked cursor into flat C records that point into the input
(strings that are not valid UTF-8 are replaced, as Python's "replace" decoder does, into an
arena), then written straight to OTLP with ``_ext/pbwriter.pxd`` following the span rules of
``collector/codec/jaeger.py``.  No Python object is made per span or per tag; the one process of a
batch is translated by the reference mapping (``jaeger.resource_kvs``), once per batch.
Zipkin v1 spans are returned as Python dicts, as the reference does.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from _ext.pbwriter cimport *
from _ext.utf8 cimport utf8_valid

import base64
import ipaddress

from collector.codec import otlp_writer
from collector.codec.jaeger import JProcess, JTag, resource_kvs
from collector.errors import DecodeError

MAX_DEPTH = 64

cdef enum:
    DEPTH_LIMIT = 64
    T_STOP = 0
    T_BOOL = 2
    T_BYTE = 3
    T_DOUBLE = 4
    T_I16 = 6
    T_I32 = 8
    T_I64 = 10
    T_STRING = 11
    T_STRUCT = 12
    T_MAP = 13
    T_SET = 14
    T_LIST = 15
    T_UUID = 16
    TAG_STRING = 0
    TAG_DOUBLE = 1
    TAG_BOOL = 2
    TAG_LONG = 3
    TAG_BINARY = 4
    ST_UNSET = 0
    ST_OK = 1
    ST_ERROR = 2
    KIND_SERVER = 2
    KIND_CLIENT = 3

# Context names for error messages, indexed by the C_* constants.
cdef tuple CTX = ("Tag", "Log", "SpanRef", "Span", "Process", "Batch", "emitBatch_args", "message",
                  "Endpoint", "Annotation", "BinaryAnnotation", "ZipkinSpan", "ZipkinSpans")
cdef enum:
    C_TAG = 0
    C_LOG = 1
    C_REF = 2
    C_SPAN = 3
    C_PROCESS = 4
    C_BATCH = 5
    C_ARGS = 6
    C_MESSAGE = 7
    C_ENDPOINT = 8
    C_ANNOTATION = 9
    C_BINANN = 10
    C_ZSPAN = 11
    C_ZSPANS = 12

cdef dict TYPE_NAMES = {T_BOOL: "bool", T_BYTE: "byte", T_DOUBLE: "double", T_I16: "i16",
                        T_I32: "i32", T_I64: "i64", T_STRING: "string", T_STRUCT: "struct",
                        T_MAP: "map", T_SET: "set", T_LIST: "list", T_UUID: "uuid"}

# compact type id → TType (0 = invalid).
cdef int COMPACT_TYPES[14]
COMPACT_TYPES[:] = [0, T_BOOL, T_BOOL, T_BYTE, T_I16, T_I32, T_I64, T_DOUBLE, T_STRING,
                    T_LIST, T_SET, T_MAP, T_STRUCT, T_UUID]


# --- reader ------------------------------------------------------------------------------------

cdef struct Rd:
    const uint8_t* p     # input bytes
    Py_ssize_t pos       # cursor
    Py_ssize_t end       # input length
    bint compact         # compact protocol (else binary)
    int last             # compact: previous field id of the current struct
    bint bool_value      # compact: the value of the BOOL field just read from its header


cdef inline bint binary_type_ok(int t):
    return t == 2 or t == 3 or t == 4 or t == 6 or t == 8 or (10 <= t <= 16)


cdef int fail_truncated(int ctx, Py_ssize_t pos) except -1:
    raise DecodeError(f"{CTX[ctx]}: truncated at offset {pos}")


cdef int fail_unknown_type(int ctx, int t, Py_ssize_t pos) except -1:
    raise DecodeError(f"{CTX[ctx]}: unknown type {t} at offset {pos}")


cdef int fail_expect(int ctx, str name, int got, int want, Py_ssize_t fpos) except -1:
    raise DecodeError(f"{CTX[ctx]}.{name}: Thrift type {TYPE_NAMES[got]}, expected "
                      f"{TYPE_NAMES[want]} (at offset {fpos})")


cdef inline Py_ssize_t need(Rd* r, Py_ssize_t n, int ctx) except -1:
    cdef Py_ssize_t pos = r.pos
    if r.end - pos < n:
        fail_truncated(ctx, pos)
    r.pos = pos + n
    return pos


cdef inline int rbyte(Rd* r, int ctx) except -1:
    return r.p[need(r, 1, ctx)]


cdef inline uint64_t be(const uint8_t* p, int n):
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef inline int varint(Rd* r, int ctx, uint64_t* out) except -1:
    cdef Py_ssize_t vpos = r.pos
    cdef Py_ssize_t pos = vpos
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef uint8_t b
    while True:
        if pos >= r.end:
            fail_truncated(ctx, vpos)
        if shift >= 70:
            raise DecodeError(f"{CTX[ctx]}: varint too long at offset {vpos}")
        b = r.p[pos]
        pos += 1
        if shift < 64:
            result |= (<uint64_t>(b & 0x7F)) << shift
        shift += 7
        if b < 0x80:
            r.pos = pos
            out[0] = result
            return 0


cdef inline uint64_t unzigzag(uint64_t v):
    return (v >> 1) ^ (<uint64_t>0 - (v & 1))


cdef inline int16_t read_i16(Rd* r, int ctx) except? -32768:
    cdef uint64_t v
    if r.compact:
        varint(r, ctx, &v)
        return <int16_t>unzigzag(v)
    return <int16_t>be(r.p + need(r, 2, ctx), 2)


cdef inline int32_t read_i32(Rd* r, int ctx) except? -2147483648:
    cdef uint64_t v
    if r.compact:
        varint(r, ctx, &v)
        return <int32_t>unzigzag(v)
    return <int32_t>be(r.p + need(r, 4, ctx), 4)


cdef inline int read_i64(Rd* r, int ctx, int64_t* out) except -1:
    cdef uint64_t v
    if r.compact:
        varint(r, ctx, &v)
        out[0] = <int64_t>unzigzag(v)
    else:
        out[0] = <int64_t>be(r.p + need(r, 8, ctx), 8)
    return 0


cdef inline int read_double(Rd* r, int ctx, double* out) except -1:
    cdef Py_ssize_t pos = need(r, 8, ctx)
    cdef uint64_t v
    if r.compact:
        memcpy(out, r.p + pos, 8)  # little-endian on the wire and on the host
    else:
        v = be(r.p + pos, 8)
        memcpy(out, &v, 8)
    return 0


cdef inline int check_size(Rd* r, uint64_t n, int ctx, Py_ssize_t hpos, str noun) except -1:
    if n > <uint64_t>(r.end - r.pos):
        raise DecodeError(f"{CTX[ctx]}: {noun} of {n} overruns the buffer at offset {hpos}")
    return 0


cdef inline int64_t binary_size(Rd* r, int ctx) except -1:
    cdef Py_ssize_t hpos = r.pos
    cdef int32_t n = read_i32(r, ctx)
    if n < 0:
        raise DecodeError(f"{CTX[ctx]}: negative size {n} at offset {hpos}")
    return n


cdef inline int read_binary(Rd* r, int ctx, Py_ssize_t* off, Py_ssize_t* length) except -1:
    """A string/binary value: its offset and length in the input."""
    cdef Py_ssize_t hpos = r.pos
    cdef uint64_t n
    if r.compact:
        varint(r, ctx, &n)
    else:
        n = <uint64_t>binary_size(r, ctx)
    check_size(r, n, ctx, hpos, "string")
    off[0] = r.pos
    length[0] = <Py_ssize_t>n
    r.pos += <Py_ssize_t>n
    return 0


cdef int field_begin(Rd* r, int ctx, int* ftype, int* fid, Py_ssize_t* fpos) except -1:
    cdef int t, b, ct, delta
    cdef uint64_t v
    fpos[0] = r.pos
    if not r.compact:
        t = rbyte(r, ctx)
        if t == T_STOP:
            ftype[0] = T_STOP
            return 0
        if not binary_type_ok(t):
            fail_unknown_type(ctx, t, fpos[0])
        ftype[0] = t
        fid[0] = <int16_t>be(r.p + need(r, 2, ctx), 2)
        return 0
    b = rbyte(r, ctx)
    ct = b & 0x0F
    if ct == 0:
        ftype[0] = T_STOP
        return 0
    if ct >= 14:
        fail_unknown_type(ctx, ct, fpos[0])
    delta = b >> 4
    if delta:
        fid[0] = <int16_t>(r.last + delta)
    else:
        varint(r, ctx, &v)
        fid[0] = <int16_t>unzigzag(v)
    r.last = fid[0]
    r.bool_value = ct == 1
    ftype[0] = COMPACT_TYPES[ct]
    return 0


cdef inline int read_bool_field(Rd* r, int ctx) except -1:
    if r.compact:
        return r.bool_value
    return rbyte(r, ctx) != 0


cdef int list_begin(Rd* r, int ctx, int* etype, Py_ssize_t* count) except -1:
    cdef Py_ssize_t hpos = r.pos
    cdef int t, b, ct
    cdef uint64_t n
    if not r.compact:
        t = rbyte(r, ctx)
        n = <uint64_t>binary_size(r, ctx)
        check_size(r, n, ctx, hpos, "list")
        if n and not binary_type_ok(t):
            fail_unknown_type(ctx, t, hpos)
        etype[0] = t
        count[0] = <Py_ssize_t>n
        return 0
    b = rbyte(r, ctx)
    n = b >> 4
    if n == 15:
        varint(r, ctx, &n)
    check_size(r, n, ctx, hpos, "list")
    ct = b & 0x0F
    if n and (ct == 0 or ct >= 14):
        fail_unknown_type(ctx, ct, hpos)
    etype[0] = COMPACT_TYPES[ct] if 0 < ct < 14 else 0
    count[0] = <Py_ssize_t>n
    return 0


cdef int map_begin(Rd* r, int ctx, int* ktype, int* vtype, Py_ssize_t* count) except -1:
    cdef Py_ssize_t hpos = r.pos
    cdef int kt, vt, b
    cdef uint64_t n
    if not r.compact:
        kt = rbyte(r, ctx)
        vt = rbyte(r, ctx)
        n = <uint64_t>binary_size(r, ctx)
        check_size(r, n, ctx, hpos, "map")
        if n and not binary_type_ok(kt):
            fail_unknown_type(ctx, kt, hpos)
        if n and not binary_type_ok(vt):
            fail_unknown_type(ctx, vt, hpos)
        ktype[0] = kt
        vtype[0] = vt
        count[0] = <Py_ssize_t>n
        return 0
    varint(r, ctx, &n)
    if n == 0:
        ktype[0] = vtype[0] = 0
        count[0] = 0
        return 0
    b = rbyte(r, ctx)
    check_size(r, n, ctx, hpos, "map")
    kt = b >> 4
    vt = b & 0x0F
    if kt == 0 or kt >= 14:
        fail_unknown_type(ctx, kt, hpos)
    if vt == 0 or vt >= 14:
        fail_unknown_type(ctx, vt, hpos)
    ktype[0] = COMPACT_TYPES[kt]
    vtype[0] = COMPACT_TYPES[vt]
    count[0] = <Py_ssize_t>n
    return 0


cdef inline int enter(Rd* r, int ctx, int depth) except -1:
    if depth + 1 > DEPTH_LIMIT:
        raise DecodeError(f"{CTX[ctx]}: nested deeper than {MAX_DEPTH} at offset {r.pos}")
    return 0


cdef int skip(Rd* r, int ttype, int ctx, int depth, bint in_field) except -1:
    cdef int kt, vt, et
    cdef Py_ssize_t n, i, off, length
    cdef uint64_t v
    if ttype == T_BOOL:
        if not in_field or not r.compact:
            need(r, 1, ctx)
    elif ttype == T_BYTE:
        need(r, 1, ctx)
    elif ttype == T_I16 or ttype == T_I32 or ttype == T_I64:
        if r.compact:
            varint(r, ctx, &v)
        else:
            need(r, 2 if ttype == T_I16 else 4 if ttype == T_I32 else 8, ctx)
    elif ttype == T_DOUBLE:
        need(r, 8, ctx)
    elif ttype == T_UUID:
        need(r, 16, ctx)
    elif ttype == T_STRING:
        read_binary(r, ctx, &off, &length)
    elif ttype == T_STRUCT:
        enter(r, ctx, depth)
        skip_struct(r, ctx, depth)
    elif ttype == T_MAP:
        enter(r, ctx, depth)
        map_begin(r, ctx, &kt, &vt, &n)
        for i in range(n):
            skip(r, kt, ctx, depth + 1, False)
            skip(r, vt, ctx, depth + 1, False)
    else:  # LIST, SET
        enter(r, ctx, depth)
        list_begin(r, ctx, &et, &n)
        for i in range(n):
            skip(r, et, ctx, depth + 1, False)
    return 0


cdef int skip_struct(Rd* r, int ctx, int depth) except -1:
    cdef int ftype, fid
    cdef Py_ssize_t fpos
    cdef int saved = r.last
    r.last = 0
    while True:
        field_begin(r, ctx, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        skip(r, ftype, ctx, depth + 1, True)
    r.last = saved
    return 0


cdef Py_ssize_t list_of(Rd* r, int ftype, int want, int ctx, str name, Py_ssize_t fpos,
                        int depth) except -1:
    """Open a known list field whose elements are ``want``; returns the element count."""
    cdef int etype
    cdef Py_ssize_t n, hpos
    if ftype != T_LIST:
        fail_expect(ctx, name, ftype, T_LIST, fpos)
    enter(r, ctx, depth)
    hpos = r.pos
    list_begin(r, ctx, &etype, &n)
    if n and etype != want:
        raise DecodeError(f"{CTX[ctx]}.{name}: list of {TYPE_NAMES[etype]}, expected "
                          f"{TYPE_NAMES[want]} (at offset {hpos})")
    return n


# --- the flat model ----------------------------------------------------------------------------

cdef struct Str:
    Py_ssize_t off       # offset in the input, or in the arena
    Py_ssize_t len       # bytes
    int arena            # 1: bytes are in Model.arena (a replaced invalid UTF-8 string)

cdef struct TagRec:
    Str key              # UTF-8 text
    int32_t vtype        # TagType as sent
    Str vstr             # vStr, UTF-8 text
    Str vbin             # vBinary, raw bytes
    double vdouble       # vDouble
    int vbool            # vBool
    int64_t vlong        # vLong

cdef struct LogRec:
    int64_t ts           # timestamp, µs
    Py_ssize_t tag_start # first field in Model.tags
    Py_ssize_t tag_count # fields

cdef struct RefRec:
    int32_t ref_type     # 0 CHILD_OF, else FOLLOWS_FROM for links
    int64_t lo           # traceIdLow
    int64_t hi           # traceIdHigh
    int64_t span_id      # spanId

cdef struct SpanRec:
    int64_t lo           # traceIdLow
    int64_t hi           # traceIdHigh
    int64_t span_id      # spanId
    int64_t parent       # parentSpanId
    int64_t start        # startTime, µs
    int64_t duration     # duration, µs
    int32_t flags        # Jaeger flags
    Str name             # operationName
    Py_ssize_t tag_start # tags in Model.tags
    Py_ssize_t tag_count
    Py_ssize_t log_start # logs in Model.logs
    Py_ssize_t log_count
    Py_ssize_t ref_start # references in Model.refs
    Py_ssize_t ref_count

cdef struct Model:
    const uint8_t* inp   # the input bytes
    PbBuf arena          # replaced strings
    TagRec* tags
    Py_ssize_t ntags
    Py_ssize_t cap_tags
    LogRec* logs
    Py_ssize_t nlogs
    Py_ssize_t cap_logs
    RefRec* refs
    Py_ssize_t nrefs
    Py_ssize_t cap_refs
    SpanRec* spans
    Py_ssize_t nspans
    Py_ssize_t cap_spans
    bint has_process     # Batch.process was sent
    Str service          # Process.serviceName
    Py_ssize_t ptag_start
    Py_ssize_t ptag_count
    Py_ssize_t span_start  # Batch.spans (the last list sent)
    Py_ssize_t span_count


cdef int grow(void** arr, Py_ssize_t* cap, Py_ssize_t want, size_t item) except -1:
    cdef Py_ssize_t c
    cdef void* p
    if want <= cap[0]:
        return 0
    c = cap[0] * 2 if cap[0] else 64
    while c < want:
        c *= 2
    p = PyMem_Realloc(arr[0], <size_t>c * item)
    if p == NULL:
        raise MemoryError()
    arr[0] = p
    cap[0] = c
    return 0


cdef void model_free(Model* m):
    PyMem_Free(m.tags)
    PyMem_Free(m.logs)
    PyMem_Free(m.refs)
    PyMem_Free(m.spans)
    pb_free(&m.arena)


cdef inline const uint8_t* sptr(Model* m, Str s):
    return (<const uint8_t*>m.arena.data if s.arena else m.inp) + s.off


cdef int read_text(Rd* r, Model* m, int ctx, Str* out) except -1:
    cdef Py_ssize_t off, n
    cdef bytes fixed
    read_binary(r, ctx, &off, &n)
    if utf8_valid(r.p + off, n):
        out.off = off
        out.len = n
        out.arena = 0
        return 0
    fixed = PyUnicode_DecodeUTF8(<const char*>(r.p + off), n, "replace").encode("utf-8")
    out.off = m.arena.len
    out.len = len(fixed)
    out.arena = 1
    pb_raw(&m.arena, <const uint8_t*><char*>fixed, len(fixed))
    return 0


cdef inline void set_raw(Str* s, Py_ssize_t off, Py_ssize_t n):
    s.off = off
    s.len = n
    s.arena = 0


cdef int read_tag(Rd* r, Model* m, int depth) except -1:
    cdef Py_ssize_t spos = r.pos
    cdef TagRec t
    cdef int ftype, fid
    cdef Py_ssize_t fpos, off, n
    cdef int saved
    enter(r, C_TAG, depth)
    depth += 1
    memset(&t, 0, sizeof(TagRec))
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_TAG, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_STRING:
                fail_expect(C_TAG, "key", ftype, T_STRING, fpos)
            read_text(r, m, C_TAG, &t.key)
        elif fid == 2:
            if ftype != T_I32:
                fail_expect(C_TAG, "vType", ftype, T_I32, fpos)
            t.vtype = read_i32(r, C_TAG)
        elif fid == 3:
            if ftype != T_STRING:
                fail_expect(C_TAG, "vStr", ftype, T_STRING, fpos)
            read_text(r, m, C_TAG, &t.vstr)
        elif fid == 4:
            if ftype != T_DOUBLE:
                fail_expect(C_TAG, "vDouble", ftype, T_DOUBLE, fpos)
            read_double(r, C_TAG, &t.vdouble)
        elif fid == 5:
            if ftype != T_BOOL:
                fail_expect(C_TAG, "vBool", ftype, T_BOOL, fpos)
            t.vbool = read_bool_field(r, C_TAG)
        elif fid == 6:
            if ftype != T_I64:
                fail_expect(C_TAG, "vLong", ftype, T_I64, fpos)
            read_i64(r, C_TAG, &t.vlong)
        elif fid == 7:
            if ftype != T_STRING:
                fail_expect(C_TAG, "vBinary", ftype, T_STRING, fpos)
            read_binary(r, C_TAG, &off, &n)
            set_raw(&t.vbin, off, n)
        else:
            skip(r, ftype, C_TAG, depth, True)
    r.last = saved
    if t.vtype < 0 or t.vtype > 4:
        raise DecodeError(f"Tag.vType: unknown tag type {t.vtype} (Tag at offset {spos})")
    grow(<void**>&m.tags, &m.cap_tags, m.ntags + 1, sizeof(TagRec))
    m.tags[m.ntags] = t
    m.ntags += 1
    return 0


cdef int read_tags(Rd* r, Model* m, int ftype, int ctx, str name, Py_ssize_t fpos, int depth,
                   Py_ssize_t* start, Py_ssize_t* count) except -1:
    cdef Py_ssize_t n = list_of(r, ftype, T_STRUCT, ctx, name, fpos, depth)
    cdef Py_ssize_t i
    start[0] = m.ntags
    for i in range(n):
        read_tag(r, m, depth + 1)
    count[0] = n
    return 0


cdef int read_log(Rd* r, Model* m, int depth) except -1:
    cdef LogRec lg
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    enter(r, C_LOG, depth)
    depth += 1
    memset(&lg, 0, sizeof(LogRec))
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_LOG, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I64:
                fail_expect(C_LOG, "timestamp", ftype, T_I64, fpos)
            read_i64(r, C_LOG, &lg.ts)
        elif fid == 2:
            read_tags(r, m, ftype, C_LOG, "fields", fpos, depth, &lg.tag_start, &lg.tag_count)
        else:
            skip(r, ftype, C_LOG, depth, True)
    r.last = saved
    grow(<void**>&m.logs, &m.cap_logs, m.nlogs + 1, sizeof(LogRec))
    m.logs[m.nlogs] = lg
    m.nlogs += 1
    return 0


cdef int read_ref(Rd* r, Model* m, int depth) except -1:
    cdef RefRec ref
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    enter(r, C_REF, depth)
    depth += 1
    memset(&ref, 0, sizeof(RefRec))
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_REF, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I32:
                fail_expect(C_REF, "refType", ftype, T_I32, fpos)
            ref.ref_type = read_i32(r, C_REF)
        elif fid == 2:
            if ftype != T_I64:
                fail_expect(C_REF, "traceIdLow", ftype, T_I64, fpos)
            read_i64(r, C_REF, &ref.lo)
        elif fid == 3:
            if ftype != T_I64:
                fail_expect(C_REF, "traceIdHigh", ftype, T_I64, fpos)
            read_i64(r, C_REF, &ref.hi)
        elif fid == 4:
            if ftype != T_I64:
                fail_expect(C_REF, "spanId", ftype, T_I64, fpos)
            read_i64(r, C_REF, &ref.span_id)
        else:
            skip(r, ftype, C_REF, depth, True)
    r.last = saved
    grow(<void**>&m.refs, &m.cap_refs, m.nrefs + 1, sizeof(RefRec))
    m.refs[m.nrefs] = ref
    m.nrefs += 1
    return 0


cdef int read_span(Rd* r, Model* m, int depth) except -1:
    cdef SpanRec sp
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos, n, i
    enter(r, C_SPAN, depth)
    depth += 1
    memset(&sp, 0, sizeof(SpanRec))
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_SPAN, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I64:
                fail_expect(C_SPAN, "traceIdLow", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.lo)
        elif fid == 2:
            if ftype != T_I64:
                fail_expect(C_SPAN, "traceIdHigh", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.hi)
        elif fid == 3:
            if ftype != T_I64:
                fail_expect(C_SPAN, "spanId", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.span_id)
        elif fid == 4:
            if ftype != T_I64:
                fail_expect(C_SPAN, "parentSpanId", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.parent)
        elif fid == 5:
            if ftype != T_STRING:
                fail_expect(C_SPAN, "operationName", ftype, T_STRING, fpos)
            read_text(r, m, C_SPAN, &sp.name)
        elif fid == 6:
            n = list_of(r, ftype, T_STRUCT, C_SPAN, "references", fpos, depth)
            sp.ref_start = m.nrefs
            for i in range(n):
                read_ref(r, m, depth + 1)
            sp.ref_count = n
        elif fid == 7:
            if ftype != T_I32:
                fail_expect(C_SPAN, "flags", ftype, T_I32, fpos)
            sp.flags = read_i32(r, C_SPAN)
        elif fid == 8:
            if ftype != T_I64:
                fail_expect(C_SPAN, "startTime", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.start)
        elif fid == 9:
            if ftype != T_I64:
                fail_expect(C_SPAN, "duration", ftype, T_I64, fpos)
            read_i64(r, C_SPAN, &sp.duration)
        elif fid == 10:
            read_tags(r, m, ftype, C_SPAN, "tags", fpos, depth, &sp.tag_start, &sp.tag_count)
        elif fid == 11:
            n = list_of(r, ftype, T_STRUCT, C_SPAN, "logs", fpos, depth)
            sp.log_start = m.nlogs
            for i in range(n):
                read_log(r, m, depth + 1)
            sp.log_count = n
        else:
            skip(r, ftype, C_SPAN, depth, True)
    r.last = saved
    grow(<void**>&m.spans, &m.cap_spans, m.nspans + 1, sizeof(SpanRec))
    m.spans[m.nspans] = sp
    m.nspans += 1
    return 0


cdef int read_process(Rd* r, Model* m, int depth) except -1:
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    enter(r, C_PROCESS, depth)
    depth += 1
    m.has_process = True
    set_raw(&m.service, 0, 0)
    m.ptag_start = m.ptag_count = 0
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_PROCESS, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_STRING:
                fail_expect(C_PROCESS, "serviceName", ftype, T_STRING, fpos)
            read_text(r, m, C_PROCESS, &m.service)
        elif fid == 2:
            read_tags(r, m, ftype, C_PROCESS, "tags", fpos, depth, &m.ptag_start, &m.ptag_count)
        else:
            skip(r, ftype, C_PROCESS, depth, True)
    r.last = saved
    return 0


cdef int read_batch(Rd* r, Model* m, int depth) except -1:
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos, n, i
    enter(r, C_BATCH, depth)
    depth += 1
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_BATCH, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_STRUCT:
                fail_expect(C_BATCH, "process", ftype, T_STRUCT, fpos)
            read_process(r, m, depth)
        elif fid == 2:
            n = list_of(r, ftype, T_STRUCT, C_BATCH, "spans", fpos, depth)
            m.span_start = m.nspans
            for i in range(n):
                read_span(r, m, depth + 1)
            m.span_count = n
        else:
            skip(r, ftype, C_BATCH, depth, True)
    r.last = saved
    return 0


# --- OTLP writing (the span rules of collector/codec/jaeger.py) ----------------------------------

cdef struct Scratch:
    Py_ssize_t* val      # per tag of a range: the tag giving its value, -1 = not written
    Py_ssize_t cap_val
    Py_ssize_t* table    # open-addressing hash of keys: relative index + 1, 0 = empty
    Py_ssize_t cap_table


cdef void scratch_free(Scratch* s):
    PyMem_Free(s.val)
    PyMem_Free(s.table)


cdef inline uint64_t fnv1a(const uint8_t* p, Py_ssize_t n):
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline bint str_eq(Model* m, Str a, Str b):
    return a.len == b.len and memcmp(sptr(m, a), sptr(m, b), a.len) == 0


cdef inline bint str_is(Model* m, Str a, const char* lit, Py_ssize_t n):
    return a.len == n and memcmp(sptr(m, a), lit, n) == 0


cdef int dedupe(Model* m, Scratch* s, Py_ssize_t start, Py_ssize_t count, Py_ssize_t ex1,
                Py_ssize_t ex2) except -1:
    """Fill s.val for tags[start:start+count] as an OTLP map (first position, last value);
    relative indexes ex1/ex2 (or -1) are left out."""
    cdef Py_ssize_t size, i, j, slot, mask
    cdef TagRec* t
    cdef uint64_t h
    grow(<void**>&s.val, &s.cap_val, count if count else 1, sizeof(Py_ssize_t))
    size = 16
    while size < 2 * count:
        size *= 2
    grow(<void**>&s.table, &s.cap_table, size, sizeof(Py_ssize_t))
    memset(s.table, 0, <size_t>size * sizeof(Py_ssize_t))
    mask = size - 1
    for i in range(count):
        s.val[i] = -1
        if i == ex1 or i == ex2:
            continue
        t = &m.tags[start + i]
        h = fnv1a(sptr(m, t.key), t.key.len)
        slot = <Py_ssize_t>(h & <uint64_t>mask)
        while True:
            j = s.table[slot]
            if j == 0:
                s.table[slot] = i + 1
                s.val[i] = i
                break
            if str_eq(m, m.tags[start + j - 1].key, t.key):
                s.val[j - 1] = i
                break
            slot = (slot + 1) & mask
    return 0


cdef inline Str str_value(TagRec* t):
    """The tag's value as ``Value.Str()`` reads it: the text if a STRING tag, else empty."""
    cdef Str e
    if t.vtype == TAG_STRING:
        return t.vstr
    e.off = 0
    e.len = 0
    e.arena = 0
    return e


cdef int write_any(PbBuf* o, Model* m, TagRec* t) except -1:
    cdef Py_ssize_t mark = pb_begin(o, 2)
    if t.vtype == TAG_STRING:
        pb_bytes_field(o, 1, sptr(m, t.vstr), t.vstr.len, True)
    elif t.vtype == TAG_DOUBLE:
        pb_double(o, 4, t.vdouble)
    elif t.vtype == TAG_BOOL:
        pb_tag(o, 2, 0)
        pb_varint(o, 1 if t.vbool else 0)
    elif t.vtype == TAG_LONG:
        pb_tag(o, 3, 0)
        pb_varint(o, <uint64_t>t.vlong)
    else:
        pb_bytes_field(o, 7, sptr(m, t.vbin), t.vbin.len, True)
    return pb_end(o, mark, 2, True)


cdef int write_attrs(PbBuf* o, Model* m, Scratch* s, Py_ssize_t start, Py_ssize_t count,
                     uint32_t number) except -1:
    """The KeyValues left in s.val, as repeated field ``number``."""
    cdef Py_ssize_t i, mark
    cdef TagRec* k
    for i in range(count):
        if s.val[i] < 0:
            continue
        k = &m.tags[start + i]
        mark = pb_begin(o, number)
        pb_bytes_field(o, 1, sptr(m, k.key), k.key.len, False)
        write_any(o, m, &m.tags[start + s.val[i]])
        pb_end(o, mark, number, True)
    return 0


cdef inline void be64(uint8_t* dst, uint64_t v):
    cdef int i
    for i in range(8):
        dst[7 - i] = <uint8_t>(v >> (8 * i))


cdef const char* REF_TYPE_KEY = "opentracing.ref_type"
cdef const char* CHILD_OF = "child_of"
cdef const char* FOLLOWS_FROM = "follows_from"


cdef int write_link_attr(PbBuf* o, bint child_of) except -1:
    cdef Py_ssize_t kv = pb_begin(o, 4)
    cdef Py_ssize_t av
    pb_bytes_field(o, 1, <const uint8_t*>REF_TYPE_KEY, 20, False)
    av = pb_begin(o, 2)
    if child_of:
        pb_bytes_field(o, 1, <const uint8_t*>CHILD_OF, 8, True)
    else:
        pb_bytes_field(o, 1, <const uint8_t*>FOLLOWS_FROM, 12, True)
    pb_end(o, av, 2, True)
    return pb_end(o, kv, 4, True)


cdef int http_code(Model* m, TagRec* t, int64_t* out) except -1:
    """1 and the code when ``http.status_code`` parses as the Collector parses it, else 0."""
    cdef const uint8_t* p
    cdef Py_ssize_t n, i = 0
    cdef bint neg = False
    cdef uint64_t v = 0, d
    if t.vtype == TAG_LONG:
        out[0] = t.vlong
        return 1
    if t.vtype != TAG_STRING:
        return 0
    p = sptr(m, t.vstr)
    n = t.vstr.len
    if n and (p[0] == 43 or p[0] == 45):
        neg = p[0] == 45
        i = 1
    if i >= n:
        return 0
    while i < n:
        if p[i] < 48 or p[i] > 57:
            return 0
        d = p[i] - 48
        if v > (0xFFFFFFFFFFFFFFFFULL - d) // 10:
            return 0
        v = v * 10 + d
        i += 1
    if neg:
        if v > 0x8000000000000000ULL:
            return 0
        out[0] = <int64_t>(<uint64_t>0 - v)
    else:
        if v > 0x7FFFFFFFFFFFFFFFULL:
            return 0
        out[0] = <int64_t>v
    return 1


cdef inline bint ascii_ieq(const uint8_t* p, Py_ssize_t n, const char* upper, Py_ssize_t k):
    cdef Py_ssize_t i
    cdef uint8_t c
    if n != k:
        return False
    for i in range(n):
        c = p[i]
        if 97 <= c <= 122:
            c -= 32
        if c != <uint8_t>upper[i]:
            return False
    return True


cdef enum:
    K_KIND = 0
    K_ERROR = 1
    K_CODE = 2
    K_DESC = 3
    K_HTTP_CODE = 4
    K_HTTP_MSG = 5
    K_TRACESTATE = 6


cdef int span_kind_of(Model* m, TagRec* t):
    cdef Str v
    if t.vtype != TAG_STRING:
        return 0
    v = t.vstr
    if str_is(m, v, "internal", 8):
        return 1
    if str_is(m, v, "server", 6):
        return 2
    if str_is(m, v, "client", 6):
        return 3
    if str_is(m, v, "producer", 8):
        return 4
    if str_is(m, v, "consumer", 8):
        return 5
    return 0


cdef int write_span(PbBuf* o, Model* m, Scratch* s, SpanRec* sp, Py_ssize_t ex1,
                    Py_ssize_t ex2) except -1:
    cdef uint8_t ids[16]
    cdef Py_ssize_t special[7]
    cdef Py_ssize_t i, j, mark, mark2, start = sp.tag_start, count = sp.tag_count
    cdef TagRec* t
    cdef Str key, msg, tstate
    cdef int kind = 0, code = ST_UNSET, st
    cdef bint exists = False
    cdef int64_t hc
    cdef int64_t parent = 0
    cdef bint have_follows = False
    cdef int64_t follows = 0
    cdef RefRec* ref
    cdef LogRec* lg
    cdef Str ename

    msg.off = msg.len = msg.arena = 0
    tstate.off = tstate.len = tstate.arena = 0
    dedupe(m, s, start, count, ex1, ex2)
    for j in range(7):
        special[j] = -1
    for i in range(count):
        if s.val[i] < 0:
            continue
        key = m.tags[start + i].key
        if key.len == 9 and str_is(m, key, "span.kind", 9):
            special[K_KIND] = i
        elif key.len == 5 and str_is(m, key, "error", 5):
            special[K_ERROR] = i
        elif str_is(m, key, "otel.status_code", 16):
            special[K_CODE] = i
        elif str_is(m, key, "otel.status_description", 23):
            special[K_DESC] = i
        elif str_is(m, key, "http.status_code", 16):
            special[K_HTTP_CODE] = i
        elif str_is(m, key, "http.status_message", 19):
            special[K_HTTP_MSG] = i
        elif str_is(m, key, "w3c.tracestate", 14):
            special[K_TRACESTATE] = i

    i = special[K_KIND]
    if i >= 0:
        kind = span_kind_of(m, &m.tags[start + s.val[i]])
        s.val[i] = -1

    i = special[K_ERROR]
    if i >= 0:
        t = &m.tags[start + s.val[i]]
        if (t.vtype == TAG_BOOL and t.vbool) or (t.vtype == TAG_STRING and str_is(m, t.vstr, "true", 4)):
            code = ST_ERROR
            exists = True
            s.val[i] = -1
            j = special[K_DESC]
            if j >= 0 and s.val[j] >= 0:
                msg = str_value(&m.tags[start + s.val[j]])
                s.val[j] = -1
            else:
                j = special[K_HTTP_MSG]
                if j >= 0 and s.val[j] >= 0:
                    msg = str_value(&m.tags[start + s.val[j]])
    i = special[K_CODE]
    if i >= 0:
        if not exists:
            exists = True
            t = &m.tags[start + s.val[i]]
            code = ST_UNSET
            if t.vtype == TAG_STRING:
                if ascii_ieq(sptr(m, t.vstr), t.vstr.len, "OK", 2):
                    code = ST_OK
                elif ascii_ieq(sptr(m, t.vstr), t.vstr.len, "ERROR", 5):
                    code = ST_ERROR
            j = special[K_DESC]
            if j >= 0 and s.val[j] >= 0:
                msg = str_value(&m.tags[start + s.val[j]])
                s.val[j] = -1
        s.val[i] = -1
    elif not exists and special[K_HTTP_CODE] >= 0:
        i = special[K_HTTP_CODE]
        if http_code(m, &m.tags[start + s.val[i]], &hc):
            if 400 <= hc < 500 and kind == KIND_CLIENT:
                st = ST_ERROR
            elif 400 <= hc < 500 and kind == KIND_SERVER:
                st = ST_UNSET
            elif 100 <= hc < 399:
                st = ST_UNSET
            else:
                st = ST_ERROR
            if st != ST_UNSET:
                exists = True
                code = st
            j = special[K_HTTP_MSG]
            if j >= 0:
                msg = str_value(&m.tags[start + s.val[j]])

    i = special[K_TRACESTATE]
    if i >= 0:
        tstate = str_value(&m.tags[start + s.val[i]])
        s.val[i] = -1

    # parent: parentSpanId, else the first CHILD_OF, else the first FOLLOWS_FROM, same trace
    if sp.parent != 0:
        parent = sp.parent
    else:
        for j in range(sp.ref_count):
            ref = &m.refs[sp.ref_start + j]
            if ref.lo != sp.lo or ref.hi != sp.hi:
                continue
            if ref.ref_type == 0:
                parent = ref.span_id
                have_follows = False
                break
            if not have_follows and ref.ref_type == 1:
                have_follows = True
                follows = ref.span_id
        if have_follows:
            parent = follows

    be64(ids, <uint64_t>sp.hi)
    be64(ids + 8, <uint64_t>sp.lo)
    pb_bytes_field(o, 1, ids, 16, False)
    be64(ids, <uint64_t>sp.span_id)
    pb_bytes_field(o, 2, ids, 8, False)
    pb_bytes_field(o, 3, sptr(m, tstate), tstate.len, False)
    if parent != 0:
        be64(ids, <uint64_t>parent)
        pb_bytes_field(o, 4, ids, 8, False)
    pb_bytes_field(o, 5, sptr(m, sp.name), sp.name.len, False)
    pb_varint_field(o, 6, <uint64_t>kind)
    pb_fixed64_field(o, 7, <uint64_t>sp.start * 1000)
    pb_fixed64_field(o, 8, (<uint64_t>sp.start + <uint64_t>sp.duration) * 1000)
    write_attrs(o, m, s, start, count, 9)

    for j in range(sp.log_count):
        lg = &m.logs[sp.log_start + j]
        dedupe(m, s, lg.tag_start, lg.tag_count, -1, -1)
        ename.off = ename.len = ename.arena = 0
        for i in range(lg.tag_count):
            if s.val[i] < 0:
                continue
            if str_is(m, m.tags[lg.tag_start + i].key, "event", 5):
                t = &m.tags[lg.tag_start + s.val[i]]
                if t.vtype == TAG_STRING:
                    ename = t.vstr
                    s.val[i] = -1
                break
        mark = pb_begin(o, 11)
        pb_fixed64_field(o, 1, <uint64_t>lg.ts * 1000)
        pb_bytes_field(o, 2, sptr(m, ename), ename.len, False)
        write_attrs(o, m, s, lg.tag_start, lg.tag_count, 3)
        pb_end(o, mark, 11, True)

    for j in range(sp.ref_count):
        ref = &m.refs[sp.ref_start + j]
        if ref.span_id == parent and ref.ref_type == 0:
            continue
        mark = pb_begin(o, 13)
        be64(ids, <uint64_t>ref.hi)
        be64(ids + 8, <uint64_t>ref.lo)
        pb_bytes_field(o, 1, ids, 16, False)
        be64(ids, <uint64_t>ref.span_id)
        pb_bytes_field(o, 2, ids, 8, False)
        write_link_attr(o, ref.ref_type == 0)
        pb_end(o, mark, 13, True)

    if exists:
        mark = pb_begin(o, 15)
        pb_bytes_field(o, 2, sptr(m, msg), msg.len, False)
        pb_varint_field(o, 3, <uint64_t>code)
        pb_end(o, mark, 15, False)
    pb_fixed32_field(o, 16, 1 if sp.flags & 1 else 0)
    return 0


cdef bint is_blank(SpanRec* sp):
    return (sp.lo == 0 and sp.hi == 0 and sp.span_id == 0 and sp.parent == 0 and sp.name.len == 0
            and sp.ref_count == 0 and sp.flags == 0 and sp.start == 0 and sp.duration == 0
            and sp.tag_count == 0 and sp.log_count == 0)


cdef Py_ssize_t find_key(Model* m, Py_ssize_t start, Py_ssize_t count, const char* key,
                         Py_ssize_t n, Py_ssize_t skip_index):
    cdef Py_ssize_t i
    for i in range(count):
        if i != skip_index and str_is(m, m.tags[start + i].key, key, n):
            return i
    return -1


cdef struct SpanScope:
    Str name             # scope name
    Str version          # scope version
    Py_ssize_t ex1       # relative index of the name tag, or -1
    Py_ssize_t ex2       # relative index of the version tag, or -1
    Py_ssize_t group     # index of its (name, version) group; -1 = blank span, skipped


cdef void span_scope(Model* m, SpanRec* sp, SpanScope* sc):
    cdef Py_ssize_t i, j
    sc.name.off = sc.name.len = sc.name.arena = 0
    sc.version = sc.name
    sc.ex1 = sc.ex2 = -1
    i = find_key(m, sp.tag_start, sp.tag_count, "otel.scope.name", 15, -1)
    if i >= 0:
        j = find_key(m, sp.tag_start, sp.tag_count, "otel.scope.version", 18, i)
    else:
        i = find_key(m, sp.tag_start, sp.tag_count, "otel.library.name", 17, -1)
        if i < 0:
            return
        j = find_key(m, sp.tag_start, sp.tag_count, "otel.library.version", 20, i)
    sc.ex1 = i
    sc.name = str_value(&m.tags[sp.tag_start + i])
    if j >= 0:
        sc.ex2 = j
        sc.version = str_value(&m.tags[sp.tag_start + j])


cdef bytes resource_bytes(Model* m):
    """The batch's resource attributes, by the reference mapping (once per batch)."""
    cdef Py_ssize_t i
    cdef TagRec* t
    if not m.has_process:
        return b""
    tags = []
    for i in range(m.ptag_count):
        t = &m.tags[m.ptag_start + i]
        key = sptr(m, t.key)[:t.key.len].decode("utf-8")
        if t.vtype == TAG_STRING:
            value = sptr(m, t.vstr)[:t.vstr.len].decode("utf-8")
        elif t.vtype == TAG_DOUBLE:
            value = t.vdouble
        elif t.vtype == TAG_BOOL:
            value = bool(t.vbool)
        elif t.vtype == TAG_LONG:
            value = t.vlong
        else:
            value = sptr(m, t.vbin)[:t.vbin.len]
        tags.append(JTag(key, t.vtype, value))
    service = sptr(m, m.service)[:m.service.len].decode("utf-8")
    return otlp_writer.attributes(1, resource_kvs(JProcess(service, tags)))


cdef bytes write_batch(Model* m):
    cdef PbBuf out
    cdef Scratch s
    cdef SpanScope* scopes = NULL
    cdef Py_ssize_t* groups = NULL   # span index of the first span of each group
    cdef Py_ssize_t ngroups = 0, i, g, k, rs, ss, sc, mark
    cdef SpanRec* sp
    cdef bytes res
    cdef bint any_span = False
    memset(&s, 0, sizeof(Scratch))
    out.data = NULL
    try:
        scopes = <SpanScope*>PyMem_Malloc(<size_t>(m.span_count if m.span_count else 1) * sizeof(SpanScope))
        groups = <Py_ssize_t*>PyMem_Malloc(<size_t>(m.span_count if m.span_count else 1) * sizeof(Py_ssize_t))
        if scopes == NULL or groups == NULL:
            raise MemoryError()
        for i in range(m.span_count):
            sp = &m.spans[m.span_start + i]
            if is_blank(sp):
                scopes[i].group = -1
                continue
            any_span = True
            span_scope(m, sp, &scopes[i])
            for g in range(ngroups):
                k = groups[g]
                if (str_eq(m, scopes[k].name, scopes[i].name)
                        and str_eq(m, scopes[k].version, scopes[i].version)):
                    scopes[i].group = g
                    break
            else:
                groups[ngroups] = i
                scopes[i].group = ngroups
                ngroups += 1
        if not m.has_process and not any_span:
            return b""
        res = resource_bytes(m)
        pb_init(&out, 256 + m.span_count * 256)
        rs = pb_begin(&out, 1)
        pb_bytes_field(&out, 1, <const uint8_t*><char*>res, len(res), True)
        for g in range(ngroups):
            k = groups[g]
            ss = pb_begin(&out, 2)
            sc = pb_begin(&out, 1)
            pb_bytes_field(&out, 1, sptr(m, scopes[k].name), scopes[k].name.len, False)
            pb_bytes_field(&out, 2, sptr(m, scopes[k].version), scopes[k].version.len, False)
            pb_end(&out, sc, 1, False)
            for i in range(k, m.span_count):
                if scopes[i].group != g:
                    continue
                mark = pb_begin(&out, 2)
                write_span(&out, m, &s, &m.spans[m.span_start + i], scopes[i].ex1, scopes[i].ex2)
                pb_end(&out, mark, 2, True)
            pb_end(&out, ss, 2, True)
        pb_end(&out, rs, 1, True)
        return pb_bytes(&out)
    finally:
        PyMem_Free(scopes)
        PyMem_Free(groups)
        scratch_free(&s)
        pb_free(&out)


cdef int model_init(Model* m, const uint8_t* p, Py_ssize_t n) except -1:
    memset(m, 0, sizeof(Model))
    m.inp = p
    pb_init(&m.arena, 64)
    return 0


cdef inline void rd_init(Rd* r, const uint8_t* p, Py_ssize_t n, bint compact):
    r.p = p
    r.pos = 0
    r.end = n
    r.compact = compact
    r.last = 0
    r.bool_value = False


def decode_batch(buf, compact=False) -> bytes:
    """A bare Thrift ``jaeger.Batch`` (binary protocol unless ``compact``) → OTLP request bytes."""
    cdef bytes data = bytes(buf)
    cdef Rd r
    cdef Model m
    rd_init(&r, <const uint8_t*><char*>data, len(data), bool(compact))
    model_init(&m, r.p, r.end)
    try:
        read_batch(&r, &m, 0)
        return write_batch(&m)
    finally:
        model_free(&m)


cdef str message_begin(Rd* r):
    """Read a message envelope; return the method name (type checked: CALL or ONEWAY)."""
    cdef int pid, b, version, mtype
    cdef uint64_t v
    cdef int32_t word
    cdef uint32_t uversion
    cdef Py_ssize_t off, n
    if r.compact:
        pid = rbyte(r, C_MESSAGE)
        if pid != 0x82:
            raise DecodeError(f"message: protocol id 0x{pid:02x}, expected 0x82 (Thrift compact)")
        b = rbyte(r, C_MESSAGE)
        version = b & 0x1F
        mtype = b >> 5
        if version != 1:
            raise DecodeError(f"message: compact protocol version {version}, expected 1")
        varint(r, C_MESSAGE, &v)
        read_binary(r, C_MESSAGE, &off, &n)
    else:
        word = read_i32(r, C_MESSAGE)
        if word < 0:
            uversion = (<uint32_t>word) & 0xFFFF0000u
            if uversion != 0x80010000u:
                raise DecodeError(f"message: binary protocol version 0x{uversion:08x}, expected 0x80010000")
            mtype = (<uint32_t>word) & 0xFF
            read_binary(r, C_MESSAGE, &off, &n)
            read_i32(r, C_MESSAGE)
        else:
            r.pos -= 4
            read_binary(r, C_MESSAGE, &off, &n)
            mtype = rbyte(r, C_MESSAGE)
            read_i32(r, C_MESSAGE)
    if mtype != 1 and mtype != 4:
        raise DecodeError(f"message: type {mtype}, expected CALL (1) or ONEWAY (4)")
    return PyUnicode_DecodeUTF8(<const char*>(r.p + off), n, "replace")


def decode_emit_batch(buf, compact) -> bytes:
    """One Jaeger agent UDP datagram (``Agent.emitBatch``) → OTLP request bytes."""
    cdef bytes data = bytes(buf)
    cdef Rd r
    cdef Model m
    cdef int ftype, fid
    cdef Py_ssize_t fpos
    rd_init(&r, <const uint8_t*><char*>data, len(data), bool(compact))
    model_init(&m, r.p, r.end)
    try:
        name = message_begin(&r)
        if name != "emitBatch":
            raise DecodeError(f"message: method {name!r} is not supported, only emitBatch "
                              "(Jaeger Thrift; send Zipkin spans to the Zipkin port)")
        r.last = 0
        while True:
            field_begin(&r, C_ARGS, &ftype, &fid, &fpos)
            if ftype == T_STOP:
                break
            if fid == 1:
                if ftype != T_STRUCT:
                    fail_expect(C_ARGS, "batch", ftype, T_STRUCT, fpos)
                # a second batch field replaces the first, as the reference does
                m.has_process = False
                m.span_start = m.span_count = 0
                read_batch(&r, &m, 1)
            else:
                skip(&r, ftype, C_ARGS, 1, True)
        return write_batch(&m)
    finally:
        model_free(&m)


# --- Zipkin v1 ---------------------------------------------------------------------------------

cdef str ztext(Rd* r, int ctx):
    cdef Py_ssize_t off, n
    read_binary(r, ctx, &off, &n)
    return PyUnicode_DecodeUTF8(<const char*>(r.p + off), n, "replace")


cdef bytes zbytes(Rd* r, int ctx):
    cdef Py_ssize_t off, n
    read_binary(r, ctx, &off, &n)
    return r.p[off:off + n]


cdef dict zendpoint(Rd* r, int depth):
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    cdef int32_t ipv4 = 0
    cdef int16_t port = 0
    enter(r, C_ENDPOINT, depth)
    depth += 1
    service = ""
    ipv6 = None
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_ENDPOINT, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I32:
                fail_expect(C_ENDPOINT, "ipv4", ftype, T_I32, fpos)
            ipv4 = read_i32(r, C_ENDPOINT)
        elif fid == 2:
            if ftype != T_I16:
                fail_expect(C_ENDPOINT, "port", ftype, T_I16, fpos)
            port = read_i16(r, C_ENDPOINT)
        elif fid == 3:
            if ftype != T_STRING:
                fail_expect(C_ENDPOINT, "service_name", ftype, T_STRING, fpos)
            service = ztext(r, C_ENDPOINT)
        elif fid == 4:
            if ftype != T_STRING:
                fail_expect(C_ENDPOINT, "ipv6", ftype, T_STRING, fpos)
            ipv6 = zbytes(r, C_ENDPOINT)
        else:
            skip(r, ftype, C_ENDPOINT, depth, True)
    r.last = saved
    ep = {"serviceName": service}
    if ipv4:
        ep["ipv4"] = f"{(<uint32_t>ipv4) >> 24}.{((<uint32_t>ipv4) >> 16) & 255}.{((<uint32_t>ipv4) >> 8) & 255}.{(<uint32_t>ipv4) & 255}"
    if ipv6 is not None and len(ipv6) == 16:
        ep["ipv6"] = str(ipaddress.IPv6Address(ipv6))
    if port:
        ep["port"] = <uint16_t>port
    return ep


cdef dict zannotation(Rd* r, int depth):
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    cdef int64_t ts = 0
    enter(r, C_ANNOTATION, depth)
    depth += 1
    value = ""
    host = None
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_ANNOTATION, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I64:
                fail_expect(C_ANNOTATION, "timestamp", ftype, T_I64, fpos)
            read_i64(r, C_ANNOTATION, &ts)
        elif fid == 2:
            if ftype != T_STRING:
                fail_expect(C_ANNOTATION, "value", ftype, T_STRING, fpos)
            value = ztext(r, C_ANNOTATION)
        elif fid == 3:
            if ftype != T_STRUCT:
                fail_expect(C_ANNOTATION, "host", ftype, T_STRUCT, fpos)
            host = zendpoint(r, depth)
        else:
            skip(r, ftype, C_ANNOTATION, depth, True)
    r.last = saved
    out = {"timestamp": ts, "value": value}
    if host is not None:
        out["endpoint"] = host
    return out


cdef tuple zvalue(int32_t atype, bytes value):
    cdef Py_ssize_t n = len(value)
    cdef const uint8_t* p = <const uint8_t*><char*>value
    cdef uint64_t v
    cdef double d
    if atype == 6:
        return PyUnicode_DecodeUTF8(<const char*>p, n, "replace"), None
    if atype == 0 and n == 1:
        return p[0] != 0, "BOOL"
    if atype == 2 and n == 2:
        return <int16_t>be(p, 2), "I16"
    if atype == 3 and n == 4:
        return <int32_t>be(p, 4), "I32"
    if atype == 4 and n == 8:
        return <int64_t>be(p, 8), "I64"
    if atype == 5 and n == 8:
        v = be(p, 8)
        memcpy(&d, &v, 8)
        return d, "DOUBLE"
    return base64.b64encode(value).decode("ascii"), "BYTES"


cdef dict zbinary_annotation(Rd* r, int depth):
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos
    cdef int32_t atype = 0
    enter(r, C_BINANN, depth)
    depth += 1
    key = ""
    value = b""
    host = None
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_BINANN, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_STRING:
                fail_expect(C_BINANN, "key", ftype, T_STRING, fpos)
            key = ztext(r, C_BINANN)
        elif fid == 2:
            if ftype != T_STRING:
                fail_expect(C_BINANN, "value", ftype, T_STRING, fpos)
            value = zbytes(r, C_BINANN)
        elif fid == 3:
            if ftype != T_I32:
                fail_expect(C_BINANN, "annotation_type", ftype, T_I32, fpos)
            atype = read_i32(r, C_BINANN)
        elif fid == 4:
            if ftype != T_STRUCT:
                fail_expect(C_BINANN, "host", ftype, T_STRUCT, fpos)
            host = zendpoint(r, depth)
        else:
            skip(r, ftype, C_BINANN, depth, True)
    r.last = saved
    v, tname = zvalue(atype, value)
    out = {"key": key, "value": v}
    if tname is not None:
        out["type"] = tname
    if host is not None:
        out["endpoint"] = host
    return out


cdef str hex64(int64_t v):
    return f"{<uint64_t>v:016x}"


cdef dict zspan(Rd* r, int depth):
    cdef int ftype, fid, saved
    cdef Py_ssize_t fpos, n, i
    cdef int64_t trace_id = 0, span_id = 0, parent = 0, ts = 0, duration = 0, high = 0
    cdef bint debug = False
    enter(r, C_ZSPAN, depth)
    depth += 1
    name = ""
    annotations = []
    binary_annotations = []
    saved = r.last
    r.last = 0
    while True:
        field_begin(r, C_ZSPAN, &ftype, &fid, &fpos)
        if ftype == T_STOP:
            break
        if fid == 1:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "trace_id", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &trace_id)
        elif fid == 3:
            if ftype != T_STRING:
                fail_expect(C_ZSPAN, "name", ftype, T_STRING, fpos)
            name = ztext(r, C_ZSPAN)
        elif fid == 4:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "id", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &span_id)
        elif fid == 5:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "parent_id", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &parent)
        elif fid == 6:
            n = list_of(r, ftype, T_STRUCT, C_ZSPAN, "annotations", fpos, depth)
            annotations = [zannotation(r, depth + 1) for i in range(n)]
        elif fid == 8:
            n = list_of(r, ftype, T_STRUCT, C_ZSPAN, "binary_annotations", fpos, depth)
            binary_annotations = [zbinary_annotation(r, depth + 1) for i in range(n)]
        elif fid == 9:
            if ftype != T_BOOL:
                fail_expect(C_ZSPAN, "debug", ftype, T_BOOL, fpos)
            debug = read_bool_field(r, C_ZSPAN)
        elif fid == 10:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "timestamp", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &ts)
        elif fid == 11:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "duration", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &duration)
        elif fid == 12:
            if ftype != T_I64:
                fail_expect(C_ZSPAN, "trace_id_high", ftype, T_I64, fpos)
            read_i64(r, C_ZSPAN, &high)
        else:
            skip(r, ftype, C_ZSPAN, depth, True)
    r.last = saved
    out = {"traceId": (hex64(high) if high else "") + hex64(trace_id), "id": hex64(span_id),
           "name": name}
    if parent:
        out["parentId"] = hex64(parent)
    if ts:
        out["timestamp"] = ts
    if duration:
        out["duration"] = duration
    out["annotations"] = annotations
    out["binaryAnnotations"] = binary_annotations
    if debug:
        out["debug"] = True
    return out


def decode_zipkin_v1_thrift(buf) -> list:
    """A binary-protocol ``list<zipkincore.Span>`` → spans in the Zipkin v1 JSON shape."""
    cdef bytes data = bytes(buf)
    cdef Rd r
    cdef Py_ssize_t n, i
    rd_init(&r, <const uint8_t*><char*>data, len(data), False)
    n = list_of(&r, T_LIST, T_STRUCT, C_ZSPANS, "spans", 0, 0)
    return [zspan(&r, 1) for i in range(n)]
