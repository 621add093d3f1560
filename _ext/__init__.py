"""Compiled (Cython) twins of the pure-Python codecs in collector/; never imported directly."""
