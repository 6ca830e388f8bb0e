"""Capabilities: what an agent can do for a customer, offered when relevant to a turn.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capabilities",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_capabilities_natural_key", "capabilities", ["natural_key"], unique=True)


def downgrade() -> None:
    op.drop_table("capabilities")
