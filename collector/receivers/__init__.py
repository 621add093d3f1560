"""Receive stage: one module per protocol; transport only (bytes in, batch out, status back)."""
