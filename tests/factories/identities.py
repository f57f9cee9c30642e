"""Small typed factories for operators, sellers and buyers with a known bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from agora.db import Database
from agora.identities import service
from agora.models import Buyer, Operator, Role, Seller


@dataclass(frozen=True)
class Actor:
    role: Role
    handle: str
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_operator(session: Session, handle: str = "ops") -> Actor:
    operator = Operator(handle=handle, name=handle)
    session.add(operator)
    session.flush()
    token = f"{handle}-operator-token"
    service.add_token(session, Role.OPERATOR, operator.id, token)
    return Actor(Role.OPERATOR, handle, operator.id, token)


def add_seller(session: Session, handle: str = "acme", tax_form: str = "W-9") -> Actor:
    seller = Seller(handle=handle, name=handle.title(), tax_form=tax_form, data_sharing=True)
    session.add(seller)
    session.flush()
    token = f"{handle}-seller-token"
    service.add_token(session, Role.SELLER, seller.id, token)
    return Actor(Role.SELLER, handle, seller.id, token)


def add_buyer(session: Session, account: str = "111122223333", enterprise: bool = False) -> Actor:
    buyer = Buyer(account=account, email=f"ops-{account}@buyer.example", enterprise=enterprise)
    session.add(buyer)
    session.flush()
    token = f"buyer-{account}-token"
    service.add_token(session, Role.BUYER, buyer.id, token)
    return Actor(Role.BUYER, account, buyer.id, token)


@dataclass(frozen=True)
class Cast:
    """One of each role, plus a second seller and buyer for cross-tenant checks."""

    operator: Actor
    seller: Actor
    other_seller: Actor
    buyer: Actor
    other_buyer: Actor

    def of(self, role: Role) -> Actor:
        return {Role.OPERATOR: self.operator, Role.SELLER: self.seller, Role.BUYER: self.buyer}[role]


def add_cast(db: Database) -> Cast:
    with db.unit_of_work() as session:
        return Cast(
            operator=add_operator(session),
            seller=add_seller(session, "acme"),
            other_seller=add_seller(session, "globex"),
            buyer=add_buyer(session, "111122223333"),
            other_buyer=add_buyer(session, "444455556666"),
        )
