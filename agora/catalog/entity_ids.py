"""The Catalog API's entity ids, shaped like AWS's: `prod-` or `offer-` and 13 lower-case letters and digits.
Every product gets both at creation (its own and its public pricing's, which is an `Offer@1.0` entity too),
whichever door creates it; a manifest may fix them."""

from __future__ import annotations

import re
import secrets

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ENTITY_ID = re.compile(r"(prod|offer)-[a-z0-9]{5,40}")


def new_id(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(ALPHABET) for _ in range(13))


def new_product_id() -> str:
    return new_id("prod")


def new_offer_id() -> str:
    return new_id("offer")
