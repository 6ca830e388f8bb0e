"""Initial schema: entity tables, events, embeddings cache.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of the shapes at this revision (later revisions must not change it).
_ENTITY_TABLES: dict[str, tuple[str, ...]] = {
    "tags": ("name",),
    "agents": ("name",),
    "customers": ("name",),
    "sessions": ("agent_id", "customer_id"),
    "guidelines": (),
    "relationships": (),
    "journeys": (),
    "terms": ("name",),
    "context_variables": ("name",),
    "context_variable_values": ("variable_id", "key"),
    "canned_responses": (),
    "tools": ("service_name", "name"),
    "traces": ("session_id",),
}


def upgrade() -> None:
    for name, indexed in _ENTITY_TABLES.items():
        columns: list[Any] = [
            sa.Column("id", sa.String(128), primary_key=True),
            sa.Column("natural_key", sa.String(512), nullable=True),
            sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
            sa.Column("data", sa.JSON, nullable=False),
        ]
        columns += [sa.Column(c, sa.String(512), nullable=True) for c in indexed]
        if name == "sessions":
            columns.append(sa.Column("next_offset", sa.Integer, nullable=False, server_default="0"))
        op.create_table(name, *columns)
        op.create_index(f"ix_{name}_natural_key", name, ["natural_key"], unique=True)
        for c in indexed:
            op.create_index(f"ix_{name}_{c}", name, [c])

    op.create_table(
        "events",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(128),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("offset", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_index("ix_events_session_offset", "events", ["session_id", "offset"], unique=True)
    op.create_index("ix_events_trace_id", "events", ["trace_id"])

    op.create_table(
        "embeddings",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("dimensions", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("creation_utc", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("embeddings")
    op.drop_table("events")
    for name in reversed(list(_ENTITY_TABLES)):
        op.drop_table(name)
