"""The seller portal's listings: the product list, the listing wizard with its uploads, review and sign-off,
change requests of public listings (issue 18, item 1).

Every write goes through the catalog service the API uses (`agora.catalog.service`, `agora.catalog.portal`),
with the fields validated by the API's own schema (`ListingFields`), so every rule and its ID is the API's:
a form only shows the problems next to the fields they concern and keeps what the seller typed.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agora.catalog import assets as asset_rules
from agora.catalog import portal, service, uploads
from agora.catalog.assets import AssetKind
from agora.catalog.schemas import ProductCreate, ProductKind
from agora.catalog.storage import LocalAssetStorage
from agora.catalog.views import STEP_OF, STEPS, product_out
from agora.errors import AgoraError, Invalid, NotFound
from agora.models import Role
from agora.pricing import service as pricing_service
from agora.web import listing_forms as forms
from agora.web import present, sessions
from agora.web.core import CsrfRejected, page_router, redirect, render, require
from agora.web.sessions import Viewer

pages = page_router()
seller = require(Role.SELLER)

STEP_TITLES = {
    "access": "Access",
    "general": "General",
    "category": "Category",
    "pricing": "Pricing",
    "agreement": "Agreement",
    "review": "Review and submit",
}
ORDER = [*STEPS, "review"]
STATE_TEXT = {
    "draft": "Draft",
    "submitted": "In review",
    "publishing": "Publishing",
    "limited": "Limited — awaiting your sign-off",
    "public": "Public",
    "restricted": "Withdrawn",
}
# Which step a kind of file is uploaded on, and its label on the form.
FILE_STEP = {
    AssetKind.LOGO: "general",
    AssetKind.USER_GUIDE: "general",
    AssetKind.SCREENSHOT: "general",
    AssetKind.VIDEO: "general",
    AssetKind.CERTIFICATION: "category",
    AssetKind.EULA: "agreement",
}
FILE_LABEL = {
    AssetKind.LOGO: "Logo",
    AssetKind.USER_GUIDE: "User guide",
    AssetKind.SCREENSHOT: "Screenshots",
    AssetKind.VIDEO: "Video",
    AssetKind.CERTIFICATION: "Certifications",
    AssetKind.EULA: "Custom EULA",
}
FILE_ACCEPT = {
    AssetKind.LOGO: "image/png",
    AssetKind.USER_GUIDE: "application/pdf",
    AssetKind.SCREENSHOT: "image/png,image/jpeg",
    AssetKind.VIDEO: "video/mp4,video/webm",
    AssetKind.CERTIFICATION: "image/png,image/jpeg",
    AssetKind.EULA: "application/pdf",
}


def _errors(exc: Invalid) -> dict[str, list[str]]:
    """A refusal's problems by the form field they belong to, each message as the API words it (rule IDs
    included)."""
    out: dict[str, list[str]] = {}
    for problem in exc.problems or [{"loc": "form", "msg": exc.detail}]:
        message = problem["msg"].removeprefix("Value error, ")  # Pydantic's prefix of a validator's own words
        out.setdefault(forms.field_key(problem["loc"]), []).append(message)
    return out


def _missing(product_missing: list[service.Missing]) -> dict[str, list[service.Missing]]:
    """What blocks submission, by wizard step (the logo and user guide are uploaded on General)."""
    out: dict[str, list[service.Missing]] = {step: [] for step in STEPS}
    for m in product_missing:
        top = m.field.split(".")[0]
        step = "general" if top == "assets" else STEP_OF.get(top, "access")
        out[step].append(m)
    return out


def _needs(missing: list[service.Missing]) -> dict[str, list[str]]:
    """What blocks submission, by the form field it concerns, as the API words it (with its rule ID)."""
    out: dict[str, list[str]] = {}
    for m in missing:
        key = forms.field_key(m.field)
        message = f"{forms.label_of(key).lower()} is required" if m.message == "required to submit" else m.message
        out.setdefault(key, []).append(message + (f" [{m.rule}]" if m.rule else ""))
    return out


# --- the list -------------------------------------------------------------------------------------------------


@pages.get("/seller/products", response_class=HTMLResponse)
def products(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    with request.app.state.db.reader() as session:
        listings = portal.seller_listings(session, viewer.principal)
    context = {
        "listings": listings,
        "state_text": STATE_TEXT,
        "kind_label": present.kind_label,
        "label_of": forms.label_of,
        "step_of": _step_of_field,
    }
    return render(request, "seller/listings.html", context)


def _error_label(key: str) -> str:
    if key.startswith("file-"):
        kind = key[5:]
        return FILE_LABEL[AssetKind(kind)] if kind in AssetKind.__members__.values() else kind
    return forms.label_of(key)


def _step_of_field(name: str) -> str:
    top = name.split(".")[0]
    return "general" if top == "assets" else STEP_OF.get(top, "access")


# --- a new listing: its first step -----------------------------------------------------------------------------


def _new_form(
    request: Request, typed: dict[str, str], errors: dict[str, list[str]] | None = None, status: int = 200
) -> HTMLResponse:
    context = {
        "typed": typed,
        "errors": errors or {},
        "kinds": [(k.value, present.kind_label(k.value)) for k in ProductKind],
        "label_of": forms.label_of,
    }
    return render(request, "seller/wizard_new.html", context, status)


@pages.get("/seller/products/new", response_class=HTMLResponse)
def new_listing(request: Request, viewer: Viewer = Depends(seller)) -> HTMLResponse:
    return _new_form(request, {})


@pages.post("/seller/products/new", response_class=HTMLResponse)
async def create_listing(request: Request, viewer: Viewer = Depends(seller)) -> Response:
    typed = forms.text_of(await request.form())
    body = {k: typed.get(k, "").strip() for k in ("code", "kind", "title")}

    def work() -> Response:
        try:
            data = ProductCreate.model_validate(body)
        except ValidationError as exc:
            located = [(".".join(str(p) for p in e["loc"]) or "form", e["msg"]) for e in exc.errors()]
            return _new_form(request, typed, _errors(Invalid.of(located)), 422)
        try:
            with request.app.state.db.unit_of_work() as session:
                product = service.create_product(session, viewer.principal, data)
                code = product.code
        except Invalid as exc:
            return _new_form(request, typed, _errors(exc), 422)
        except AgoraError as exc:  # a taken code (409)
            return _new_form(request, typed, {"code": [exc.detail]}, exc.status_code)
        return redirect(request, f"/seller/products/{code}?step=general", ("success", "Draft saved. Next: General."))

    return await run_in_threadpool(work)


# --- the wizard -----------------------------------------------------------------------------------------------


def _wizard(
    request: Request,
    viewer: Viewer,
    code: str,
    step: str,
    *,
    typed: dict[str, str] | None = None,
    pricing: forms.PricingForm | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    if step not in ORDER:
        step = "access"
    with request.app.state.db.reader() as session:
        product = service.get_managed(session, viewer.principal, code)
        record = product_out(session, product)
        missing = service.missing_for_submission(session, product)
        files = portal.files_of(session, product)
        changes = portal.change_requests(session, product)
        versioned = bool(pricing_service.versions(session, product))
    by_step = _missing(missing)
    values = typed if typed is not None else forms.step_values(step, record) if step in STEPS else {}
    if step == "pricing" and pricing is None:
        pricing = forms.pricing_from_document(product.kind, record.get("pricing"))
    context = {
        "p": record,
        "step": step,
        "steps": ORDER,
        "step_titles": STEP_TITLES,
        "next_step": ORDER[ORDER.index(step) + 1] if step != "review" else None,
        "values": values,
        "errors": errors or {},
        "missing": missing,
        "missing_by_step": by_step,
        "needs": _needs(missing),
        "files": files,
        "file_kinds": [k for k, s in FILE_STEP.items() if s == step],
        "file_label": FILE_LABEL,
        "file_accept": FILE_ACCEPT,
        "file_rules": asset_rules.RULES,
        "changes": changes,
        "pricing": pricing.pad() if pricing is not None else None,
        "prices_versioned": versioned,
        "editable": record["state"] in ("draft", "limited", "public", "restricted"),
        "files_editable": record["state"] in ("draft", "limited"),
        "state_text": STATE_TEXT,
        "kind_label": present.kind_label,
        "label_of": forms.label_of,
        "error_label": _error_label,
        "step_of": _step_of_field,
        "durations": forms.DURATIONS,
        "ml_prices": forms.ML_PRICES,
        "usage_categories": forms.USAGE_CATEGORIES,
        "reporting": forms.REPORTING,
        "pricing_labels": forms.PRICING_LABELS,
        "months_label": present.months_label,
    }
    return render(request, "seller/wizard.html", context, status)


@pages.get("/seller/products/{code}", response_class=HTMLResponse)
def listing(request: Request, code: str, step: str = "", viewer: Viewer = Depends(seller)) -> HTMLResponse:
    if not step:
        with request.app.state.db.reader() as session:
            state = service.get_managed(session, viewer.principal, code).state
        step = "access" if state == "draft" else "review"
    return _wizard(request, viewer, code, step)


@pages.post("/seller/products/{code}/steps/{step}", response_class=HTMLResponse)
async def save_step(request: Request, code: str, step: str, viewer: Viewer = Depends(seller)) -> Response:
    """Save one step as a draft (a published listing's edit becomes a change request), then the next step."""
    if step not in STEPS:
        raise NotFound(f"no wizard step {step!r}")
    typed = forms.text_of(await request.form())
    return await run_in_threadpool(_save, request, viewer, code, step, typed)


def _save(request: Request, viewer: Viewer, code: str, step: str, typed: dict[str, str]) -> Response:
    with request.app.state.db.reader() as session:
        product = service.get_managed(session, viewer.principal, code)
        record = product_out(session, product)
        kind = product.kind
        versioned = bool(pricing_service.versions(session, product))
    fields = forms.step_fields(step, kind, typed)
    pricing_form = None
    problems: list[tuple[str, str]] = []
    if step == "pricing":
        pricing_form = forms.pricing_from_form(kind, record.get("pricing"), typed)
        if not versioned:  # a versioned price changes on the pricing page (CHG-02), never here
            fields["pricing"], problems = forms.document_of(pricing_form)
        more = typed.get("add", "")
        if more:  # "add another row": show the form again with one more blank row, nothing saved
            return _wizard(request, viewer, code, step, typed=typed, pricing=pricing_form.pad(more))
    patch = forms.changed(fields, record)
    try:
        if problems:
            raise Invalid.of(problems)
        validated = service.validate_patch(patch)
        with request.app.state.db.unit_of_work() as session:
            _, change = service.update_product(session, viewer.principal, code, validated)
            change_id = change.id if change is not None else None
    except Invalid as exc:
        return _wizard(request, viewer, code, step, typed=typed, pricing=pricing_form, errors=_errors(exc), status=422)
    except AgoraError as exc:  # under review: nothing can change until it ends
        return _wizard(
            request,
            viewer,
            code,
            step,
            typed=typed,
            pricing=pricing_form,
            errors={"form": [exc.detail]},
            status=exc.status_code,
        )
    following = ORDER[ORDER.index(step) + 1]
    target = f"/seller/products/{code}?step={following}"
    if change_id is not None:
        message = f"Your change was sent to the marketplace for review (change request #{change_id})."
        return redirect(request, f"/seller/products/{code}?step=review#changes", ("success", message))
    if step == "pricing" and not versioned:
        with request.app.state.db.reader() as session:
            listed = service.get_managed(session, viewer.principal, code)
            blocking = [
                m for m in service.missing_for_submission(session, listed) if m.field.split(".")[0] == "pricing"
            ]
        if blocking:  # saved as a draft, but the rules refuse it: stay here, the problems are shown by their fields
            message = "Pricing saved as a draft, but it cannot be submitted like this: see the problems below."
            return redirect(request, f"/seller/products/{code}?step=pricing", ("error", message))
    done = "Nothing changed on" if not patch else "Saved:"
    return redirect(request, target, ("success", f"{done} {STEP_TITLES[step]}. Next: {STEP_TITLES[following]}."))


# --- review, sign-off ----------------------------------------------------------------------------------------


@pages.post("/seller/products/{code}/submit", response_class=HTMLResponse)
def submit(request: Request, code: str, viewer: Viewer = Depends(seller)) -> Response:
    try:
        with request.app.state.db.unit_of_work() as session:
            service.submit(session, viewer.principal, code)
    except Invalid as exc:
        return _wizard(request, viewer, code, "review", errors={"submit": [exc.detail]}, status=422)
    except AgoraError as exc:
        return _wizard(request, viewer, code, "review", errors={"submit": [exc.detail]}, status=exc.status_code)
    message = "Submitted for review. The marketplace reviews it and tells you by e-mail."
    return redirect(request, f"/seller/products/{code}?step=review", ("success", message))


@pages.post("/seller/products/{code}/sign-off", response_class=HTMLResponse)
def sign_off(request: Request, code: str, viewer: Viewer = Depends(seller)) -> Response:
    try:
        with request.app.state.db.unit_of_work() as session:
            service.sign_off(session, viewer.principal, code)
    except AgoraError as exc:
        return _wizard(request, viewer, code, "review", errors={"sign_off": [exc.detail]}, status=exc.status_code)
    return redirect(request, f"/seller/products/{code}?step=review", ("success", "Signed off: your listing is public."))


@pages.post("/seller/products/{code}/files/{digest}/remove", response_class=HTMLResponse)
async def remove_file(request: Request, code: str, digest: str, viewer: Viewer = Depends(seller)) -> Response:
    typed = forms.text_of(await request.form())
    step = typed.get("step") if typed.get("step") in STEPS else "general"

    def work() -> Response:
        try:
            portal.remove_asset(request.app.state.db, viewer.principal, code, digest)
        except Invalid as exc:
            return _wizard(request, viewer, code, str(step), errors=_errors(exc), status=422)
        except AgoraError as exc:
            if exc.status_code == 404:
                raise
            return _wizard(request, viewer, code, str(step), errors={"files": [exc.detail]}, status=exc.status_code)
        return redirect(request, f"/seller/products/{code}?step={step}#files", ("success", "File removed."))

    return await run_in_threadpool(work)


@pages.get("/seller/products/{code}/files/{digest}")
def file(request: Request, code: str, digest: str, viewer: Viewer = Depends(seller)) -> FileResponse:
    """A listing's file for its seller's previews (a draft's files are not public)."""
    with request.app.state.db.reader() as session:
        path, asset = portal.asset_file(session, viewer.principal, code, digest)
        content_type, filename = asset.content_type, asset.filename
    return FileResponse(
        path,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=3600", **asset_rules.served_headers(content_type, filename)},
    )


# --- uploads --------------------------------------------------------------------------------------------------
# Not on `pages`: its CSRF check reads the whole form before the route runs, which for an upload would
# receive the file before anything is checked. Here the token travels in the form's first field (or the
# X-CSRF-Token header when uploads.js sends the file) and is checked before the first byte of the file is
# kept; the seller's right to change the listing is checked before the body is read at all.

uploads_router = APIRouter(include_in_schema=False)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@uploads_router.post("/seller/products/{code}/files", response_model=None)
async def upload(request: Request, code: str, viewer: Viewer = Depends(seller)) -> Response:
    """LST-03, as `POST /api/v1/products/{code}/assets`: checked by content, limited per kind, nothing partial
    kept. Multipart fields `csrf_token` (first), `kind`, `step`, then `file`."""
    cookie = request.cookies.get(sessions.CSRF_COOKIE)
    header = request.headers.get(sessions.CSRF_HEADER)

    def csrf_ok(fields: dict[str, str]) -> bool:
        return sessions.csrf_valid(cookie, header if header is not None else fields.get(sessions.CSRF_FIELD))

    def check(fields: dict[str, str], size: int) -> None:
        if not csrf_ok(fields):
            raise CsrfRejected()
        portal.within_limit(fields, size)

    db = request.app.state.db
    storage = LocalAssetStorage()
    kind: AssetKind | None = None
    step = "general"
    try:
        await run_in_threadpool(portal.check_editable, db, viewer.principal, code)
        with storage.incoming() as incoming:
            received = await uploads.receive(request, incoming, check)
            if not csrf_ok(received.fields):
                raise CsrfRejected()
            kind = portal.kind_of(received.fields)
            step = FILE_STEP.get(kind, "general") if kind else "general"
            await run_in_threadpool(
                portal.store_asset,
                db,
                viewer.principal,
                code,
                received.fields,
                received.filename if received.file is not None and received.file.size else None,
                received.file if received.file is not None and received.file.size else None,
                storage,
                getattr(request.state, "request_id", None),
            )
    except (Invalid, asset_rules.TooLarge, asset_rules.TooMany) as exc:
        message = exc.problems[0]["msg"] if isinstance(exc, Invalid) and exc.problems else exc.detail
        if kind is None and isinstance(exc, Invalid) and exc.problems and exc.problems[0]["loc"] == "kind":
            message = exc.detail
        if _wants_json(request):
            return JSONResponse({"error": exc.code, "detail": message}, exc.status_code)
        key = f"file-{kind.value}" if kind else "files"
        status = exc.status_code
        return await run_in_threadpool(
            lambda: _wizard(request, viewer, code, step, errors={key: [message]}, status=status)
        )
    label = FILE_LABEL[kind] if kind else "File"
    target = f"/seller/products/{code}?step={step}#files"
    if _wants_json(request):
        return JSONResponse({"location": target})
    return redirect(request, target, ("success", f"{label} uploaded."))


router = APIRouter(include_in_schema=False)
router.include_router(pages)
router.include_router(uploads_router)
