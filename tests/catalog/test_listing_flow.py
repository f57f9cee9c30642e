"""Listings through the native API: creation (SEL-01, LST-01, LST-02), submission requirements (LST-03,
LST-07), the review flow and asynchronous publishing (LST-05, LST-06), EULA, enterprise and pricing on the
product page (LST-08, LST-09, LST-10), edits after publishing, illegal transitions and the seller wizard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agora import clock, tasks
from agora.db import Database
from tests.catalog import files
from tests.factories import catalog as f
from tests.factories.identities import Actor, Cast, add_cast, add_seller


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def cast(db: Database) -> Cast:
    return add_cast(db)


def _problems(response: Any) -> dict[str, str]:
    """A 422 body's problems as loc → msg."""
    assert response.status_code == 422, response.text
    return {p["loc"]: p["msg"] for p in response.json()["problems"]}


def _page(client: TestClient, code: str, who: Actor | None = None) -> Any:
    return client.get(f"/api/v1/catalog/{code}", headers=who.headers if who else {})


def _page_status(client: TestClient, cast: Cast, code: str) -> dict[str, int]:
    return {
        "seller": _page(client, code, cast.seller).status_code,
        "operator": _page(client, code, cast.operator).status_code,
        "buyer": _page(client, code, cast.buyer).status_code,
        "other_seller": _page(client, code, cast.other_seller).status_code,
        "anonymous": _page(client, code).status_code,
    }


# --- the review flow --------------------------------------------------------------------------------------


def test_happy_path_draft_to_public_is_audited_and_notified_LST_05_LST_06(
    client: TestClient, db: Database, cast: Cast
) -> None:
    code = "acme-analytics"
    f.create_listing(client, cast.seller, code)
    f.add_required_files(client, cast.seller, code)
    assert client.get(f"/api/v1/products/{code}", headers=cast.seller.headers).json()["missing"] == []

    f.submit(client, cast.seller, code)
    f.approve(client, cast.operator, code, reason="Looks good")
    jobs_before = client.get("/api/v1/jobs", headers=cast.operator.headers)
    assert jobs_before.status_code == 200
    assert "catalog.publish" in jobs_before.text

    # LST-06: while publishing runs, the page is 404 to everyone, its seller and operators included.
    assert set(_page_status(client, cast, code).values()) == {404}

    assert f.run_jobs(db) >= 1
    product = client.get(f"/api/v1/products/{code}", headers=cast.seller.headers).json()
    assert product["state"] == "limited"
    assert product["published_regions"] == ["us-east-1"]
    # Limited: only the seller (and operators) can see and test it.
    assert _page_status(client, cast, code) == {
        "seller": 200,
        "operator": 200,
        "buyer": 404,
        "other_seller": 404,
        "anonymous": 404,
    }
    assert client.get("/api/v1/catalog", params={"q": "dashboards"}).json()["total"] == 0

    f.sign_off(client, cast.seller, code)
    assert set(_page_status(client, cast, code).values()) == {200}
    page = _page(client, code).json()
    assert page["state"] == "public"
    assert page["title"] == "Acme Analytics"
    assert page["seller"]["handle"] == "acme"
    assert [r["code"] for r in client.get("/api/v1/catalog", params={"q": "dashboards"}).json()["results"]] == [code]

    assert f.audit_actions(client, cast.operator, code) == [
        ("seller:acme", "product.create"),
        ("seller:acme", "product.asset_upload"),
        ("seller:acme", "product.asset_upload"),
        ("seller:acme", "product.submit"),
        ("operator:ops", "product.approve"),
        ("system:publisher", "product.published"),
        ("seller:acme", "product.sign_off"),
    ]
    states = [
        (e["before"] or {}).get("state", "") + "→" + (e["after"] or {}).get("state", "")
        for e in reversed(
            client.get(
                "/api/v1/audit", params={"target_id": code, "action": "product."}, headers=cast.operator.headers
            ).json()["events"]
        )
        if e["action"] not in ("product.create", "product.asset_upload")
    ]
    assert states == ["draft→submitted", "submitted→publishing", "publishing→limited", "limited→public"]

    # Each transition notifies the other party: operators on submission and sign-off, the seller otherwise.
    sent = f.notifications(db)
    assert [(kind, to) for kind, to, _ in sent] == [
        ("review_requested", "operator:ops"),
        ("listing_approved", "seller:acme"),
        ("listing_limited", "seller:acme"),
        ("listing_public", "operator:ops"),
    ]
    assert all("Acme Analytics" in subject for _, _, subject in sent)


def test_reject_with_reason_returns_to_draft_then_fix_and_resubmit_LST_05(
    client: TestClient, db: Database, cast: Cast
) -> None:
    code = "acme-analytics"
    f.create_listing(client, cast.seller, code)
    f.add_required_files(client, cast.seller, code)
    f.submit(client, cast.seller, code)

    without_reason = client.post(f"/api/v1/reviews/{code}/reject", json={"reason": "  "}, headers=cast.operator.headers)
    assert "reason" in _problems(without_reason)

    reason = "The short description must say what the product does."
    rejected = client.post(f"/api/v1/reviews/{code}/reject", json={"reason": reason}, headers=cast.operator.headers)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "draft"

    seen = client.get(f"/api/v1/products/{code}", headers=cast.seller.headers).json()
    assert seen["state"] == "draft"
    assert seen["rejection_reason"] == reason
    rejected_mail = [n for n in f.notifications(db) if n[0] == "listing_rejected"]
    assert [(kind, to) for kind, to, _ in rejected_mail] == [("listing_rejected", "seller:acme")]
    audit = client.get(
        "/api/v1/audit", params={"target_id": code, "action": "product.reject"}, headers=cast.operator.headers
    ).json()["events"]
    assert [(e["actor"], e["after"]["reason"]) for e in audit] == [("operator:ops", reason)]

    fixed = client.patch(
        f"/api/v1/products/{code}",
        json={"short_description": "Real-time dashboards over your warehouse data"},
        headers=cast.seller.headers,
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["short_description"] == "Real-time dashboards over your warehouse data"
    resubmitted = f.submit(client, cast.seller, code)
    assert resubmitted["rejection_reason"] is None
    assert [kind for kind, _, _ in f.notifications(db)].count("review_requested") == 2

    f.approve(client, cast.operator, code)
    f.run_jobs(db)
    f.sign_off(client, cast.seller, code)
    assert _page(client, code).json()["short_description"] == "Real-time dashboards over your warehouse data"


def test_submission_lists_every_missing_field_by_name_LST_03_LST_05(client: TestClient, cast: Cast) -> None:
    response = client.post(
        "/api/v1/products", json={"code": "bare", "kind": "saas", "title": "Bare"}, headers=cast.seller.headers
    )
    assert response.status_code == 201, response.text
    assert {m["field"] for m in response.json()["missing"]} == {
        "short_description",
        "category",
        "regions",
        "pricing",
        "assets.logo",
        "assets.user_guide",
    }

    submitted = client.post("/api/v1/products/bare/submit", headers=cast.seller.headers)
    problems = _problems(submitted)
    assert set(problems) == {"short_description", "category", "regions", "pricing", "assets.logo", "assets.user_guide"}
    assert "LST-03" in problems["assets.user_guide"]
    assert submitted.json()["error"] == "invalid"
    assert client.get("/api/v1/products/bare", headers=cast.seller.headers).json()["state"] == "draft"


def test_submit_without_user_guide_names_assets_user_guide_LST_03(client: TestClient, cast: Cast) -> None:
    f.create_listing(client, cast.seller, "no-guide")
    status, body = f.upload(client, cast.seller, "no-guide", "logo", files.png(), "logo.png")
    assert status == 201, body

    problems = _problems(client.post("/api/v1/products/no-guide/submit", headers=cast.seller.headers))
    assert list(problems) == ["assets.user_guide"]
    assert "PDF" in problems["assets.user_guide"]


def test_paid_listing_needs_a_refund_policy_free_one_does_not_LST_07(client: TestClient, cast: Cast) -> None:
    for code, policy in (("paid-none", None), ("paid-blank", "   ")):
        f.create_listing(client, cast.seller, code, refund_policy=policy)
        f.add_required_files(client, cast.seller, code)
        problems = _problems(client.post(f"/api/v1/products/{code}/submit", headers=cast.seller.headers))
        assert list(problems) == ["refund_policy"], code
        assert "LST-07" in problems["refund_policy"]

    f.create_listing(client, cast.seller, "free-tool", pricing=f.FREE_PRICING, refund_policy=None)
    f.add_required_files(client, cast.seller, "free-tool")
    f.submit(client, cast.seller, "free-tool")

    # Stating the policy is enough to submit the paid one.
    patched = client.patch(
        "/api/v1/products/paid-none",
        json={"refund_policy": "Refunds within 14 days: billing@acme.example"},
        headers=cast.seller.headers,
    )
    assert patched.status_code == 200, patched.text
    f.submit(client, cast.seller, "paid-none")


def test_pricing_rules_are_checked_at_submission_PRC_06_SEL_02(client: TestClient, db: Database, cast: Cast) -> None:
    f.create_listing(
        client,
        cast.seller,
        "long-trial",
        kind="ami",
        pricing={"hourly": {"m5.large": "0.10"}, "free_trial_days": 40},
    )
    f.add_required_files(client, cast.seller, "long-trial")
    problems = _problems(client.post("/api/v1/products/long-trial/submit", headers=cast.seller.headers))
    assert list(problems) == ["pricing.free_trial_days"]
    assert "PRC-06" in problems["pricing.free_trial_days"]

    with db.unit_of_work() as session:
        untaxed = add_seller(session, "initech", tax_form="none")
    f.create_listing(client, untaxed, "initech-paid")
    f.add_required_files(client, untaxed, "initech-paid")
    response = client.post("/api/v1/products/initech-paid/submit", headers=untaxed.headers)
    assert any("SEL-02" in msg for msg in _problems(response).values())
    # The same seller may submit a free product.
    f.create_listing(client, untaxed, "initech-free", pricing=f.FREE_PRICING)
    f.add_required_files(client, untaxed, "initech-free")
    f.submit(client, untaxed, "initech-free")


def test_short_description_over_300_characters_is_refused_LST_03(client: TestClient, cast: Cast) -> None:
    created = client.post(
        "/api/v1/products", json=f.listing("wordy", short_description="x" * 301), headers=cast.seller.headers
    )
    assert created.status_code == 422, created.text
    assert "short_description" in created.json()["detail"]
    assert "300" in created.json()["detail"]

    f.create_listing(client, cast.seller, "wordy", short_description="x" * 300)
    patched = client.patch("/api/v1/products/wordy", json={"short_description": "y" * 301}, headers=cast.seller.headers)
    problems = _problems(patched)
    assert "300" in problems["short_description"]
    kept = client.get("/api/v1/products/wordy", headers=cast.seller.headers).json()
    assert kept["short_description"] == "x" * 300


def test_highlights_over_1000_characters_in_all_are_refused_LST_03(client: TestClient, cast: Cast) -> None:
    f.create_listing(client, cast.seller, "shiny", highlights=["a" * 500, "b" * 500])
    patched = client.patch(
        "/api/v1/products/shiny", json={"highlights": ["a" * 500, "b" * 501]}, headers=cast.seller.headers
    )
    problems = _problems(patched)
    assert "1,000" in problems["highlights"]


# --- who may do what --------------------------------------------------------------------------------------


def test_only_operators_review_a_seller_approving_is_403_LST_05(client: TestClient, cast: Cast) -> None:
    f.create_listing(client, cast.seller, "acme-analytics")
    f.add_required_files(client, cast.seller, "acme-analytics")
    f.submit(client, cast.seller, "acme-analytics")
    for action in ("approve", "reject"):
        for who in (cast.seller, cast.buyer):
            response = client.post(
                f"/api/v1/reviews/acme-analytics/{action}", json={"reason": "mine"}, headers=who.headers
            )
            assert response.status_code == 403, (action, who.role, response.text)
            assert response.json()["error"] == "forbidden"
    assert client.get("/api/v1/reviews", headers=cast.seller.headers).status_code == 403
    assert client.get("/api/v1/products/acme-analytics", headers=cast.seller.headers).json()["state"] == "submitted"


def test_another_sellers_draft_is_404_everywhere(client: TestClient, cast: Cast) -> None:
    """Another tenant's object is 404, not 403 (DESIGN errors); a draft is its seller's alone (LST-05)."""
    f.create_listing(client, cast.seller, "acme-secret")
    other = cast.other_seller.headers
    for response in (
        client.get("/api/v1/products/acme-secret", headers=other),
        client.patch("/api/v1/products/acme-secret", json={"title": "Mine now"}, headers=other),
        client.post("/api/v1/products/acme-secret/submit", headers=other),
        client.get("/api/v1/products/acme-secret/wizard", headers=other),
        client.get("/api/v1/catalog/acme-secret", headers=other),
        client.get("/api/v1/catalog/acme-secret", headers=cast.buyer.headers),
        client.get("/api/v1/catalog/acme-secret"),
    ):
        assert response.status_code == 404, response.request.url
        assert response.json()["error"] == "not_found"
    assert [p["code"] for p in client.get("/api/v1/products", headers=other).json()] == []
    assert client.get("/api/v1/products/acme-secret", headers=cast.seller.headers).json()["title"] == "Acme Secret"


def test_only_a_registered_seller_creates_products_SEL_01(client: TestClient, cast: Cast) -> None:
    entry = f.listing("not-a-seller")
    for who in (cast.buyer, cast.operator):
        response = client.post("/api/v1/products", json=entry, headers=who.headers)
        assert response.status_code == 403, (who.role, response.text)
        assert response.json()["error"] == "forbidden"
    anonymous = client.post("/api/v1/products", json=entry)
    assert anonymous.status_code == 401
    assert client.get("/api/v1/products/not-a-seller", headers=cast.operator.headers).status_code == 404


def test_a_product_code_is_taken_once(client: TestClient, cast: Cast) -> None:
    """The code identifies the product to metering (DESIGN manifest), so a second seller cannot take it."""
    f.create_listing(client, cast.seller, "acme-analytics")
    again = client.post("/api/v1/products", json=f.listing("acme-analytics"), headers=cast.other_seller.headers)
    assert again.status_code == 409, again.text


# --- listing contents -------------------------------------------------------------------------------------

KIND_ENTRIES: dict[str, dict[str, Any]] = {
    "saas": {"pricing": f.PAID_SAAS_PRICING},
    "ami": {"pricing": f.HOURLY_AMI_PRICING},
    "container": {"pricing": {"monthly": "300"}},
    "ml_algorithm": {
        "pricing": {
            "ml": {
                "training": {"ml.m5.large": "1.00"},
                "realtime_inference": {"ml.m5.large": "0.50"},
                "batch_inference": {"ml.m5.large": "0.40"},
            }
        },
        "ml": {
            "training_instance_types": ["ml.m5.large"],
            "input_modes": ["File", "Pipe"],
            "hyperparameters": [{"name": "epochs", "type": "integer"}],
        },
    },
    "ml_model": {
        "pricing": {"ml": {"realtime_inference": {"ml.m5.large": "0.50"}, "batch_inference": {"ml.m5.large": "0.40"}}},
        "ml": {
            "supported_instance_types": ["ml.m5.large"],
            "content_types": ["text/csv"],
            "mime_types": ["application/json"],
            "input_modes": ["File"],
        },
    },
    "managed_service": {
        "pricing": f.FREE_PRICING,
        "managed_service": {"service_id": "svc-analytics", "deployment": "fully_managed_service"},
    },
}


def test_every_product_kind_can_be_listed_and_submitted_LST_01(client: TestClient, cast: Cast) -> None:
    for kind, entry in KIND_ENTRIES.items():
        code = f"acme-{kind.replace('_', '-')}"
        product = f.create_listing(client, cast.seller, code, kind=kind, **entry)
        assert product["kind"] == kind
        for key, value in entry.items():
            # Launch options come back with their defaults filled in; what was sent comes back as sent.
            assert {k: product[key][k] for k in value} == value, (kind, key)
        f.add_required_files(client, cast.seller, code)
        f.submit(client, cast.seller, code)
    listed = client.get("/api/v1/products", headers=cast.seller.headers).json()
    assert sorted(p["kind"] for p in listed) == sorted(KIND_ENTRIES)


def test_an_unknown_product_kind_is_refused_LST_01(client: TestClient, cast: Cast) -> None:
    response = client.post("/api/v1/products", json=f.listing("acme-vm", kind="vm"), headers=cast.seller.headers)
    assert response.status_code == 422
    assert "kind" in response.json()["detail"]


def test_a_managed_service_product_must_name_its_service_LST_04(client: TestClient, cast: Cast) -> None:
    f.create_listing(client, cast.seller, "acme-managed", kind="managed_service", pricing=f.FREE_PRICING)
    f.add_required_files(client, cast.seller, "acme-managed")
    problems = _problems(client.post("/api/v1/products/acme-managed/submit", headers=cast.seller.headers))
    assert "LST-04" in problems["managed_service"]


MANAGED = {"service_id": "svc-42", "deployment": "private_service"}


def test_a_managed_service_is_associated_with_one_product_on_create_LST_04(
    client: TestClient, db: Database, cast: Cast
) -> None:
    f.create_listing(
        client, cast.seller, "ms-one", kind="managed_service", pricing=f.FREE_PRICING, managed_service=MANAGED
    )
    with f.lenient_client(db) as lenient:
        second = lenient.post(
            "/api/v1/products",
            json=f.listing("ms-two", kind="managed_service", pricing=f.FREE_PRICING, managed_service=MANAGED),
            headers=cast.other_seller.headers,
        )
    assert second.status_code == 409, second.text
    assert "LST-04" in second.json()["detail"]


def test_a_managed_service_is_associated_with_one_product_on_edit_LST_04(
    client: TestClient, db: Database, cast: Cast
) -> None:
    f.create_listing(
        client, cast.seller, "ms-one", kind="managed_service", pricing=f.FREE_PRICING, managed_service=MANAGED
    )
    f.create_listing(client, cast.other_seller, "ms-two", kind="managed_service", pricing=f.FREE_PRICING)
    with f.lenient_client(db) as lenient:
        second = lenient.patch(
            "/api/v1/products/ms-two", json={"managed_service": MANAGED}, headers=cast.other_seller.headers
        )
    assert second.status_code == 409, second.text
    assert "LST-04" in second.json()["detail"]


def test_distinct_managed_services_each_get_a_product_LST_04(client: TestClient, cast: Cast) -> None:
    for n in (1, 2):
        service = {"service_id": f"svc-{n}", "deployment": "private_service"}
        product = f.create_listing(
            client, cast.seller, f"ms-{n}", kind="managed_service", pricing=f.FREE_PRICING, managed_service=service
        )
        assert product["managed_service"]["service_id"] == f"svc-{n}"


LISTING_FIELDS: dict[str, Any] = {
    "long_description": "Acme Analytics turns warehouse tables into live dashboards.",
    "highlights": ["Live dashboards", "SQL alerts", "SSO"],
    "tags": ["bi", "dashboards"],
    "seo_keywords": ["business intelligence", "reporting"],
    "seo_description": "Dashboards and alerts for data teams",
    "versions": [
        {"version": "2.4.1", "release_notes": "Faster charts", "restricted": False},
        {"version": "2.5.0", "release_notes": "Alert routing", "restricted": False},
    ],
    "support": "24×7 at support@acme.example, response within 4 hours",
    "regions": ["eu-west-1", "us-east-1"],
    "case_studies": [
        {"title": "Globex cut reporting time by 80%", "url": "https://acme.example/cases/globex", "summary": "BI"}
    ],
    "tax_code": "AWSMP_SOFTWARE_RA",
}


def test_listing_fields_round_trip_LST_02(client: TestClient, db: Database, cast: Cast) -> None:
    created = f.create_listing(client, cast.seller, "acme-analytics", **LISTING_FIELDS)
    for key, value in LISTING_FIELDS.items():
        assert created[key] == value, key
    fetched = client.get("/api/v1/products/acme-analytics", headers=cast.seller.headers).json()
    for key, value in LISTING_FIELDS.items():
        assert fetched[key] == value, key

    f.add_required_files(client, cast.seller, "acme-analytics")
    f.submit(client, cast.seller, "acme-analytics")
    f.approve(client, cast.operator, "acme-analytics")
    f.run_jobs(db)
    f.sign_off(client, cast.seller, "acme-analytics")
    page = _page(client, "acme-analytics").json()
    for key in ("long_description", "highlights", "tags", "versions", "support", "regions", "case_studies"):
        assert page[key] == LISTING_FIELDS[key], key


def test_restricted_versions_are_not_on_the_product_page_LST_02(client: TestClient, db: Database, cast: Cast) -> None:
    versions = [
        {"version": "1.0.0", "release_notes": "Old, withdrawn", "restricted": True},
        {"version": "2.0.0", "release_notes": "Current", "restricted": False},
    ]
    f.make_public(client, db, cast, "acme-analytics", versions=versions)
    assert [v["version"] for v in _page(client, "acme-analytics").json()["versions"]] == ["2.0.0"]
    assert client.get("/api/v1/products/acme-analytics", headers=cast.seller.headers).json()["versions"] == versions


def test_unknown_listing_fields_are_refused_LST_02(client: TestClient, cast: Cast) -> None:
    created = client.post("/api/v1/products", json=f.listing("acme-x", colour="red"), headers=cast.seller.headers)
    assert created.status_code == 422
    assert "colour" in created.json()["detail"]
    f.create_listing(client, cast.seller, "acme-x")
    assert "colour" in _problems(
        client.patch("/api/v1/products/acme-x", json={"colour": "red"}, headers=cast.seller.headers)
    )


def test_eula_is_standard_until_a_custom_pdf_is_uploaded_LST_08(client: TestClient, db: Database, cast: Cast) -> None:
    f.make_limited(client, db, cast, "acme-analytics")
    assert _page(client, "acme-analytics", cast.seller).json()["eula"] == {"kind": "standard", "url": None}

    f.create_listing(client, cast.seller, "acme-custom-eula")
    status, body = f.upload(client, cast.seller, "acme-custom-eula", "eula", files.jpeg(), "eula.pdf")
    assert status == 422, body
    eula_pdf = files.pdf(width=596)  # an A4-wide page: a file of its own
    status, body = f.upload(client, cast.seller, "acme-custom-eula", "eula", eula_pdf, "eula.pdf")
    assert status == 201, body
    assert body["content_type"] == "application/pdf"
    page = _page(client, "acme-custom-eula", cast.seller).json()
    assert page["eula"] == {"kind": "custom", "url": body["url"]}
    served = client.get(page["eula"]["url"], headers=cast.seller.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/pdf"
    assert served.content == eula_pdf


def test_enterprise_only_is_stored_and_shown_to_reviewers_and_buyers_LST_09(
    client: TestClient, db: Database, cast: Cast
) -> None:
    f.create_listing(client, cast.seller, "acme-enterprise", enterprise_only=True)
    f.create_listing(client, cast.seller, "acme-everyone")
    assert client.get("/api/v1/products/acme-enterprise", headers=cast.seller.headers).json()["enterprise_only"] is True
    for code in ("acme-enterprise", "acme-everyone"):
        f.add_required_files(client, cast.seller, code)
        f.submit(client, cast.seller, code)

    queue = client.get("/api/v1/reviews", headers=cast.operator.headers).json()["submitted"]
    assert {q["code"]: q["enterprise_only"] for q in queue} == {"acme-enterprise": True, "acme-everyone": False}

    for code in ("acme-enterprise", "acme-everyone"):
        f.approve(client, cast.operator, code)
    f.run_jobs(db)
    for code in ("acme-enterprise", "acme-everyone"):
        f.sign_off(client, cast.seller, code)
    assert _page(client, "acme-enterprise", cast.buyer).json()["enterprise_only"] is True
    assert _page(client, "acme-everyone", cast.buyer).json()["enterprise_only"] is False
    results = client.get("/api/v1/catalog").json()["results"]
    assert {r["code"]: r["enterprise_only"] for r in results} == {"acme-enterprise": True, "acme-everyone": False}


SOFTWARE_PRICES: dict[str, tuple[str, dict[str, Any]]] = {
    "acme-saas": ("saas", f.PAID_SAAS_PRICING),
    "acme-ami": ("ami", f.HOURLY_AMI_PRICING),
    "acme-free-ami": ("ami", f.FREE_PRICING),
}


def test_product_page_carries_software_pricing_only_LST_10(client: TestClient, db: Database, cast: Cast) -> None:
    for code, (kind, pricing) in SOFTWARE_PRICES.items():
        f.make_public(client, db, cast, code, kind=kind, pricing=pricing)
        page = _page(client, code, cast.buyer).json()
        # Exactly the seller's software charges, as the seller stated them; infrastructure never mixed in.
        assert page["software_pricing"] == pricing, code
        assert "pricing" not in page
        assert not any("infrastructure" in key for key in page["software_pricing"])


# --- edits after publishing --------------------------------------------------------------------------------


def test_edit_of_a_public_listing_is_a_change_request_until_approved_LST_02_LST_05(
    client: TestClient, db: Database, cast: Cast, manual_clock: clock.ManualClock
) -> None:
    code = "acme-analytics"
    f.make_public(client, db, cast, code)
    patched = client.patch(
        f"/api/v1/products/{code}",
        json={"short_description": "Kaleidoscopic reporting for finance teams"},
        headers=cast.seller.headers,
    )
    assert patched.status_code == 200, patched.text
    request = patched.json()["change_request"]
    assert request["state"] == "pending"
    assert request["changes"] == {"short_description": "Kaleidoscopic reporting for finance teams"}
    assert patched.json()["short_description"] == "Dashboards for everything"

    manual_clock.advance(timedelta(hours=3))
    queue = client.get("/api/v1/reviews", headers=cast.operator.headers).json()
    assert [(c["id"], c["product"], c["age_hours"]) for c in queue["change_requests"]] == [(request["id"], code, 3.0)]

    # Buyers keep seeing the approved text, and search does not find the proposal.
    assert _page(client, code).json()["short_description"] == "Dashboards for everything"
    assert client.get("/api/v1/catalog", params={"q": "kaleidoscopic"}).json()["total"] == 0

    assert (
        client.post(f"/api/v1/change-requests/{request['id']}/approve", headers=cast.seller.headers).status_code == 403
    )
    approved = client.post(f"/api/v1/change-requests/{request['id']}/approve", headers=cast.operator.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"

    assert _page(client, code).json()["short_description"] == "Kaleidoscopic reporting for finance teams"
    found = client.get("/api/v1/catalog", params={"q": "kaleidoscopic"}).json()
    assert [r["code"] for r in found["results"]] == [code]
    assert client.get("/api/v1/catalog", params={"q": "everything"}).json()["total"] == 0
    assert client.get("/api/v1/reviews", headers=cast.operator.headers).json()["change_requests"] == []
    assert ("change_approved", "seller:acme") in [(k, to) for k, to, _ in f.notifications(db)]
    actions = f.audit_actions(client, cast.operator, code)
    assert actions[-2:] == [("seller:acme", "change_request.create"), ("operator:ops", "change_request.approve")]

    again = client.post(f"/api/v1/change-requests/{request['id']}/approve", headers=cast.operator.headers)
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_transition"


def test_rejected_change_request_leaves_the_public_page_unchanged(client: TestClient, db: Database, cast: Cast) -> None:
    """LST-05: a rejection says what to fix; buyers keep seeing the reviewed listing."""
    code = "acme-analytics"
    f.make_public(client, db, cast, code)
    patched = client.patch(
        f"/api/v1/products/{code}", json={"title": "Acme Analytics PRO!!!"}, headers=cast.seller.headers
    )
    request_id = patched.json()["change_request"]["id"]

    no_reason = client.post(f"/api/v1/change-requests/{request_id}/reject", json={}, headers=cast.operator.headers)
    assert "reason" in _problems(no_reason)
    rejected = client.post(
        f"/api/v1/change-requests/{request_id}/reject",
        json={"reason": "Titles may not shout."},
        headers=cast.operator.headers,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json() == {
        "id": request_id,
        "state": "rejected",
        "changes": {"title": "Acme Analytics PRO!!!"},
        "reason": "Titles may not shout.",
    }
    assert _page(client, code).json()["title"] == "Acme Analytics"
    assert client.get(f"/api/v1/products/{code}", headers=cast.seller.headers).json()["title"] == "Acme Analytics"
    assert ("change_rejected", "seller:acme") in [(k, to) for k, to, _ in f.notifications(db)]
    assert f.audit_actions(client, cast.operator, code)[-1] == ("operator:ops", "change_request.reject")
    assert (
        client.post(f"/api/v1/change-requests/{request_id}/approve", headers=cast.operator.headers).status_code == 409
    )
    assert client.post("/api/v1/change-requests/999999/approve", headers=cast.operator.headers).status_code == 404


def test_a_change_request_cannot_remove_the_refund_policy_of_a_paid_listing_LST_07(
    client: TestClient, db: Database, cast: Cast
) -> None:
    code = "acme-analytics"
    f.make_public(client, db, cast, code)
    patched = client.patch(f"/api/v1/products/{code}", json={"refund_policy": None}, headers=cast.seller.headers)
    if patched.status_code == 200:
        request_id = patched.json()["change_request"]["id"]
        client.post(f"/api/v1/change-requests/{request_id}/approve", headers=cast.operator.headers)
    assert (_page(client, code).json()["refund_policy"] or "").strip()


def test_review_queue_answers_without_deprecated_sqlalchemy_calls(client: TestClient, db: Database, cast: Cast) -> None:
    """LST-05: the operator's review queue works under the project's warning policy."""
    f.create_listing(client, cast.seller, "acme-analytics")
    f.add_required_files(client, cast.seller, "acme-analytics")
    f.submit(client, cast.seller, "acme-analytics")
    with f.lenient_client(db) as lenient:
        queue = lenient.get("/api/v1/reviews", headers=cast.operator.headers)
    assert queue.status_code == 200
    assert [q["code"] for q in queue.json()["submitted"]] == ["acme-analytics"]


# --- illegal transitions -----------------------------------------------------------------------------------


def _assert_invalid_transition(response: Any) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "invalid_transition"


def test_illegal_transitions_are_409_LST_05(client: TestClient, db: Database, cast: Cast) -> None:
    code = "acme-analytics"
    seller, operator = cast.seller.headers, cast.operator.headers
    f.create_listing(client, cast.seller, code)
    f.add_required_files(client, cast.seller, code)
    # draft: no sign-off, no review decision
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/sign-off", headers=seller))
    _assert_invalid_transition(client.post(f"/api/v1/reviews/{code}/approve", headers=operator))
    _assert_invalid_transition(client.post(f"/api/v1/reviews/{code}/reject", json={"reason": "x"}, headers=operator))

    f.submit(client, cast.seller, code)
    # submitted: not twice, not edited under review, no sign-off
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/submit", headers=seller))
    _assert_invalid_transition(client.patch(f"/api/v1/products/{code}", json={"title": "New"}, headers=seller))
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/sign-off", headers=seller))

    f.approve(client, cast.operator, code)
    # publishing: nothing until the job is done
    _assert_invalid_transition(client.post(f"/api/v1/reviews/{code}/approve", headers=operator))
    _assert_invalid_transition(client.post(f"/api/v1/reviews/{code}/reject", json={"reason": "x"}, headers=operator))
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/sign-off", headers=seller))
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/submit", headers=seller))
    _assert_invalid_transition(client.patch(f"/api/v1/products/{code}", json={"title": "New"}, headers=seller))

    f.run_jobs(db)
    _assert_invalid_transition(client.post(f"/api/v1/reviews/{code}/approve", headers=operator))
    f.sign_off(client, cast.seller, code)
    # public: no second sign-off, no resubmission
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/sign-off", headers=seller))
    _assert_invalid_transition(client.post(f"/api/v1/products/{code}/submit", headers=seller))
    assert client.get(f"/api/v1/products/{code}", headers=seller).json()["state"] == "public"
    # The refused attempts left no audit trail of transitions that did not happen.
    transitions = [a for _, a in f.audit_actions(client, cast.operator, code) if a != "product.asset_upload"]
    assert transitions == [
        "product.create",
        "product.submit",
        "product.approve",
        "product.published",
        "product.sign_off",
    ]


def test_publishing_job_runs_once_even_if_run_again_LST_06(client: TestClient, db: Database, cast: Cast) -> None:
    f.make_limited(client, db, cast, "acme-analytics")
    assert f.run_jobs(db) == 0
    published = client.get(
        "/api/v1/audit",
        params={"target_id": "acme-analytics", "action": "product.published"},
        headers=cast.operator.headers,
    ).json()["events"]
    assert len(published) == 1
    assert [k for k, _, _ in f.notifications(db)].count("listing_limited") == 1


def test_withdrawn_listing_is_hidden_until_reinstated(client: TestClient, db: Database, cast: Cast) -> None:
    """LST-05/LST-06: a restricted listing is seen by its seller and operators only; reinstating is an operator's."""
    f.make_public(client, db, cast, "acme-analytics")
    restricted = client.post(
        "/api/v1/products/acme-analytics/restrict",
        json={"reason": "Trademark complaint"},
        headers=cast.operator.headers,
    )
    assert restricted.status_code == 200, restricted.text
    assert restricted.json()["state"] == "restricted"
    assert _page_status(client, cast, "acme-analytics") == {
        "seller": 200,
        "operator": 200,
        "buyer": 404,
        "other_seller": 404,
        "anonymous": 404,
    }
    assert client.post("/api/v1/products/acme-analytics/reinstate", headers=cast.seller.headers).status_code == 403
    reinstated = client.post("/api/v1/products/acme-analytics/reinstate", headers=cast.operator.headers)
    assert reinstated.json()["state"] == "public"
    assert _page(client, "acme-analytics").status_code == 200


def test_a_limited_listing_cannot_be_withdrawn_so_reinstating_never_skips_sign_off_LST_05(
    client: TestClient, db: Database, cast: Cast
) -> None:
    """LST-05: only a signed-off (public) listing can be restricted, so reinstate always returns to public
    with the seller's sign-off behind it."""
    f.make_limited(client, db, cast, "acme-analytics")
    restricted = client.post("/api/v1/products/acme-analytics/restrict", json={}, headers=cast.operator.headers)
    assert restricted.status_code == 409, restricted.text
    assert restricted.json()["error"] == "invalid_transition"
    assert client.get("/api/v1/products/acme-analytics", headers=cast.seller.headers).json()["state"] == "limited"
    assert _page(client, "acme-analytics").status_code == 404
    assert client.get("/api/v1/catalog", params={"q": "dashboards"}).json()["total"] == 0


# --- the wizard --------------------------------------------------------------------------------------------


def _wizard(client: TestClient, seller: Actor, code: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/products/{code}/wizard", headers=seller.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _missing_by_step(wizard: dict[str, Any]) -> dict[str, set[str]]:
    return {s["step"]: {m["field"] for m in s["missing"]} for s in wizard["steps"]}


def test_wizard_lists_steps_fields_and_what_is_missing_LST_02_LST_05(client: TestClient, cast: Cast) -> None:
    code = "acme-wizard"
    created = client.post(
        "/api/v1/products", json={"code": code, "kind": "saas", "title": "Acme Wizard"}, headers=cast.seller.headers
    )
    assert created.status_code == 201, created.text

    wizard = _wizard(client, cast.seller, code)
    assert [s["step"] for s in wizard["steps"]] == ["access", "general", "category", "pricing", "agreement"]
    assert wizard["steps"][0]["fields"]["title"] == "Acme Wizard"
    assert _missing_by_step(wizard) == {
        "access": set(),
        "general": {"short_description", "regions", "assets.logo", "assets.user_guide"},
        "category": {"category"},
        "pricing": {"pricing"},
        "agreement": set(),
    }
    assert wizard["ready_to_submit"] is False

    def put(step: str, body: dict[str, Any]) -> Any:
        return client.put(f"/api/v1/products/{code}/wizard/{step}", json=body, headers=cast.seller.headers)

    # A field of another step is refused, and nothing of that request is saved.
    stray = put("general", {"short_description": "Dashboards", "category": "analytics"})
    assert "category" in _problems(stray)
    assert _wizard(client, cast.seller, code)["steps"][1]["fields"]["short_description"] is None
    assert put("shipping", {"title": "x"}).status_code == 404
    assert client.put(f"/api/v1/products/{code}/wizard/general", json={}, headers=cast.buyer.headers).status_code == 403

    saved = put("general", {"short_description": "Dashboards for everything", "regions": ["us-east-1"]})
    assert saved.status_code == 200, saved.text
    general = saved.json()["steps"][1]
    assert general["fields"]["short_description"] == "Dashboards for everything"
    assert {m["field"] for m in general["missing"]} == {"assets.logo", "assets.user_guide"}

    assert put("category", {"category": "analytics", "tags": ["bi"]}).status_code == 200
    assert put("pricing", {"pricing": f.PAID_SAAS_PRICING}).status_code == 200
    # Paid pricing makes the refund policy part of the agreement step (LST-07).
    assert _missing_by_step(_wizard(client, cast.seller, code))["agreement"] == {"refund_policy"}
    assert put("agreement", {"refund_policy": "30 days: support@acme.example", "eula": "standard"}).status_code == 200
    f.add_required_files(client, cast.seller, code)

    wizard = _wizard(client, cast.seller, code)
    assert all(not step["missing"] for step in wizard["steps"])
    assert wizard["ready_to_submit"] is True
    f.submit(client, cast.seller, code)
    assert _wizard(client, cast.seller, code)["ready_to_submit"] is False


def test_wizard_shows_pricing_rule_problems_in_the_pricing_step_PRC_06(client: TestClient, cast: Cast) -> None:
    f.create_listing(
        client, cast.seller, "acme-trial", kind="ami", pricing={"hourly": {"m5.large": "0.1"}, "free_trial_days": 40}
    )
    pricing_step = _wizard(client, cast.seller, "acme-trial")["steps"][3]
    assert [(m["field"], m["rule"]) for m in pricing_step["missing"]] == [("pricing.free_trial_days", "PRC-06")]
