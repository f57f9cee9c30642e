"""Alibaba Cloud Marketplace and Compute Nest wire compatibility (tea-openapi SDKs; api-surface.md §5-§7)."""
