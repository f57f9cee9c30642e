"""The web UI. For now the storefront's front page: what is listed publicly, escaped by Jinja2."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from agora.models import Buyer, Product, Seller

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    db = request.app.state.db
    with db.reader() as session:
        products = list(
            session.execute(
                select(Product.code, Product.title, Product.kind, Product.listing, Seller.name)
                .join(Seller, Seller.id == Product.seller_id)
                .where(Product.state == "public")
                .order_by(Product.title)
            )
        )
        counts = {
            "sellers": session.scalar(select(func.count()).select_from(Seller)),
            "buyers": session.scalar(select(func.count()).select_from(Buyer)),
        }
    return templates.TemplateResponse(request, "home.html", {"products": products, "counts": counts})
