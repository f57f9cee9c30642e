"""The seller's listings through the TestClient: the product list, the wizard's steps with the API's rule IDs
(LST-03, LST-07, PRC-02, PRC-03), uploads checked by content (LST-03), submit / reject / resubmit / approve /
sign off (LST-05), change requests of public listings, CSRF, and another seller's product answering 404."""

from __future__ import annotations

import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from agora import jobs, tasks
from agora.db import Database
from agora.limits import UPLOAD_LIMIT, body_limit
from agora.models import ChangeRequest, Product, ProductAsset
from tests.catalog import files
from tests.web.conftest import csrf_of, sign_in
from tests.web.market import BUYER, SELLER

OPS = {"Authorization": "Bearer demo-ops-token"}
ACME = {"Authorization": "Bearer demo-acme-token"}
NORTHWIND = {"Authorization": "Bearer demo-northwind-token"}


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))).replace(" :", ":")


@pytest.fixture
def seller(browser: TestClient) -> TestClient:
    assert sign_in(browser, *SELLER).status_code == 303
    return browser


def token(client: TestClient, url: str = "/seller/products") -> str:
    return csrf_of(client.get(url))


def new_listing(
    client: TestClient, code: str = "acme-backup", kind: str = "ami", title: str = "Acme Backup"
) -> Response:
    form = {"csrf_token": token(client, "/seller/products/new"), "code": code, "kind": kind, "title": title}
    return client.post("/seller/products/new", data=form)


def save(client: TestClient, code: str, step: str, **fields: str) -> Response:
    form = {"csrf_token": token(client, f"/seller/products/{code}?step={step}"), **fields}
    return client.post(f"/seller/products/{code}/steps/{step}", data=form)


def upload(
    client: TestClient, code: str, kind: str, data: bytes, name: str, *, csrf: str | None = None, **headers: str
) -> Response:
    fields = {"csrf_token": token(client, f"/seller/products/{code}") if csrf is None else csrf, "kind": kind}
    return client.post(
        f"/seller/products/{code}/files", data=fields, files={"file": (name, data, "image/png")}, headers=headers
    )


def complete(client: TestClient, code: str = "acme-backup") -> None:
    """A listing ready to submit: every step filled, a real PNG logo and a real PDF user guide."""
    assert new_listing(client, code).status_code == 303
    general = {"short_description": "Backups that restore", "regions": "us-east-1, eu-west-1"}
    assert save(client, code, "general", **general).status_code == 303
    assert save(client, code, "category", category="storage").status_code == 303
    assert save(client, code, "pricing", **{"hourly-0-type": "m5.large", "hourly-0-price": "0.12"}).status_code == 303
    assert save(client, code, "agreement", refund_policy="30 days: refunds@acme.example").status_code == 303
    assert upload(client, code, "logo", files.png(), "logo.png").status_code == 303
    assert upload(client, code, "user_guide", files.pdf(), "guide.pdf").status_code == 303


def product(db: Database, code: str) -> Product:
    with db.reader() as session:
        found = session.scalar(select(Product).where(Product.code == code))
        assert found is not None
        session.expunge(found)
        return found


# --- the list and who may see it ---------------------------------------------------------------------------------


def test_the_list_shows_every_listing_its_state_and_a_new_listing_link(seller: TestClient) -> None:
    assert new_listing(seller).status_code == 303
    page = seller.get("/seller/products")
    assert page.status_code == 200
    text = text_of(page.text)
    assert 'href="/seller/products/new"' in page.text and "New listing" in text
    assert "Acme Backup" in text and "Draft" in text
    assert "Acme Vault Server" in text and "Public" in text  # the demo's public listings are there too
    assert "Logo: upload a PNG logo [LST-03]" in text  # what is missing before submission
    assert "Northwind" not in text  # another seller's listings are not


def test_a_buyer_gets_403_and_an_anonymous_visitor_is_sent_to_sign_in(browser: TestClient) -> None:
    assert browser.get("/seller/products").headers["location"] == "/login?next=/seller/products"
    assert sign_in(browser, *BUYER).status_code == 303
    for url in ("/seller/products", "/seller/products/new", "/seller/products/acme-vault"):
        assert browser.get(url).status_code == 403


def test_another_sellers_product_is_404_everywhere(seller: TestClient, db: Database) -> None:
    theirs = "northwind-forecast"
    assert seller.get(f"/seller/products/{theirs}").status_code == 404
    assert save(seller, "acme-vault", "general").status_code in (303, 422)  # own product: reachable
    csrf = token(seller)
    assert seller.post(f"/seller/products/{theirs}/steps/general", data={"csrf_token": csrf}).status_code == 404
    assert seller.post(f"/seller/products/{theirs}/submit", data={"csrf_token": csrf}).status_code == 404
    assert seller.post(f"/seller/products/{theirs}/sign-off", data={"csrf_token": csrf}).status_code == 404
    assert upload(seller, theirs, "logo", files.png(), "logo.png", csrf=csrf).status_code == 404
    with db.reader() as session:
        digest = session.scalar(
            select(ProductAsset.digest)
            .join(Product, Product.id == ProductAsset.product_id)
            .where(Product.code == theirs)
        )
    if digest:
        assert seller.get(f"/seller/products/{theirs}/files/{digest}").status_code == 404


# --- CSRF ----------------------------------------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_is_403_and_changes_nothing(seller: TestClient, db: Database) -> None:
    assert new_listing(seller).status_code == 303
    refused = seller.post("/seller/products/acme-backup/steps/general", data={"short_description": "Hijacked"})
    assert refused.status_code == 403
    assert seller.post("/seller/products/new", data={"code": "x-y", "kind": "ami", "title": "X"}).status_code == 403
    assert seller.post("/seller/products/acme-backup/submit", data={"csrf_token": "0" * 64}).status_code == 403
    assert upload(seller, "acme-backup", "logo", files.png(), "logo.png", csrf="").status_code == 403
    assert product(db, "acme-backup").listing.get("short_description") is None
    with db.reader() as session:
        assert (
            session.scalar(select(ProductAsset).where(ProductAsset.product_id == product(db, "acme-backup").id)) is None
        )


# --- the wizard's validation -----------------------------------------------------------------------------------------


def test_a_bad_code_is_shown_next_to_its_field_and_what_was_typed_is_kept(seller: TestClient) -> None:
    page = new_listing(seller, code="Not A Code!", title="My <b>product</b>")
    assert page.status_code == 422
    assert 'id="e-code"' in page.text and 'aria-invalid="true"' in page.text
    assert 'value="Not A Code!"' in page.text
    assert 'value="My &lt;b&gt;product&lt;/b&gt;"' in page.text  # kept, and escaped
    taken = new_listing(seller, code="acme-vault")
    assert taken.status_code == 409 and "is taken" in taken.text


@pytest.mark.rule("LST-03")
def test_a_short_description_over_300_characters_is_refused_with_its_rule_id(seller: TestClient, db: Database) -> None:
    assert new_listing(seller).status_code == 303
    typed = "x" * 301
    page = save(seller, "acme-backup", "general", short_description=typed, regions="us-east-1")
    assert page.status_code == 422
    assert "may have at most 300 characters, got 301 [LST-03]" in page.text
    assert f">{typed}</textarea>" in page.text  # what the seller typed is kept
    assert 'aria-describedby="h-short_description e-short_description"' in page.text
    assert product(db, "acme-backup").listing.get("regions") is None  # nothing of the step was saved


def test_a_bad_region_is_refused_and_a_good_step_moves_on(seller: TestClient, db: Database) -> None:
    assert new_listing(seller).status_code == 303
    page = save(seller, "acme-backup", "general", regions="us-east-1, Mars")
    assert page.status_code == 422 and 'id="e-regions"' in page.text and 'value="us-east-1, Mars"' in page.text
    moved = save(seller, "acme-backup", "general", short_description="Backups", regions="us-east-1 eu-west-1")
    assert moved.status_code == 303 and moved.headers["location"] == "/seller/products/acme-backup?step=category"
    assert product(db, "acme-backup").listing["regions"] == ["us-east-1", "eu-west-1"]


@pytest.mark.rule("PRC-03")
def test_monthly_with_a_free_trial_is_saved_as_a_draft_and_shown_with_its_rule(
    seller: TestClient, db: Database
) -> None:
    assert new_listing(seller).status_code == 303
    saved = save(seller, "acme-backup", "pricing", monthly="30", free_trial_days="14")
    assert saved.status_code == 303 and saved.headers["location"].endswith("?step=pricing")
    page = seller.get(saved.headers["location"])
    assert "a free trial cannot be combined with monthly pricing [PRC-03]" in text_of(page.text)
    assert product(db, "acme-backup").pricing == {"monthly": "30", "free_trial_days": 14}
    assert 'value="30"' in page.text and 'value="14"' in page.text


@pytest.mark.rule("PRC-02")
def test_pricing_sections_follow_the_kind_and_hourly_with_usage_is_refused_by_rule(seller: TestClient) -> None:
    assert new_listing(seller, "acme-saas", "saas", "Acme SaaS").status_code == 303
    saas = text_of(seller.get("/seller/products/acme-saas?step=pricing").text)
    assert "Usage dimensions" in saas and "Contract dimensions" in saas
    assert "Hourly prices" not in saas and "Monthly fee" not in saas and "Tiered items" not in saas
    assert new_listing(seller).status_code == 303
    form = {
        "hourly-0-type": "m5.large",
        "hourly-0-price": "0.10",
        "usage_category": "users",
        "usage-0-name": "users",
        "usage-0-description": "Users per hour",
        "usage-0-unit": "UserHrs",
        "usage-0-rate": "0.125",
    }
    page = seller.get(save(seller, "acme-backup", "pricing", **form).headers["location"])
    assert "usage pricing cannot be combined with hourly pricing [PRC-02]" in text_of(page.text)


def test_a_price_that_is_not_a_number_is_refused_next_to_its_section(seller: TestClient) -> None:
    assert new_listing(seller).status_code == 303
    page = save(seller, "acme-backup", "pricing", **{"hourly-0-type": "m5.large", "hourly-0-price": "ten"})
    assert page.status_code == 422
    assert 'id="e-pricing.hourly"' in page.text and "[PRC-01]" in page.text
    assert 'value="ten"' in page.text
    missing_type = save(seller, "acme-backup", "pricing", **{"hourly-0-price": "0.10"})
    assert missing_type.status_code == 422 and "give the instance type of every price" in missing_type.text


def test_every_pricing_model_round_trips_through_its_form(seller: TestClient, db: Database) -> None:
    """Contract durations, ML per-instance sets, tiered items with their reporting method: what the form sends
    is the document the API stores, and the form shows it again."""
    assert new_listing(seller, "acme-seats", "saas", "Seats").status_code == 303
    contract = {
        "contract-0-name": "seats",
        "contract-0-description": "Seats",
        "contract-0-price-1": "10",
        "contract-0-price-12": "100",
    }
    assert save(seller, "acme-seats", "pricing", **contract).status_code == 303
    assert product(db, "acme-seats").pricing == {
        "contract": {"dimensions": [{"name": "seats", "description": "Seats", "prices": {"1": "10", "12": "100"}}]}
    }
    assert new_listing(seller, "acme-ml", "ml_model", "Model").status_code == 303
    ml = {"ml-0-type": "ml.m5.large", "ml-0-training": "1.00", "ml-0-batch_inference": "0.50"}
    assert save(seller, "acme-ml", "pricing", **ml).status_code == 303
    assert product(db, "acme-ml").pricing == {
        "ml": {"training": {"ml.m5.large": "1.00"}, "batch_inference": {"ml.m5.large": "0.50"}}
    }
    assert new_listing(seller, "acme-managed", "managed_service", "Managed").status_code == 303
    tiered = {
        "tiered_period": "hour",
        "tier-0-name": "cpu",
        "tier-0-reporting": "prometheus",
        "tier-0-metric": "cpu_seconds",
        "tier-0-up_to-0": "100",
        "tier-0-price-0": "0.05",
        "tier-0-price-1": "0.03",
    }
    assert save(seller, "acme-managed", "pricing", **tiered).status_code in (303,)
    assert product(db, "acme-managed").pricing == {
        "tiered": {
            "period": "hour",
            "items": [
                {
                    "name": "cpu",
                    "reporting": "prometheus",
                    "metric": "cpu_seconds",
                    "tiers": [{"up_to": 100, "price": "0.05"}, {"price": "0.03"}],
                }
            ],
        }
    }
    page = seller.get("/seller/products/acme-managed?step=pricing")
    assert 'value="cpu_seconds"' in page.text and '<option value="prometheus" selected>' in page.text


def test_add_another_row_shows_one_more_row_and_saves_nothing(seller: TestClient, db: Database) -> None:
    assert new_listing(seller).status_code == 303
    form = {"hourly-0-type": "m5.large", "hourly-0-price": "0.10", "add": "hourly"}
    page = save(seller, "acme-backup", "pricing", **form)
    assert page.status_code == 200
    assert 'value="m5.large"' in page.text and 'name="hourly-2-type"' in page.text
    assert product(db, "acme-backup").pricing is None


# --- uploads -----------------------------------------------------------------------------------------------------


@pytest.mark.rule("LST-03")
def test_a_png_that_is_not_a_png_is_refused_by_content_and_nothing_is_kept(seller: TestClient, db: Database) -> None:
    assert new_listing(seller).status_code == 303
    page = upload(seller, "acme-backup", "logo", files.jpeg(), "logo.png")
    assert page.status_code == 422
    assert "a logo must be PNG (checked by content, not name); 'logo.png' is a JPEG file [LST-03]" in text_of(page.text)
    assert 'id="e-file-logo"' in page.text
    as_json = upload(seller, "acme-backup", "logo", b"not an image", "logo.png", accept="application/json")
    assert as_json.status_code == 422 and "[LST-03]" in as_json.json()["detail"]
    guide = upload(seller, "acme-backup", "user_guide", b"%PDF-1.4 garbage", "guide.pdf")
    assert guide.status_code == 422 and "user_guide must be PDF" in text_of(guide.text)
    with db.reader() as session:
        assert (
            session.scalar(select(ProductAsset).where(ProductAsset.product_id == product(db, "acme-backup").id)) is None
        )


@pytest.mark.rule("LST-03")
def test_a_real_png_and_pdf_are_kept_previewed_and_the_pdf_pages_counted(seller: TestClient) -> None:
    assert new_listing(seller).status_code == 303
    done = upload(seller, "acme-backup", "logo", files.png(), "logo.png")
    assert done.status_code == 303 and done.headers["location"] == "/seller/products/acme-backup?step=general#files"
    as_json = upload(seller, "acme-backup", "user_guide", files.pdf(), "guide.pdf", accept="application/json")
    assert as_json.status_code == 200 and as_json.json() == {
        "location": "/seller/products/acme-backup?step=general#files"
    }
    page = seller.get("/seller/products/acme-backup?step=general")
    preview = re.search(r'<img class="preview preview-logo" src="([^"]+)" alt="Logo preview: logo.png">', page.text)
    assert preview
    image = seller.get(preview.group(1))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == files.png()
    assert "guide.pdf" in page.text and "1 page" in text_of(page.text)
    assert "upload a PNG logo" not in page.text


@pytest.mark.rule("LST-03")
def test_a_logo_over_7_5_mb_is_refused_while_it_streams_and_a_file_can_be_removed(
    seller: TestClient, db: Database
) -> None:
    assert new_listing(seller).status_code == 303
    big = files.padded(files.png(), int(7.5 * files.MB) + 1)
    page = upload(seller, "acme-backup", "logo", big, "logo.png")
    assert page.status_code == 413 and "a logo may be at most 7.5 MB" in page.text
    assert upload(seller, "acme-backup", "logo", files.png(), "logo.png").status_code == 303
    with db.reader() as session:
        digest = session.scalar(
            select(ProductAsset.digest).where(ProductAsset.product_id == product(db, "acme-backup").id)
        )
    assert digest is not None
    form = {"csrf_token": token(seller), "step": "general"}
    removed = seller.post(f"/seller/products/acme-backup/files/{digest}/remove", data=form)
    assert removed.status_code == 303
    assert "upload a PNG logo [LST-03]" in text_of(seller.get("/seller/products/acme-backup?step=general").text)


def test_an_upload_route_gets_the_upload_body_limit() -> None:
    scope = {"method": "POST", "path": "/seller/products/acme-backup/files"}
    assert body_limit(scope) == UPLOAD_LIMIT  # type: ignore[arg-type]


# --- review: submit, reject, resubmit, approve, sign off ------------------------------------------------------


@pytest.mark.rule("LST-07")
def test_submitting_a_paid_listing_without_a_refund_policy_is_refused_with_its_rule(seller: TestClient) -> None:
    complete(seller)
    assert save(seller, "acme-backup", "agreement", refund_policy="").status_code == 303
    page = seller.post("/seller/products/acme-backup/submit", data={"csrf_token": token(seller)})
    assert page.status_code == 422
    assert "a paid listing must state its refund policy and a contact [LST-07]" in text_of(page.text)


@pytest.mark.rule("LST-05")
def test_submit_reject_resubmit_approve_and_sign_off(seller: TestClient, db: Database) -> None:
    complete(seller)
    review = text_of(seller.get("/seller/products/acme-backup?step=review").text)
    assert "Everything the review needs is there" in review
    done = seller.post("/seller/products/acme-backup/submit", data={"csrf_token": token(seller)})
    assert done.status_code == 303
    assert "waiting for the marketplace's category review" in text_of(seller.get(done.headers["location"]).text)
    locked = save(seller, "acme-backup", "general", short_description="Changed under review")
    assert locked.status_code == 409 and "cannot be edited until the review ends" in locked.text
    reason = "The logo is blurry: upload a sharper one."
    assert seller.post("/api/v1/reviews/acme-backup/reject", json={"reason": reason}, headers=OPS).status_code == 200
    assert reason in text_of(seller.get("/seller/products").text)
    assert reason in text_of(seller.get("/seller/products/acme-backup").text)
    assert upload(seller, "acme-backup", "logo", files.png(color=(0, 0, 0)), "sharper.png").status_code == 303
    assert seller.post("/seller/products/acme-backup/submit", data={"csrf_token": token(seller)}).status_code == 303
    assert seller.post("/api/v1/reviews/acme-backup/approve", json={}, headers=OPS).status_code == 200
    tasks.register_all()
    jobs.Worker(db).run_until_idle()
    limited = seller.get("/seller/products/acme-backup")
    assert "Limited" in limited.text and ">Sign off</button>" in limited.text
    signed = seller.post("/seller/products/acme-backup/sign-off", data={"csrf_token": token(seller)})
    assert signed.status_code == 303
    assert seller.get("/api/v1/catalog/acme-backup").json()["state"] == "public"
    again = seller.post("/seller/products/acme-backup/sign-off", data={"csrf_token": token(seller)})
    assert again.status_code == 409 and "cannot sign off" in again.text


def test_an_edit_of_a_public_listing_becomes_a_change_request_shown_pending(seller: TestClient, db: Database) -> None:
    listing = product(db, "acme-vault").listing
    kept = {
        "long_description": listing.get("long_description") or "",
        "highlights": "\n".join(listing.get("highlights") or []),
        "support": listing.get("support") or "",
        "regions": ", ".join(listing.get("regions") or []),
    }
    saved = save(seller, "acme-vault", "general", short_description="Secrets, kept", **kept)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?step=review#changes")
    with db.reader() as session:
        change = session.scalar(select(ChangeRequest).order_by(ChangeRequest.id.desc()))
        assert change is not None and change.state == "pending"
        assert change.changes == {"short_description": "Secrets, kept"}  # only what changed
    page = text_of(seller.get("/seller/products/acme-vault?step=review").text)
    assert f"#{change.id}" in page and "Pending" in page and "Short description" in page
    assert product(db, "acme-vault").listing["short_description"] != "Secrets, kept"
    assert "1 change request waiting for review" in text_of(seller.get("/seller/products").text)
    decided = seller.post(f"/api/v1/change-requests/{change.id}/reject", json={"reason": "Say more"}, headers=OPS)
    assert decided.status_code == 200
    page = text_of(seller.get("/seller/products/acme-vault?step=review").text)
    assert "Rejected" in page and "Reviewer: Say more" in page


def test_a_public_listings_versioned_prices_point_to_the_pricing_page(seller: TestClient) -> None:
    page = seller.get("/seller/products/acme-vault?step=pricing")
    assert page.status_code == 200
    assert 'href="/seller/products/acme-vault/pricing"' in page.text
