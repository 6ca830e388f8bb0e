"""SQL tables (SQLAlchemy Core). Every entity table has the same shape: the full pydantic
document in ``data`` plus the few columns that queries filter on, copied from the document.
Events and the per-session offset counter get real columns: they are the hot path.

Changing a table here needs an Alembic migration in ``migrations/versions``;
``tests/store/test_migrations.py`` fails when the two disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)
from sqlalchemy.sql.schema import SchemaItem

metadata = MetaData()

# Integer columns (offsets, counters) are 32-bit on PostgreSQL; SQLite takes more, but both
# backends accept the same range so that a request means the same on either.
INT32_MAX = 2**31 - 1

# Entity collection -> the document attributes mirrored into indexed columns.
INDEXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "tags": ("name",),
    "agents": ("name",),
    "customers": ("name",),
    "sessions": ("agent_id", "customer_id"),
    "guidelines": (),
    "relationships": (),
    "journeys": (),
    "terms": ("name",),
    "capabilities": (),
    "context_variables": ("name",),
    "context_variable_values": ("variable_id", "key"),
    "canned_responses": (),
    "tools": ("service_name", "name"),
    "traces": ("session_id",),
    "tool_services": ("name",),
    "journey_progress": (),
    "api_keys": (),
    "flags": ("session_id", "agent_id"),
    "evaluations": ("agent_id",),
}


def _entity_table(name: str, indexed: tuple[str, ...]) -> Table:
    columns: list[SchemaItem] = [
        Column("id", String(128), primary_key=True),
        # Idempotency key for definitions made by the SDK (stable id, name or content).
        Column("natural_key", String(512), nullable=True),
        Column("creation_utc", DateTime(timezone=True), nullable=False),
        Column("updated_utc", DateTime(timezone=True), nullable=False),
        Column("data", JSON, nullable=False),
    ]
    columns += [Column(c, String(512), nullable=True) for c in indexed]
    if name == "sessions":
        columns.append(Column("next_offset", Integer, nullable=False, server_default="0"))
    table = Table(name, metadata, *columns)
    Index(f"ix_{name}_natural_key", table.c.natural_key, unique=True)
    for c in indexed:
        Index(f"ix_{name}_{c}", table.c[c])
    return table


ENTITY_TABLES: dict[str, Table] = {
    name: _entity_table(name, cols) for name, cols in INDEXED_COLUMNS.items()
}

events = Table(
    "events",
    metadata,
    Column("id", String(128), primary_key=True),
    Column(
        "session_id",
        String(128),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("offset", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("trace_id", String(128), nullable=False),
    Column("creation_utc", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default="0"),
)
Index("ix_events_session_offset", events.c.session_id, events.c.offset, unique=True)
Index("ix_events_trace_id", events.c.trace_id)

# Turns as records (tactful.domain.turns): written with their customer message, claimed with a
# lease. At most one turn of a session runs at a time: the partial unique index says so to
# every process on the database.
turns = Table(
    "turns",
    metadata,
    Column("id", String(128), primary_key=True),
    Column(
        "session_id",
        String(128),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer_offset", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("lease_expires", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("emitted", Boolean, nullable=False, server_default="0"),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("creation_utc", DateTime(timezone=True), nullable=False),
)
Index("ix_turns_session", turns.c.session_id)
Index("ix_turns_status", turns.c.status)
Index(
    "ux_turns_running_session",
    turns.c.session_id,
    unique=True,
    sqlite_where=turns.c.status == "running",
    postgresql_where=turns.c.status == "running",
)

# Counters bumped in the same transaction as the writes they count. "definitions" counts every
# change to what defines agents (DEFINITION_COLLECTIONS), so a process can keep a snapshot of
# an agent in memory and notice, with one read, a change made by any process on the database.
revisions = Table(
    "revisions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

DEFINITION_COLLECTIONS = frozenset(
    {
        "tags",
        "agents",
        "guidelines",
        "relationships",
        "journeys",
        "terms",
        "capabilities",
        "context_variables",
        "canned_responses",
        "tools",
        "tool_services",
    }
)

# Changes to these are recorded in the audit trail, in the transaction that makes them.
# Flags are not: like sessions, they are notes about conversations, not what defines an agent.
AUDITED_COLLECTIONS = DEFINITION_COLLECTIONS | {"api_keys"}

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creation_utc", DateTime(timezone=True), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("entity_id", String(128), nullable=False),
    Column("data", JSON, nullable=True),
    # The definition_revisions row of the change (NULL for what is not a definition).
    Column("revision", Integer, nullable=True),
)
Index("ix_audit_kind_entity", audit.c.kind, audit.c.entity_id)
Index("ix_audit_revision", audit.c.revision)

# Change sets of definitions (tactful.domain.audit.Revision): the audit entries carrying a
# revision's id are what it changed, so the definitions as of any revision can be rebuilt.
definition_revisions = Table(
    "definition_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("creation_utc", DateTime(timezone=True), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("summary", String(500), nullable=True),
    sqlite_autoincrement=True,
)

# Fixed-window counters of the rate limits, shared by every process on the database.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", String(256), primary_key=True),
    Column("window", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
)

# Cached embeddings, keyed by model and content hash, so a restart recomputes nothing.
embeddings = Table(
    "embeddings",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("dimensions", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("creation_utc", DateTime(timezone=True), nullable=False),
)
