"""The seller portal's listings: the product list, the listing wizard with its uploads, review and sign-off,
change requests of public listings (issue 18, item 1)."""

from __future__ import annotations

from agora.web.core import page_router

router = page_router()
