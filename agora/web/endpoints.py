"""Every page of the web UI, gathered into one router (`agora.web.install` mounts it)."""

from __future__ import annotations

from fastapi import APIRouter

from agora.web import account, consoles, signin, storefront, subscribe

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(storefront.router)
router.include_router(consoles.router)
router.include_router(subscribe.router)
router.include_router(account.router)
