# cython: language_level=3
# Compiled twin of collector/codec/otlp_writer.py: a growable C buffer and inline protobuf writers.
# Same rules as the Python module (field order chosen by the caller, defaults omitted, minimal
# varints), so translators' compiled and pure-Python twins emit identical bytes.
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove


cdef struct PbBuf:
    uint8_t* data      # owned; PyMem allocated
    Py_ssize_t len     # bytes written
    Py_ssize_t cap     # bytes allocated


cdef inline int pb_init(PbBuf* b, Py_ssize_t cap) except -1:
    b.data = NULL
    b.len = 0
    b.cap = 0
    return pb_reserve(b, cap if cap > 64 else 64)


cdef inline void pb_free(PbBuf* b):
    PyMem_Free(b.data)
    b.data = NULL
    b.len = b.cap = 0


cdef inline int pb_reserve(PbBuf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t want = b.len + extra
    cdef Py_ssize_t cap
    cdef uint8_t* grown
    if want <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 256
    while cap < want:
        cap *= 2
    grown = <uint8_t*>PyMem_Realloc(b.data, cap)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.cap = cap
    return 0


cdef inline bytes pb_bytes(PbBuf* b):
    return PyBytes_FromStringAndSize(<char*>b.data, b.len)


cdef inline int varint_size(uint64_t v) nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline int pb_varint(PbBuf* b, uint64_t v) except -1:
    pb_reserve(b, 10)
    while v >= 0x80:
        b.data[b.len] = <uint8_t>((v & 0x7F) | 0x80)
        b.len += 1
        v >>= 7
    b.data[b.len] = <uint8_t>v
    b.len += 1
    return 0


cdef inline int pb_tag(PbBuf* b, uint32_t number, int wire_type) except -1:
    return pb_varint(b, (<uint64_t>number << 3) | <uint64_t>wire_type)


cdef inline int pb_raw(PbBuf* b, const uint8_t* p, Py_ssize_t n) except -1:
    pb_reserve(b, n)
    if n:
        memcpy(b.data + b.len, p, n)
        b.len += n
    return 0


cdef inline int pb_bytes_field(PbBuf* b, uint32_t number, const uint8_t* p, Py_ssize_t n,
                               bint keep_empty) except -1:
    """A length-delimited field; omitted when empty unless keep_empty."""
    if n == 0 and not keep_empty:
        return 0
    pb_tag(b, number, 2)
    pb_varint(b, <uint64_t>n)
    return pb_raw(b, p, n)


cdef inline int pb_str_field(PbBuf* b, uint32_t number, str text) except -1:
    cdef bytes data
    if not text:
        return 0
    data = text.encode("utf-8")
    return pb_bytes_field(b, number, <const uint8_t*><char*>data, len(data), False)


cdef inline int pb_varint_field(PbBuf* b, uint32_t number, uint64_t v) except -1:
    if v == 0:
        return 0
    pb_tag(b, number, 0)
    return pb_varint(b, v)


cdef inline int pb_fixed64_field(PbBuf* b, uint32_t number, uint64_t v) except -1:
    if v == 0:
        return 0
    pb_tag(b, number, 1)
    pb_reserve(b, 8)
    memcpy(b.data + b.len, &v, 8)  # little-endian hosts only (x86-64, aarch64)
    b.len += 8
    return 0


cdef inline int pb_fixed32_field(PbBuf* b, uint32_t number, uint32_t v) except -1:
    if v == 0:
        return 0
    pb_tag(b, number, 5)
    pb_reserve(b, 4)
    memcpy(b.data + b.len, &v, 4)
    b.len += 4
    return 0


cdef inline int pb_double(PbBuf* b, uint32_t number, double v) except -1:
    """A double field written even when 0 (AnyValue.double_value is a oneof member)."""
    pb_tag(b, number, 1)
    pb_reserve(b, 8)
    memcpy(b.data + b.len, &v, 8)
    b.len += 8
    return 0


cdef inline Py_ssize_t pb_begin(PbBuf* b, uint32_t number) except -1:
    """Open a sub-message field; returns the mark to pass to pb_end."""
    cdef Py_ssize_t mark = b.len
    pb_tag(b, number, 2)
    pb_reserve(b, 1)
    b.data[b.len] = 0  # one length byte reserved; pb_end widens it when needed
    b.len += 1
    return mark


cdef inline int pb_end(PbBuf* b, Py_ssize_t mark, uint32_t number, bint keep_empty) except -1:
    """Close the sub-message opened at ``mark``: write its length, or drop it when empty."""
    cdef int tag_len = varint_size((<uint64_t>number << 3) | 2)
    cdef Py_ssize_t body = mark + tag_len + 1
    cdef Py_ssize_t n = b.len - body
    cdef int need
    cdef uint64_t v
    cdef Py_ssize_t pos
    if n == 0 and not keep_empty:
        b.len = mark
        return 0
    need = varint_size(<uint64_t>n)
    if need > 1:
        pb_reserve(b, need - 1)
        memmove(b.data + body + need - 1, b.data + body, n)
        b.len += need - 1
    v = <uint64_t>n
    pos = mark + tag_len
    while v >= 0x80:
        b.data[pos] = <uint8_t>((v & 0x7F) | 0x80)
        pos += 1
        v >>= 7
    b.data[pos] = <uint8_t>v
    return 0
