"""Evaluations: guidelines checked against each other at definition time (stored jobs).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("agent_id", sa.String(512), nullable=True),
    )
    op.create_index("ix_evaluations_natural_key", "evaluations", ["natural_key"], unique=True)
    op.create_index("ix_evaluations_agent_id", "evaluations", ["agent_id"])


def downgrade() -> None:
    op.drop_table("evaluations")
