"""Revisions of definitions: change sets, and the audit entries that belong to each.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "definition_revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("summary", sa.String(500), nullable=True),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=True))
        batch.create_index("ix_audit_revision", ["revision"])


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_index("ix_audit_revision")
        batch.drop_column("revision")
    op.drop_table("definition_revisions")
