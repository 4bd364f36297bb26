"""Alembic's environment: migrations run on the connection `store.migrate` hands over, inside
its transaction (which also holds the lock that serialises nodes starting at once)."""

from __future__ import annotations

from alembic import context

from emulator.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them: Alembic's batch mode does that.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
