# cython: language_level=3, boundscheck=False, wraparound=False
# Compiled twin of collector/store/frames.py: chunk entries as columns, spans framed as
# ScopeSpans.spans fields, in one C pass each.
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from _ext.pbreader cimport rd32, rd64
from _ext.pbwriter cimport varint_size

import numpy as np

from collector.errors import StoreError

DEF HEADER_SIZE = 40


def walk(const uint8_t[::1] body):
    """(resource IDs u64, scope IDs u64, span offsets i64, span lengths u32) of every entry."""
    cdef Py_ssize_t pos = 0, end = body.shape[0], count = 0, i = 0
    cdef uint32_t n
    cdef const uint8_t* p = &body[0] if end else NULL
    while pos < end:  # count, and check, first
        if end - pos < HEADER_SIZE:
            raise StoreError("chunk: truncated entry header")
        n = <uint32_t>rd32(p + pos + 36)
        pos += HEADER_SIZE
        if end - pos < n:
            raise StoreError("chunk: truncated span")
        pos += n
        count += 1
    rids = np.empty(count, np.uint64)
    sids = np.empty(count, np.uint64)
    offs = np.empty(count, np.int64)
    lens = np.empty(count, np.uint32)
    cdef uint64_t[::1] r = rids
    cdef uint64_t[::1] s = sids
    cdef int64_t[::1] o = offs
    cdef uint32_t[::1] l = lens
    pos = 0
    while i < count:
        r[i] = rd64(p + pos)
        s[i] = rd64(p + pos + 8)
        n = <uint32_t>rd32(p + pos + 36)
        o[i] = pos + HEADER_SIZE
        l[i] = n
        pos += HEADER_SIZE + n
        i += 1
    return rids, sids, offs, lens


def frame(const uint8_t[::1] buf, offsets, lengths, order):
    """The spans ``buf[off[i]:off[i] + ln[i]]`` for ``i`` in ``order``, each framed as field 2."""
    cdef const int64_t[::1] off = np.ascontiguousarray(offsets, np.int64)
    cdef const uint32_t[::1] ln = np.ascontiguousarray(lengths, np.uint32)
    cdef const int64_t[::1] idx = np.ascontiguousarray(order, np.int64)
    cdef Py_ssize_t i, j, total = 0, size = buf.shape[0], w = 0
    cdef uint64_t n
    for j in range(idx.shape[0]):
        i = idx[j]
        if i < 0 or i >= off.shape[0] or off[i] < 0 or off[i] + ln[i] > size:
            raise IndexError(f"span {i} lies outside the buffer")
        total += 1 + varint_size(ln[i]) + ln[i]
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t* q = <uint8_t*>PyBytes_AS_STRING(out)
    for j in range(idx.shape[0]):
        i = idx[j]
        n = ln[i]
        q[w] = 0x12
        w += 1
        while n >= 0x80:
            q[w] = <uint8_t>((n & 0x7F) | 0x80)
            n >>= 7
            w += 1
        q[w] = <uint8_t>n
        w += 1
        memcpy(q + w, &buf[0] + off[i], ln[i])
        w += ln[i]
    return out
