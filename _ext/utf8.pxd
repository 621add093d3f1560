# cython: language_level=3
# Strict UTF-8 validation for the compiled decoders: exactly what Python's decoder accepts
# (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
from libc.stdint cimport uint8_t


cdef inline bint utf8_valid(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k = 0
    cdef uint8_t c, c1
    while k < n:
        c = p[k]
        if c < 0x80:
            k += 1
            continue
        if c < 0xC2 or c > 0xF4:
            return False
        if c < 0xE0:
            if k + 1 >= n or (p[k + 1] & 0xC0) != 0x80:
                return False
            k += 2
        elif c < 0xF0:
            if k + 2 >= n:
                return False
            c1 = p[k + 1]
            if (c1 & 0xC0) != 0x80 or (p[k + 2] & 0xC0) != 0x80:
                return False
            if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 >= 0xA0):
                return False
            k += 3
        else:
            if k + 3 >= n:
                return False
            c1 = p[k + 1]
            if (c1 & 0xC0) != 0x80 or (p[k + 2] & 0xC0) != 0x80 or (p[k + 3] & 0xC0) != 0x80:
                return False
            if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 >= 0x90):
                return False
            k += 4
    return True
