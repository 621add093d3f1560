# cython: language_level=3
# Compiled twin of the wire reader in collector/codec/otlp.py (_field, _varint, _expect): a
# bounds-checked cursor over protobuf bytes, shared by every compiled protobuf decoder.  Errors are
# raised as collector.errors.DecodeError with the reference's messages.
from libc.stdint cimport uint8_t, uint64_t


cdef inline uint64_t rd64(const uint8_t* p) noexcept nogil:
    """A little-endian 64-bit load (protobuf fixed64; Clew's chunk headers)."""
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40) | (<uint64_t>p[6] << 48)
            | (<uint64_t>p[7] << 56))


cdef inline uint64_t rd32(const uint8_t* p) noexcept nogil:
    """A little-endian 32-bit load (protobuf fixed32; Clew's chunk headers)."""
    return <uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)


cdef struct Field:
    uint64_t number
    int wt
    Py_ssize_t start     # value start (payload for wire type 2)
    Py_ssize_t end       # value end
    uint64_t value       # varint value for wire type 0
    Py_ssize_t next      # position after the field


cdef inline int pb_fail(str msg) except -1:
    from collector.errors import DecodeError  # error path only; the import is a cache look-up
    raise DecodeError(msg)


cdef inline int read_varint(const uint8_t* p, Py_ssize_t* pos, Py_ssize_t end, uint64_t* out,
                            str ctx, Py_ssize_t kpos) except -1:
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef uint8_t b
    while True:
        if pos[0] >= end:
            pb_fail(f"{ctx}: truncated varint at offset {kpos}")
        if shift >= 70:
            pb_fail(f"{ctx}: varint too long at offset {kpos}")
        b = p[pos[0]]
        pos[0] += 1
        if shift < 64:
            result |= (<uint64_t>(b & 0x7F)) << shift
        shift += 7
        if b < 0x80:
            out[0] = result
            return 0


cdef inline int read_field(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Field* f,
                           str ctx) except -1:
    """Read the field at ``pos`` into ``f`` (``f.next`` is the position after it)."""
    cdef Py_ssize_t kpos = pos
    cdef uint64_t key, length
    read_varint(p, &pos, end, &key, ctx, kpos)
    f.number = key >> 3
    f.wt = <int>(key & 7)
    f.value = 0
    if f.number == 0:
        pb_fail(f"{ctx}: invalid field number 0 at offset {kpos}")
    if f.wt == 0:
        read_varint(p, &pos, end, &f.value, ctx, kpos)
        f.start = pos
        f.end = pos
    elif f.wt == 1:
        if end - pos < 8:
            pb_fail(f"{ctx}: truncated fixed64 at offset {kpos}")
        f.start = pos
        f.end = pos + 8
    elif f.wt == 2:
        read_varint(p, &pos, end, &length, ctx, kpos)
        if length > <uint64_t>(end - pos):
            pb_fail(f"{ctx}: length {length} overruns its message at offset {kpos}")
        f.start = pos
        f.end = pos + <Py_ssize_t>length
    elif f.wt == 5:
        if end - pos < 4:
            pb_fail(f"{ctx}: truncated fixed32 at offset {kpos}")
        f.start = pos
        f.end = pos + 4
    else:
        pb_fail(f"{ctx}: unsupported wire type {f.wt} at offset {kpos}")
    f.next = f.end
    return 0


cdef inline int expect(int wt, int want, str ctx, str name, Py_ssize_t kpos) except -1:
    if wt != want:
        pb_fail(f"{ctx}.{name}: wire type {wt}, expected {want} (at offset {kpos})")
    return 0
