"""Uploaded listing files (LST-03): checked by content, not by name; limits per kind (413 too large, 422 wrong
content, 409 too many); nothing partial kept; served back only to whoever may see the product."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agora import tasks
from agora.db import Database
from agora.models import ProductAsset
from tests.catalog import files
from tests.catalog.files import MB
from tests.factories import catalog as f
from tests.factories.identities import Cast, add_cast

CODE = "acme-analytics"


@pytest.fixture(autouse=True)
def _handlers() -> None:
    tasks.register_all()


@pytest.fixture
def cast(client: TestClient, db: Database) -> Cast:
    cast = add_cast(db)
    f.create_listing(client, cast.seller, CODE)
    return cast


def _asset_rows(db: Database) -> list[tuple[str, str]]:
    with db.reader() as session:
        return [(a.kind, a.digest) for a in session.scalars(select(ProductAsset).order_by(ProductAsset.id))]


def _stored_files() -> list[Path]:
    """Every file under ./var/assets (the test's own working directory), temporary uploads included."""
    root = Path("var/assets")
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _assets_of(client: TestClient, cast: Cast, kind: str) -> list[dict[str, object]]:
    product = client.get(f"/api/v1/products/{CODE}", headers=cast.seller.headers).json()
    return [a for a in product["assets"] if a["kind"] == kind]


def test_png_logo_is_accepted_and_served_back_as_png_LST_03(client: TestClient, cast: Cast) -> None:
    logo = files.png()
    status, body = f.upload(client, cast.seller, CODE, "logo", logo, "logo.png")
    assert status == 201, body
    assert body["kind"] == "logo"
    assert body["content_type"] == "image/png"
    assert body["size"] == len(logo)
    assert body["filename"] == "logo.png"
    assert _assets_of(client, cast, "logo") == [body]
    assert [p.name for p in _stored_files()] == [body["digest"][2:]]

    served = client.get(body["url"], headers=cast.seller.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.content == logo


def test_png_logo_whatever_its_name_and_declared_type_LST_03(client: TestClient, cast: Cast) -> None:
    response = client.post(
        f"/api/v1/products/{CODE}/assets",
        data={"kind": "logo"},
        files={"file": ("brand.jpg", files.png(), "image/jpeg")},
        headers=cast.seller.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "image/png"


def test_jpeg_renamed_logo_png_is_refused_by_content_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    status, body = f.upload(client, cast.seller, CODE, "logo", files.jpeg(), "logo.png")
    assert status == 422, body
    assert body["error"] == "invalid"
    assert "PNG" in body["detail"]
    assert "content" in body["detail"]
    assert "LST-03" in body["detail"]
    assert _asset_rows(db) == []


def test_logo_over_7_5_mb_is_413_and_at_the_limit_is_accepted_LST_03(client: TestClient, cast: Cast) -> None:
    limit = int(7.5 * MB)
    status, body = f.upload(client, cast.seller, CODE, "logo", files.padded(files.png(), limit + 1), "logo.png")
    assert status == 413, body
    assert body["error"] == "too_large"
    assert "7.5 MB" in body["detail"]

    status, body = f.upload(client, cast.seller, CODE, "logo", files.padded(files.png(), limit), "logo.png")
    assert status == 201, body
    assert body["size"] == limit


def test_11_mb_pdf_user_guide_is_413_mentioning_10_mb_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    big = files.padded(files.pdf(), 11 * MB)
    status, body = f.upload(client, cast.seller, CODE, "user_guide", big, "guide.pdf")
    assert status == 413, body
    assert body["error"] == "too_large"
    assert "10 MB" in body["detail"]
    assert "user_guide" in body["detail"]
    assert _asset_rows(db) == []
    assert _stored_files() == []


def test_too_large_message_does_not_understate_the_size_LST_03(client: TestClient, cast: Cast) -> None:
    status, body = f.upload(client, cast.seller, CODE, "user_guide", files.padded(files.pdf(), 11 * MB), "guide.pdf")
    assert status == 413
    stated = re.search(r"this one is ([\d.]+) MB", body["detail"])
    assert stated is None or float(stated.group(1)) > 10, body["detail"]


def test_pdf_user_guide_is_accepted_and_a_new_one_replaces_it_LST_03(client: TestClient, cast: Cast) -> None:
    status, first = f.upload(client, cast.seller, CODE, "user_guide", files.pdf(), "guide.pdf")
    assert status == 201, first
    assert first["content_type"] == "application/pdf"
    status, second = f.upload(client, cast.seller, CODE, "user_guide", files.pdf(width=595), "guide-v2.pdf")
    assert status == 201, second
    assert _assets_of(client, cast, "user_guide") == [second]


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"Read me: this is the user guide.\n" * 20, "guide.pdf"),
        (b"%PDF-1.4 garbage", "guide.pdf"),
        (files.png(), "guide.pdf"),
        (b"", "guide.pdf"),
    ],
    ids=["text", "corrupt-pdf", "png", "empty"],
)
def test_user_guide_must_really_be_a_pdf_LST_03(
    client: TestClient, db: Database, cast: Cast, data: bytes, filename: str
) -> None:
    status, body = f.upload(client, cast.seller, CODE, "user_guide", data, filename)
    assert status == 422, body
    assert "PDF" in body["detail"]
    assert _asset_rows(db) == []
    assert _stored_files() == []


def test_seventh_certification_is_409_mentioning_6_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    for n in range(6):
        image = files.jpeg(color=(n * 40, 10, 10)) if n % 2 else files.png(64, 64, (n * 40, 10, 10))
        status, body = f.upload(client, cast.seller, CODE, "certification", image, f"cert-{n}.img")
        assert status == 201, (n, body)
    rows = _asset_rows(db)
    stored = _stored_files()
    assert len(rows) == 6

    status, body = f.upload(client, cast.seller, CODE, "certification", files.jpeg(color=(1, 2, 3)), "cert-7.jpg")
    assert status == 409, body
    assert body["error"] == "too_many_assets"
    assert "6" in body["detail"]
    assert _asset_rows(db) == rows
    assert _stored_files() == stored


def test_the_same_certification_twice_is_one_file_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    for _ in range(2):
        status, body = f.upload(client, cast.seller, CODE, "certification", files.jpeg(), "iso27001.jpg")
        assert status == 201, body
    assert len(_assets_of(client, cast, "certification")) == 1


def test_certification_of_2_5_mb_is_413_mentioning_2_mb_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    big = files.padded(files.jpeg(), int(2.5 * MB))
    status, body = f.upload(client, cast.seller, CODE, "certification", big, "iso.jpg")
    assert status == 413, body
    assert "2 MB" in body["detail"]
    status, body = f.upload(client, cast.seller, CODE, "certification", files.padded(files.png(), 2 * MB), "soc2.png")
    assert status == 201, body


def test_screenshots_are_images_up_to_10_of_5_mb_LST_02(client: TestClient, cast: Cast) -> None:
    status, body = f.upload(client, cast.seller, CODE, "screenshot", files.jpeg(), "screen.png")
    assert status == 201, body
    assert body["content_type"] == "image/jpeg"
    status, body = f.upload(client, cast.seller, CODE, "screenshot", files.pdf(), "screen.png")
    assert status == 422, body
    status, body = f.upload(client, cast.seller, CODE, "screenshot", files.padded(files.png(), 5 * MB + 1), "big.png")
    assert status == 413, body
    assert "5 MB" in body["detail"]
    for n in range(1, 10):
        status, body = f.upload(client, cast.seller, CODE, "screenshot", files.png(32, 32, (n, n, n)), f"s{n}.png")
        assert status == 201, (n, body)
    status, body = f.upload(client, cast.seller, CODE, "screenshot", files.png(32, 32, (99, 0, 0)), "s11.png")
    assert status == 409, body
    assert "10" in body["detail"]
    assert len(_assets_of(client, cast, "screenshot")) == 10


def test_video_is_mp4_or_webm_LST_02(client: TestClient, cast: Cast) -> None:
    status, body = f.upload(client, cast.seller, CODE, "video", files.mp4(), "demo.mp4")
    assert status == 201, body
    assert body["content_type"] == "video/mp4"
    status, body = f.upload(client, cast.seller, CODE, "video", files.webm(), "demo.webm")
    assert status == 201, body
    assert body["content_type"] == "video/webm"
    assert len(_assets_of(client, cast, "video")) == 1
    status, body = f.upload(client, cast.seller, CODE, "video", files.png(), "demo.mp4")
    assert status == 422, body
    assert "MP4" in body["detail"]


REFUSALS: list[tuple[str, Callable[[], bytes], int]] = [
    ("logo", files.jpeg, 422),
    ("logo", lambda: files.padded(files.png(), int(7.5 * MB) + 1), 413),
    ("user_guide", lambda: b"just text", 422),
    ("user_guide", lambda: b"%PDF-1.4 garbage", 422),
    ("user_guide", lambda: files.padded(files.pdf(), 11 * MB), 413),
    ("eula", lambda: files.png(), 422),
    ("certification", lambda: files.padded(files.jpeg(), int(2.5 * MB)), 413),
    ("certification", lambda: b"GIF89a not really", 422),
    ("video", lambda: b"\x00\x00\x00\x18notmp4", 422),
]


def test_a_refused_upload_keeps_nothing_and_replaces_nothing_LST_03(
    client: TestClient, db: Database, cast: Cast
) -> None:
    # The product already has one file of every single-file kind, which a refused upload must not touch.
    f.add_required_files(client, cast.seller, CODE)
    status, body = f.upload(client, cast.seller, CODE, "eula", files.pdf(width=600), "eula.pdf")
    assert status == 201, body
    rows, stored = _asset_rows(db), _stored_files()
    assert len(stored) == 3

    for kind, make, expected in REFUSALS:
        status, body = f.upload(client, cast.seller, CODE, kind, make(), "upload.bin")
        assert status == expected, (kind, body)
        assert _asset_rows(db) == rows, kind
        assert _stored_files() == stored, kind
    audit = client.get(
        "/api/v1/audit", params={"target_id": CODE, "action": "product.asset_upload"}, headers=cast.operator.headers
    ).json()["events"]
    assert len(audit) == 3


def test_uploading_the_same_logo_twice_keeps_one_logo_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    logo = files.png()
    for _ in range(2):
        status, body = f.upload(client, cast.seller, CODE, "logo", logo, "logo.png")
        assert status == 201, body
    assert [kind for kind, _ in _asset_rows(db)] == ["logo"]
    assert len(_stored_files()) == 1

    status, new = f.upload(client, cast.seller, CODE, "logo", files.png(color=(0, 200, 0)), "logo-v2.png")
    assert status == 201, new
    assert _asset_rows(db) == [("logo", new["digest"])]
    assert _assets_of(client, cast, "logo") == [new]


def test_draft_assets_are_served_to_their_seller_only_LST_06(client: TestClient, db: Database, cast: Cast) -> None:
    status, body = f.upload(client, cast.seller, CODE, "logo", files.png(), "logo.png")
    assert status == 201, body
    url = body["url"]
    assert client.get(url, headers=cast.seller.headers).status_code == 200
    assert client.get(url, headers=cast.operator.headers).status_code == 200
    for headers in ({}, cast.buyer.headers, cast.other_seller.headers):
        response = client.get(url, headers=headers)
        assert response.status_code == 404, headers
        assert response.content != files.png()
    assert client.get(f"/api/v1/assets/{'0' * 64}", headers=cast.seller.headers).status_code == 404
    assert client.get("/api/v1/assets/..%2F..%2Fagora.db", headers=cast.seller.headers).status_code == 404

    # Once the listing is public, its files are public too.
    f.add_required_files(client, cast.seller, CODE)
    f.submit(client, cast.seller, CODE)
    f.approve(client, cast.operator, CODE)
    f.run_jobs(db)
    assert client.get(url).status_code == 404  # limited: still only the seller's
    f.sign_off(client, cast.seller, CODE)
    served = client.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"


def test_assets_are_served_without_deprecated_sqlalchemy_calls(client: TestClient, db: Database, cast: Cast) -> None:
    """LST-02/LST-03: uploaded files are served back under the project's warning policy."""
    status, body = f.upload(client, cast.seller, CODE, "logo", files.png(), "logo.png")
    assert status == 201
    with f.lenient_client(db) as lenient:
        assert lenient.get(body["url"], headers=cast.seller.headers).status_code == 200


def test_only_the_products_seller_uploads_SEL_01(client: TestClient, db: Database, cast: Cast) -> None:
    status, body = f.upload(client, cast.other_seller, CODE, "logo", files.png(), "logo.png")
    assert status == 404, body
    status, body = f.upload(client, cast.buyer, CODE, "logo", files.png(), "logo.png")
    assert status == 403, body
    status, body = f.upload(client, cast.operator, CODE, "logo", files.png(), "logo.png")
    assert status == 403, body
    status, body = f.upload(client, cast.seller, "no-such-product", "logo", files.png(), "logo.png")
    assert status == 404, body
    status, body = f.upload(client, cast.seller, CODE, "banner", files.png(), "logo.png")
    assert status == 422, body
    assert _asset_rows(db) == []
    assert _stored_files() == []


def test_files_of_a_submitted_listing_do_not_change_under_review_LST_05(
    client: TestClient, db: Database, cast: Cast
) -> None:
    f.add_required_files(client, cast.seller, CODE)
    f.submit(client, cast.seller, CODE)
    rows = _asset_rows(db)
    status, body = f.upload(client, cast.seller, CODE, "logo", files.png(color=(255, 0, 0)), "logo.png")
    assert status == 409, body
    assert _asset_rows(db) == rows


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with its parts in the given order: (field, filename or None, content)."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += b"--b0undary\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--b0undary--\r\n", {"content-type": "multipart/form-data; boundary=b0undary"}


def test_a_file_sent_before_its_kind_still_gets_that_kinds_limit_LST_03(
    client: TestClient, db: Database, cast: Cast
) -> None:
    body, headers = _multipart(
        [("file", "iso.jpg", files.padded(files.jpeg(), int(2.5 * MB))), ("kind", None, b"certification")]
    )
    response = client.post(f"/api/v1/products/{CODE}/assets", content=body, headers={**cast.seller.headers, **headers})
    assert response.status_code == 413, response.text
    assert "2 MB" in response.json()["detail"]
    body, headers = _multipart([("file", "logo.png", files.png()), ("kind", None, b"logo")])
    response = client.post(f"/api/v1/products/{CODE}/assets", content=body, headers={**cast.seller.headers, **headers})
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "logo"
    assert len(_stored_files()) == 1


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ([("file", "logo.png", b"x")], "kind"),
        ([("kind", None, b"banner"), ("file", "logo.png", b"x")], "kind"),
        ([("kind", None, b"logo")], "file"),
        ([("kind", None, b"logo"), ("file", "a.png", b"x"), ("file", "b.png", b"y")], "file"),
        ([("kind", None, b"logo" * 1000), ("file", "a.png", b"x")], "kind"),
    ],
    ids=["no-kind", "unknown-kind", "no-file", "two-files", "long-kind"],
)
def test_a_malformed_upload_is_422_naming_the_field(
    client: TestClient, db: Database, cast: Cast, parts: list[tuple[str, str | None, bytes]], field: str
) -> None:
    body, headers = _multipart(parts)
    response = client.post(f"/api/v1/products/{CODE}/assets", content=body, headers={**cast.seller.headers, **headers})
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["problems"]] == [field]
    assert _stored_files() == []


def test_an_upload_that_is_not_multipart_is_422(client: TestClient, cast: Cast) -> None:
    response = client.post(f"/api/v1/products/{CODE}/assets", json={"kind": "logo"}, headers=cast.seller.headers)
    assert response.status_code == 422, response.text
    assert "multipart/form-data" in response.json()["detail"]
    response = client.post(f"/api/v1/products/{CODE}/assets", data={"kind": "logo"}, headers=cast.seller.headers)
    assert response.status_code == 422, response.text


HTML = b"<html><body><script>alert(document.cookie)</script></body></html>\n"


@pytest.mark.parametrize(
    ("kind", "width", "height", "bound"),
    [
        ("screenshot", 10_000, 10_000, "5120 × 5120"),
        ("screenshot", 20_000, 20_000, "5120 × 5120"),  # past Pillow's own limit: DecompressionBombError
        ("screenshot", 5121, 100, "5120 × 5120"),
        ("logo", 2049, 2049, "2048 × 2048"),
        ("certification", 100, 4097, "4096 × 4096"),
    ],
)
def test_an_image_declaring_too_many_pixels_is_422_naming_the_file_LST_03(
    client: TestClient, db: Database, cast: Cast, kind: str, width: int, height: int, bound: str
) -> None:
    bomb = files.png_declaring(width, height)
    assert len(bomb) < 200
    status, body = f.upload(client, cast.seller, CODE, kind, bomb, "bomb.png")
    assert status == 422, body
    assert body["problems"] == [{"loc": "file", "msg": body["detail"].removeprefix("file: ")}]
    assert bound in body["detail"]
    assert kind in body["detail"]
    assert _asset_rows(db) == []
    assert _stored_files() == []


def test_images_at_their_kinds_bound_are_accepted_without_being_decoded_LST_03(client: TestClient, cast: Cast) -> None:
    for kind, side in (("screenshot", 5120), ("logo", 2048), ("certification", 4096)):
        status, body = f.upload(client, cast.seller, CODE, kind, files.png_declaring(side, side), f"{kind}.png")
        assert status == 201, (kind, body)


def test_a_png_with_data_after_its_iend_is_refused_LST_03(client: TestClient, db: Database, cast: Cast) -> None:
    for kind in ("logo", "screenshot", "certification"):
        status, body = f.upload(client, cast.seller, CODE, kind, files.png() + HTML, "logo.png")
        assert status == 422, (kind, body)
        assert "after its IEND" in body["detail"]
    status, body = f.upload(client, cast.seller, CODE, "logo", files.png()[:-12], "logo.png")
    assert status == 422, body
    assert _asset_rows(db) == []
    assert _stored_files() == []


@pytest.mark.parametrize("tail", [HTML, b"%%EOF\n" + HTML, b"\n%" + HTML], ids=["html", "eof-then-html", "comment"])
def test_a_pdf_with_data_after_its_end_is_refused_LST_03(client: TestClient, cast: Cast, tail: bytes) -> None:
    for kind in ("user_guide", "eula"):
        status, body = f.upload(client, cast.seller, CODE, kind, files.pdf() + tail, "guide.pdf")
        assert status == 422, (kind, body)
        assert "%%EOF" in body["detail"]
    status, body = f.upload(client, cast.seller, CODE, "user_guide", files.pdf() + b"\r\n\0\0", "guide.pdf")
    assert status == 201, body


def _mp4_with_handler(handler: bytes) -> bytes:
    video = files.mp4()
    at = video.index(b"vide")
    return video[:at] + handler + video[at + 4 :]


@pytest.mark.parametrize(
    "data",
    [
        b"\0\0\0\x18ftypisom\0\0\0\0isommp42" + HTML,  # four bytes of MP4, then a page
        files.mp4() + HTML,
        files.mp4()[:-10],
        _mp4_with_handler(b"soun"),
        files.mp4()[files.mp4().index(b"moov") - 4 :],  # no ftyp
        files.webm() + HTML,
        files.webm()[:-3],
        files.webm().replace(b"webm", b"html"),
        b"\x1a\x45\xdf\xa3" + HTML,
    ],
    ids=[
        "ftyp-then-html",
        "mp4-then-html",
        "mp4-cut",
        "mp4-audio-only",
        "mp4-no-ftyp",
        "webm-then-html",
        "webm-cut",
        "ebml-not-webm",
        "ebml-then-html",
    ],
)
def test_a_video_must_be_a_well_formed_container_with_a_video_track_LST_02(
    client: TestClient, db: Database, cast: Cast, data: bytes
) -> None:
    status, body = f.upload(client, cast.seller, CODE, "video", data, "demo.mp4")
    assert status == 422, body
    assert body["problems"][0]["loc"] == "file"
    assert "MP4 or WEBM" in body["detail"]
    assert _asset_rows(db) == []
    assert _stored_files() == []


def test_every_asset_is_served_as_a_sandboxed_named_file_never_as_a_page(client: TestClient, cast: Cast) -> None:
    uploads = [
        ("logo", files.png(), "Acme logo <v2>.png", "inline", "image/png"),
        ("screenshot", files.jpeg(), "écran.jpg", "inline", "image/jpeg"),
        ("video", files.webm(), "demo.webm", "inline", "video/webm"),
        ("user_guide", files.pdf(), 'guide"; x=".pdf', "attachment", "application/pdf"),
    ]
    for kind, data, filename, disposition, content_type in uploads:
        status, body = f.upload(client, cast.seller, CODE, kind, data, filename)
        assert status == 201, (kind, body)
        served = client.get(body["url"], headers=cast.seller.headers)
        assert served.status_code == 200
        assert served.content == data
        assert served.headers["content-type"].startswith(content_type)
        assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert served.headers["x-content-type-options"] == "nosniff"
        header = served.headers["content-disposition"]
        assert header.startswith(f'{disposition}; filename="'), header
        assert header.count('"') == 2, header  # the file's own name cannot break out of the quotes
        assert "filename*=UTF-8''" in header
    assert (
        'filename="cran.jpg"'
        in client.get(
            _assets_of(client, cast, "screenshot")[0]["url"],
            headers=cast.seller.headers,  # type: ignore[arg-type]
        ).headers["content-disposition"]
    )
