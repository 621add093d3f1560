"""Clew collector: receive, decode, validate and store spans (the ingest side of the appliance)."""
