"""Every route says who may call it, and means it: 401 without a valid token, 403 for a role that may not
act, 404 for another tenant's object."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from agora.app import API_ROUTERS
from agora.auth import route_roles
from agora.db import Database
from agora.models import Role
from tests.factories.identities import Cast, add_cast


def _declared_roles(route: APIRoute) -> frozenset[Role] | None:
    def walk(dependant: Any) -> Iterator[frozenset[Role]]:
        roles = route_roles(dependant.call)
        if roles is not None:
            yield roles
        for sub in dependant.dependencies:
            yield from walk(sub)

    found = list(walk(route.dependant))
    assert len(found) <= 1, f"{route.path} declares its audience more than once"
    return found[0] if found else None


def _api_routes() -> list[tuple[str, str, frozenset[Role]]]:
    routes = []
    for route in (r for router in API_ROUTERS for r in router.routes):
        if isinstance(route, APIRoute):
            assert route.path.startswith("/api/v1/")
            roles = _declared_roles(route)
            assert roles is not None, f"{route.path} does not declare who may call it (auth.require/public)"
            for method in sorted(route.methods):
                routes.append((method, route.path, roles))
    return routes


ROUTES = _api_routes()
PROTECTED = [r for r in ROUTES if r[2]]
RESTRICTED = [r for r in ROUTES if r[2] and set(Role) - r[2]]


def _ids(routes: list[tuple[str, str, frozenset[Role]]]) -> list[str]:
    return [f"{m} {p}" for m, p, _ in routes]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
def cast(db: Database) -> Cast:
    return add_cast(db)


def test_every_api_route_is_covered_by_this_matrix() -> None:
    paths = {path for _, path, _ in ROUTES}
    assert {"/api/v1/me", "/api/v1/audit", "/api/v1/jobs", "/api/v1/keys"} <= paths


@pytest.mark.parametrize(("method", "path", "roles"), PROTECTED, ids=_ids(PROTECTED))
def test_without_a_valid_token_every_protected_route_is_401(
    client: TestClient, method: str, path: str, roles: frozenset[Role]
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-real-token"}, {"Authorization": "Basic abc"}):
        response = client.request(method, _concrete(path), headers=headers)
        assert response.status_code == 401, (method, path, headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "roles"), RESTRICTED, ids=_ids(RESTRICTED))
def test_a_role_that_may_not_act_gets_403(
    client: TestClient, cast: Cast, method: str, path: str, roles: frozenset[Role]
) -> None:
    for role in set(Role) - roles:
        response = client.request(method, _concrete(path), headers=cast.of(role).headers)
        assert response.status_code == 403, (method, path, role, response.text)
        assert response.json()["error"] == "forbidden"


def test_a_revoked_or_unknown_token_is_401(client: TestClient, cast: Cast, db: Database) -> None:
    from agora import clock
    from agora.auth import hash_token
    from agora.models import ApiToken

    assert client.get("/api/v1/me", headers=cast.seller.headers).status_code == 200
    with db.unit_of_work() as session:
        token = session.query(ApiToken).filter_by(token_hash=hash_token(cast.seller.token)).one()
        token.revoked_at = clock.now()
    assert client.get("/api/v1/me", headers=cast.seller.headers).status_code == 401


def test_me_names_the_caller(client: TestClient, cast: Cast) -> None:
    for actor in (cast.operator, cast.seller, cast.buyer):
        assert client.get("/api/v1/me", headers=actor.headers).json() == {
            "role": actor.role.value,
            "handle": actor.handle,
        }


def test_a_seller_sees_itself_but_another_seller_is_404(client: TestClient, cast: Cast) -> None:
    own = client.get("/api/v1/sellers/acme", headers=cast.seller.headers)
    assert own.status_code == 200 and own.json()["handle"] == "acme"
    other = client.get("/api/v1/sellers/globex", headers=cast.seller.headers)
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    missing = client.get("/api/v1/sellers/nobody", headers=cast.seller.headers)
    assert missing.json() == other.json() | {"detail": "no seller 'nobody'"}
    assert client.get("/api/v1/sellers/globex", headers=cast.operator.headers).status_code == 200


def test_a_buyer_sees_its_own_account_but_another_buyer_is_404(client: TestClient, cast: Cast) -> None:
    assert client.get("/api/v1/buyers/111122223333", headers=cast.buyer.headers).status_code == 200
    assert client.get("/api/v1/buyers/444455556666", headers=cast.buyer.headers).status_code == 404
    assert client.get("/api/v1/buyers/444455556666", headers=cast.operator.headers).status_code == 200


def test_access_keys_belong_to_their_owner(client: TestClient, cast: Cast) -> None:
    created = client.post("/api/v1/keys", headers=cast.seller.headers)
    assert created.status_code == 201
    key_id = created.json()["access_key_id"]
    new_token = created.json()["token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {new_token}"}).json()["handle"] == "acme"

    other = client.delete(f"/api/v1/keys/{key_id}", headers=cast.other_seller.headers)
    assert other.status_code == 404, "another seller's key does not exist for them"
    buyer = client.delete(f"/api/v1/keys/{key_id}", headers=cast.buyer.headers)
    assert buyer.status_code == 404

    listed = client.get("/api/v1/keys", headers=cast.seller.headers).json()
    assert [k["access_key_id"] for k in listed] == [key_id]
    assert client.get("/api/v1/keys", headers=cast.other_seller.headers).json() == []

    revoked = client.delete(f"/api/v1/keys/{key_id}", headers=cast.seller.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    again = client.delete(f"/api/v1/keys/{key_id}", headers=cast.seller.headers)
    assert again.status_code == 409
