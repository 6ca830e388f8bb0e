"""Per-session journey progress, kept apart from the session document.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journey_progress",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_journey_progress_natural_key", "journey_progress", ["natural_key"], unique=True
    )


def downgrade() -> None:
    op.drop_table("journey_progress")
