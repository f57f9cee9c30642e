"""Metering: one ingestion service for every front door, usage queries, platform-measured usage."""
