"""Alembic environment: runs on a connection handed over by ``tactful.store.sql``."""

from __future__ import annotations

from alembic import context

from tactful.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "tactful runs its migrations programmatically; use `tactful.store.open_store`"
    )

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
