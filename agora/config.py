"""Process configuration: the `AGORA_*` environment variables of DESIGN.md, nothing else."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/agora.db"
VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGORA_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    region: str = "us-east-1"
    smtp_url: str | None = None
    secret_key: str | None = None
    # Operations (README, Operations): optional, nothing needs them to run.
    log_format: Literal["text", "json"] = "text"
    metrics_token: str | None = None
    # Webhook and metrics URLs may point at loopback, link-local and private addresses (agora.outbound).
    allow_private_urls: bool = False
    # The address people reach this marketplace at, for links in e-mails (password resets). Unset, a link
    # uses the address the request came to, which a client chooses: set it in production.
    public_url: str | None = None

    @field_validator("region")
    @classmethod
    def _region_shape(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c == "-" for c in value):
            raise ValueError("AGORA_REGION must look like us-east-1")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and CLI options change the environment)."""
    get_settings.cache_clear()


def var_dir() -> Path:
    path = Path(os.environ.get("AGORA_VAR_DIR", VAR_DIR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key_material(settings: Settings | None = None) -> bytes:
    """The bytes every at-rest encryption key derives from.

    `AGORA_SECRET_KEY` wins; without it a random key is generated once into `./var/secret.key`, so a
    single-machine install works with no configuration and keeps working across restarts.
    """
    settings = settings or get_settings()
    if settings.secret_key:
        return settings.secret_key.encode()
    path = var_dir() / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def fernet_key(purpose: str, settings: Settings | None = None) -> bytes:
    """A Fernet key for one purpose, derived from the secret key material."""
    digest = hashlib.sha256(b"agora:" + purpose.encode() + b":" + secret_key_material(settings)).digest()
    return base64.urlsafe_b64encode(digest)
