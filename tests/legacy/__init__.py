"""Test harness: real legacy Jaeger and Zipkin clients, run from their own environment."""
