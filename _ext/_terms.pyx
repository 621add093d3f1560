# cython: language_level=3, boundscheck=False, wraparound=False
# Compiled twin of collector/store/terms.py: the same hashes, computed without a Python object per
# span or per attribute (doubles excepted: their Go-style text is made by the reference helper).
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, strchr, strlen
from libc.stdio cimport snprintf
from cpython.mem cimport PyMem_Free
from _ext.rows cimport AttrRow, SpanRow
from _ext.pbreader cimport rd32, rd64
cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL

import numpy as np

from collector.store.terms import double_bits_text, double_text, key_hash, name_hash, term_hash, value_text  # noqa: F401
from collector.store.terms import W_EVENT, W_LINK, W_RESOURCE, W_SCOPE, W_SPAN  # noqa: F401

cdef uint64_t P1 = 0x9E3779B185EBCA87ULL
cdef uint64_t P2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t P3 = 0x165667B19E3779F9ULL
cdef uint64_t P4 = 0x85EBCA77C2B2AE63ULL
cdef uint64_t P5 = 0x27D4EB2F165667C5ULL


cdef inline uint64_t rotl(uint64_t x, int r) nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t xround(uint64_t acc, uint64_t inp) nogil:
    acc += inp * P2
    acc = rotl(acc, 31)
    return acc * P1


cdef inline uint64_t xmerge(uint64_t acc, uint64_t val) nogil:
    acc ^= xround(0, val)
    return acc * P1 + P4


cdef uint64_t xxh64(const uint8_t* p, Py_ssize_t n) nogil:
    """XXH64 with seed 0 (the ``xxhash`` package's ``xxh64_intdigest``)."""
    cdef const uint8_t* end = p + n
    cdef uint64_t h, v1, v2, v3, v4
    if n >= 32:
        v1 = P1 + P2
        v2 = P2
        v3 = 0
        v4 = 0 - P1
        while p + 32 <= end:
            v1 = xround(v1, rd64(p))
            v2 = xround(v2, rd64(p + 8))
            v3 = xround(v3, rd64(p + 16))
            v4 = xround(v4, rd64(p + 24))
            p += 32
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
        h = xmerge(h, v1)
        h = xmerge(h, v2)
        h = xmerge(h, v3)
        h = xmerge(h, v4)
    else:
        h = P5
    h += <uint64_t>n
    while p + 8 <= end:
        h ^= xround(0, rd64(p))
        h = rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h ^= rd32(p) * P1
        h = rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h ^= p[0] * P5
        h = rotl(h, 11) * P1
        p += 1
    h ^= h >> 33
    h *= P2
    h ^= h >> 29
    h *= P3
    h ^= h >> 32
    return h


def xxh64_intdigest(const uint8_t[::1] data):
    """XXH64 of ``data`` (for the differential tests against the ``xxhash`` package)."""
    return xxh64(&data[0] if data.shape[0] else NULL, data.shape[0])


cdef union Bits:
    int64_t i
    double d


cdef Py_ssize_t double_text_c(int64_t bits, char* out, Py_ssize_t cap):
    """Go's shortest fixed form of a double into ``out``; -1 when the reference must make it."""
    cdef Bits b
    b.i = bits
    cdef char* s = PyOS_double_to_string(b.d, b'r', 0, 0, NULL)
    cdef Py_ssize_t n = strlen(s)
    try:
        if strchr(s, b'e') != NULL or strchr(s, b'n') != NULL or n + 1 > cap:
            return -1  # exponent form, inf or nan
        if n >= 2 and s[n - 2] == b'.' and s[n - 1] == b'0':
            n -= 2
        memcpy(out, s, n)
        return n
    finally:
        PyMem_Free(s)


def span_terms(const uint8_t[::1] buf, spans, attrs, Py_ssize_t max_value_len):
    """``(name hash per span, term hash per attribute row, key hash per attribute row)`` as
    uint64 arrays (term hash 0 = not a term; key hashes are set on term rows only)."""
    cdef Py_ssize_t ns = len(spans), na = len(attrs), i, klen, tlen, blen = buf.shape[0]
    names = np.empty(ns, np.uint64)
    terms = np.zeros(na, np.uint64)
    keys = np.zeros(na, np.uint64)
    if ns == 0:
        return names, terms, keys
    cdef const uint8_t[::1] sraw = np.ascontiguousarray(spans).view(np.uint8).reshape(-1)
    cdef const SpanRow* srow = <const SpanRow*>&sraw[0]
    cdef uint64_t[::1] nout = names
    cdef uint64_t[::1] tout = terms
    cdef uint64_t[::1] kout = keys
    cdef const uint8_t* base = &buf[0] if blen else NULL
    cdef uint64_t h
    for i in range(ns):
        if <Py_ssize_t>srow[i].name_off + <Py_ssize_t>srow[i].name_len > blen:
            raise ValueError("span name outside the buffer")
        h = xxh64(base + srow[i].name_off, srow[i].name_len)
        nout[i] = h if h else 1
    if na == 0:
        return names, terms, keys
    cdef const uint8_t[::1] araw = np.ascontiguousarray(attrs).view(np.uint8).reshape(-1)
    cdef const AttrRow* arow = <const AttrRow*>&araw[0]
    cdef Py_ssize_t cap = 64
    cdef uint8_t* scratch = <uint8_t*>malloc(cap)
    cdef uint8_t* grown
    cdef char num_text[32]
    cdef const uint8_t* text
    cdef bytes dtext
    if scratch == NULL:
        raise MemoryError()
    try:
        for i in range(na):
            vt = arow[i].vtype
            if vt == 1:  # string
                if arow[i].val_len > max_value_len:
                    continue
                if <Py_ssize_t>arow[i].val_off + <Py_ssize_t>arow[i].val_len > blen:
                    raise ValueError("attribute value outside the buffer")
                text = base + arow[i].val_off
                tlen = arow[i].val_len
            elif vt == 2:  # bool
                text = <const uint8_t*>(b"true" if arow[i].num else b"false")
                tlen = 4 if arow[i].num else 5
            elif vt == 3:  # int
                tlen = snprintf(num_text, 32, "%lld", <long long>arow[i].num)
                text = <const uint8_t*>num_text
            elif vt == 4:  # double: Go's shortest fixed form (the reference makes the rare others)
                tlen = double_text_c(arow[i].num, num_text, 32)
                if tlen >= 0:
                    text = <const uint8_t*>num_text
                else:
                    dtext = double_bits_text(arow[i].num)
                    text = <const uint8_t*>(<char*>dtext)
                    tlen = len(dtext)
            else:
                continue
            klen = arow[i].key_len
            if <Py_ssize_t>arow[i].key_off + klen > blen:
                raise ValueError("attribute key outside the buffer")
            if klen + tlen + 2 > cap:
                cap = (klen + tlen + 2) * 2
                grown = <uint8_t*>malloc(cap)
                if grown == NULL:
                    raise MemoryError()
                free(scratch)
                scratch = grown
            scratch[0] = arow[i].where
            memcpy(scratch + 1, base + arow[i].key_off, klen)
            scratch[1 + klen] = 0
            memcpy(scratch + 2 + klen, text, tlen)
            h = xxh64(scratch, klen + tlen + 2)
            tout[i] = h if h else 1
            h = xxh64(scratch, klen + 1)
            kout[i] = h if h else 1
    finally:
        free(scratch)
    return names, terms, keys
