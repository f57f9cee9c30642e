"""Agreement ids for subscriptions made before they were assigned; license activations (Alibaba ActivateLicense)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

import agora.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

AGREEMENT_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def upgrade() -> None:
    op.create_table(
        "license_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("license_code", sa.String(length=200), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("identification", sa.String(length=64), nullable=True),
        sa.Column("activated_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", agora.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_license_activations_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_activations")),
        sa.UniqueConstraint("license_code", name=op.f("uq_license_activations_license_code")),
    )
    op.create_index(
        op.f("ix_license_activations_subscription_id"), "license_activations", ["subscription_id"], unique=False
    )
    subscriptions = sa.table("subscriptions", sa.column("id", sa.Integer), sa.column("agreement_id", sa.String))
    connection = op.get_bind()
    missing = connection.execute(sa.select(subscriptions.c.id).where(subscriptions.c.agreement_id.is_(None)))
    for (subscription_id,) in missing.all():
        agreement_id = "agmt-" + "".join(secrets.choice(AGREEMENT_ID_CHARS) for _ in range(25))
        connection.execute(
            subscriptions.update().where(subscriptions.c.id == subscription_id).values(agreement_id=agreement_id)
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_license_activations_subscription_id"), table_name="license_activations")
    op.drop_table("license_activations")
