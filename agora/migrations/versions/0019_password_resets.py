"""password_resets: the links `/password-reset` e-mails

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import agora.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_resets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", agora.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
    )
    op.create_index(op.f("ix_password_resets_email"), "password_resets", ["email"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_password_resets_email"), table_name="password_resets")
    op.drop_table("password_resets")
