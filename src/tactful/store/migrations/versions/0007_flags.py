"""Flags: staff notes on agent replies, listed by session and by agent.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("natural_key", sa.String(512), nullable=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("session_id", sa.String(512), nullable=True),
        sa.Column("agent_id", sa.String(512), nullable=True),
    )
    op.create_index("ix_flags_natural_key", "flags", ["natural_key"], unique=True)
    op.create_index("ix_flags_session_id", "flags", ["session_id"])
    op.create_index("ix_flags_agent_id", "flags", ["agent_id"])


def downgrade() -> None:
    op.drop_table("flags")
