"""Every page of the web UI, gathered into one router (`agora.web.install` mounts it)."""

from __future__ import annotations

from fastapi import APIRouter

from agora.web import (
    account,
    ops,
    ops_money,
    ops_oversight,
    seller_integration,
    seller_listings,
    seller_money,
    seller_offers,
    seller_pricing,
    signin,
    storefront,
    subscribe,
)

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(storefront.router)
router.include_router(subscribe.router)
router.include_router(account.router)
router.include_router(seller_money.router)
router.include_router(seller_integration.router)
router.include_router(seller_listings.router)
router.include_router(seller_pricing.router)
router.include_router(seller_offers.router)
router.include_router(ops.router)
router.include_router(ops_money.router)
router.include_router(ops_oversight.router)
