"""Alembic environment of the token service: runs on a connection handed in by the caller."""

from __future__ import annotations

from alembic import context

from bastion.identity.schema import metadata
from bastion.identity.storage import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through bastion.identity.storage.Database.migrate()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
