"""Alembic environment: always runs on a connection the engine hands over."""

from __future__ import annotations

from alembic import context

from engine.app import metadata as _all_tables

metadata = _all_tables()

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `ownly migrate`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
