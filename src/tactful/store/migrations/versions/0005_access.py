"""API keys, the audit trail of definition changes, and rate-limit counters.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_api_keys_natural_key", "api_keys", ["natural_key"], unique=True)
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
    )
    op.create_index("ix_audit_kind_entity", "audit", ["kind", "entity_id"])
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(256), primary_key=True),
        sa.Column("window", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_table("audit")
    op.drop_table("api_keys")
