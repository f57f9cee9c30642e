"""The seller portal's pricing page with its preview of a price change, and private offers (issue 18,
items 2 and 3)."""

from __future__ import annotations

from agora.web.core import page_router

router = page_router()
