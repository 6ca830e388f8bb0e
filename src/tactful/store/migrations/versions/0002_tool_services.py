"""Tool services registered through the API or the SDK.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_services",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
    )
    op.create_index("ix_tool_services_natural_key", "tool_services", ["natural_key"], unique=True)
    op.create_index("ix_tool_services_name", "tool_services", ["name"])


def downgrade() -> None:
    op.drop_table("tool_services")
