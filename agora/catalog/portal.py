"""What the seller portal's listing pages read and write beyond the API's own shapes: the seller's listings
with what blocks each, a listing's change requests and files (a PDF with its page count), and storing an
upload — the same checks and the same writes as `POST /api/v1/products/{code}/assets` (LST-03)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agora import audit
from agora.auth import Principal
from agora.catalog import assets as asset_rules
from agora.catalog import service
from agora.catalog.assets import AssetKind
from agora.catalog.storage import Incoming, LocalAssetStorage
from agora.db import Database
from agora.errors import Invalid, NotFound
from agora.models import ChangeRequest, Product, ProductAsset


@dataclass(frozen=True)
class Listing:
    code: str
    title: str
    kind: str
    state: str
    updated_at: Any
    rejection_reason: str | None
    missing: list[service.Missing]
    pending_changes: int


def seller_listings(session: Session, principal: Principal) -> list[Listing]:
    """Every listing of this seller, newest change first, each with what stands before its submission."""
    products = session.scalars(
        select(Product).where(Product.seller_id == principal.id).order_by(Product.updated_at.desc(), Product.id)
    )
    pending: dict[int, int] = {}
    for product_id in session.scalars(
        select(ChangeRequest.product_id)
        .join(Product, Product.id == ChangeRequest.product_id)
        .where(Product.seller_id == principal.id, ChangeRequest.state == "pending")
    ):
        pending[product_id] = pending.get(product_id, 0) + 1
    return [
        Listing(
            code=p.code,
            title=p.title,
            kind=p.kind,
            state=p.state,
            updated_at=p.updated_at,
            rejection_reason=p.rejection_reason,
            missing=service.missing_for_submission(session, p) if p.state == "draft" else [],
            pending_changes=pending.get(p.id, 0),
        )
        for p in products
    ]


def change_requests(session: Session, product: Product) -> list[ChangeRequest]:
    return list(
        session.scalars(
            select(ChangeRequest)
            .where(ChangeRequest.product_id == product.id)
            .order_by(ChangeRequest.created_at.desc(), ChangeRequest.id.desc())
        )
    )


def pdf_pages(path: Path | None) -> int | None:
    """The page count of a stored PDF (it was checked at upload, so it reads)."""
    if path is None:
        return None
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        return len(PdfReader(path).pages)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError):
        return None


def files_of(session: Session, product: Product) -> dict[str, list[dict[str, Any]]]:
    """The listing's files by kind, oldest first; PDFs carry their page count."""
    storage = LocalAssetStorage()
    out: dict[str, list[dict[str, Any]]] = {k.value: [] for k in AssetKind}
    for asset in session.scalars(
        select(ProductAsset).where(ProductAsset.product_id == product.id).order_by(ProductAsset.id)
    ):
        entry: dict[str, Any] = {
            "digest": asset.digest,
            "filename": asset.filename,
            "size": asset.size,
            "content_type": asset.content_type,
            "image": asset.content_type.startswith("image/"),
            "pages": pdf_pages(storage.file(asset.digest)) if asset.content_type == "application/pdf" else None,
        }
        out[asset.kind].append(entry)
    return out


def asset_file(session: Session, principal: Principal, code: str, digest: str) -> tuple[Path, ProductAsset]:
    """A file of a listing its seller manages (drafts included), for the portal's previews."""
    product = service.get_managed(session, principal, code)
    asset = session.scalar(
        select(ProductAsset).where(ProductAsset.product_id == product.id, ProductAsset.digest == digest)
    )
    path = LocalAssetStorage().file(digest) if asset is not None else None
    if asset is None or path is None:
        raise NotFound(f"no file {digest} on product {code!r}")
    return path, asset


# --- storing an upload (the API's route and the portal's form share this) -------------------------------------


def kind_of(fields: dict[str, str]) -> AssetKind | None:
    value = fields.get("kind", "")
    return AssetKind(value) if value in AssetKind.__members__.values() else None


def within_limit(fields: dict[str, str], size: int) -> None:
    """While the file streams in: the limit of its kind, or of the largest kind while the kind is unknown."""
    kind = kind_of(fields)
    if kind is not None:
        asset_rules.check_size(kind, size)
    elif size > asset_rules.MAX_BYTES:
        raise asset_rules.TooLarge(f"file: an upload may be at most {asset_rules.MAX_TEXT} [LST-03]")


def check_editable(db: Database, principal: Principal, code: str) -> None:
    with db.reader() as session:
        service.check_assets_editable(service.get_managed(session, principal, code))


def store_asset(
    db: Database,
    principal: Principal,
    code: str,
    fields: dict[str, str],
    filename: str | None,
    incoming: Incoming | None,
    storage: LocalAssetStorage,
    request_id: str | None = None,
) -> ProductAsset:
    """Check the received file by content (LST-03) and keep it: a kind with one file replaces the old one."""
    kind = kind_of(fields)
    if kind is None:
        choices = ", ".join(k.value for k in AssetKind)
        raise Invalid.at("kind", f"give the kind of file: one of {choices}")
    if incoming is None:
        raise Invalid.at("file", "give the file, in the multipart field named file")
    incoming.finish()
    filename = filename or kind.value
    content_type = asset_rules.check_content(kind, incoming.path, filename)
    with db.unit_of_work() as session:
        session.info["request_id"] = request_id
        product = service.get_managed(session, principal, code)
        service.check_assets_editable(product)
        rule = asset_rules.RULES[kind]
        if rule.max_count > 1 and service.count_assets(session, product, kind) >= rule.max_count:
            raise asset_rules.TooMany(f"kind: at most {rule.max_count} {kind.value} files per product [LST-03]")
        size = incoming.size
        digest = storage.keep(incoming)
        if rule.max_count == 1:
            for old in session.scalars(
                select(ProductAsset).where(ProductAsset.product_id == product.id, ProductAsset.kind == kind.value)
            ):
                session.delete(old)
            session.flush()
        existing = session.scalar(
            select(ProductAsset).where(
                ProductAsset.product_id == product.id, ProductAsset.kind == kind.value, ProductAsset.digest == digest
            )
        )
        asset = existing or ProductAsset(
            product_id=product.id,
            kind=kind.value,
            digest=digest,
            content_type=content_type,
            size=size,
            filename=filename[:255],
        )
        session.add(asset)
        session.flush()
        audit.record(
            session,
            actor=principal.actor,
            action="product.asset_upload",
            target_type="product",
            target_id=code,
            after={"kind": kind.value, "digest": digest, "size": size, "content_type": content_type},
        )
        return asset


def remove_asset(db: Database, principal: Principal, code: str, digest: str) -> None:
    """Take a file off a listing while its files may change (a draft, or limited)."""
    with db.unit_of_work() as session:
        product = service.get_managed(session, principal, code)
        service.check_assets_editable(product)
        asset = session.scalar(
            select(ProductAsset).where(ProductAsset.product_id == product.id, ProductAsset.digest == digest)
        )
        if asset is None:
            raise NotFound(f"no file {digest} on product {code!r}")
        session.delete(asset)
        audit.record(
            session,
            actor=principal.actor,
            action="product.asset_remove",
            target_type="product",
            target_id=code,
            before={"kind": asset.kind, "digest": digest},
        )
