# cython: language_level=3
# The decoders' output rows as C structs: byte-for-byte mirrors of collector.model.SPAN_DTYPE and
# ATTR_DTYPE (one home; the OTLP decoder writes them, the term hasher reads them).
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t


cdef packed struct SpanRow:
    uint8_t trace_id[16]      # left-aligned, zero padded
    uint8_t span_id[8]
    uint8_t parent_span_id[8]
    uint8_t trace_id_len      # length seen on the wire
    uint8_t span_id_len
    uint8_t parent_id_len     # 0 for a root span
    uint8_t kind              # OTLP span kind
    uint8_t status_code       # OTLP status code
    uint64_t start_ns
    uint64_t end_ns
    uint32_t span_off         # Span message bytes in the request buffer
    uint32_t span_len
    uint32_t name_off         # span name bytes
    uint32_t name_len
    uint32_t resource         # index into batch.resources
    uint32_t scope            # index into batch.scopes
    uint32_t attr_start       # first row of this span's attributes
    uint32_t attr_count
    uint32_t state_off        # the span's W3C tracestate text in the request buffer
    uint32_t state_len


cdef packed struct AttrRow:
    uint32_t span             # row in the spans array
    uint8_t where             # AT_SPAN, AT_EVENT or AT_LINK
    uint8_t vtype             # VT_*; 0 when the value was empty
    uint32_t key_off
    uint32_t key_len
    uint32_t val_off          # string/bytes payload, or the raw AnyValue for arrays and kvlists
    uint32_t val_len
    int64_t num               # int value, bool as 0/1, or the IEEE-754 bits of a double
