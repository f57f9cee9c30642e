"""Credentials at rest: tokens only as hashes, access-key secrets encrypted but recoverable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from agora import auth, config
from agora.db import Database
from agora.identities import service
from agora.models import AccessKey, ApiToken, Role
from tests.factories.identities import add_seller


def test_tokens_are_stored_as_sha256_only(db: Database) -> None:
    with db.unit_of_work() as session:
        seller = add_seller(session)
        created = service.create_credentials(session, Role.SELLER, seller.id, actor="test")
    with db.reader() as session:
        rows = list(session.scalars(select(ApiToken)))
        stored = {r.token_hash for r in rows}
        assert auth.hash_token(created.token) in stored
        assert all(created.token not in (r.token_hash, r.hint) for r in rows)
        principal = auth.principal_from_token(session, created.token)
    assert principal is not None and (principal.role, principal.handle) == (Role.SELLER, "acme")


def test_access_key_secrets_are_encrypted_and_recoverable(db: Database) -> None:
    with db.unit_of_work() as session:
        seller = add_seller(session)
        service.add_access_key(session, Role.SELLER, seller.id, "AKIDACME00000001", "acme-secret-123")
    with db.reader() as session:
        key = session.get(AccessKey, "AKIDACME00000001")
        assert key is not None and "acme-secret-123" not in key.secret_encrypted
        found = auth.access_key_secret(session, "AKIDACME00000001")
        assert auth.access_key_secret(session, "AKIDUNKNOWN00001") is None
    assert found is not None
    principal, secret = found
    assert (principal.handle, secret) == ("acme", "acme-secret-123")


def test_secrets_need_the_key_they_were_stored_with(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.unit_of_work() as session:
        seller = add_seller(session)
        service.add_access_key(session, Role.SELLER, seller.id, "AKIDACME00000001", "acme-secret-123")
    monkeypatch.setenv("AGORA_SECRET_KEY", "a-different-key")
    config.reset_settings()
    with db.reader() as session, pytest.raises(RuntimeError, match="AGORA_SECRET_KEY"):
        auth.access_key_secret(session, "AKIDACME00000001")


def test_without_agora_secret_key_one_is_generated_once_into_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGORA_SECRET_KEY")
    config.reset_settings()
    first = config.fernet_key("access-keys")
    key_file = tmp_path / "var" / "secret.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert config.fernet_key("access-keys") == first, "the generated key is reused, not regenerated"
    assert config.fernet_key("other-purpose") != first


def test_a_token_cannot_be_given_to_two_accounts(db: Database) -> None:
    from agora.errors import Conflict

    with db.unit_of_work() as session:
        acme = add_seller(session, "acme")
        globex = add_seller(session, "globex")
        with pytest.raises(Conflict):
            service.add_token(session, Role.SELLER, globex.id, acme.token)
