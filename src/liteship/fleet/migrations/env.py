"""Alembic environment, configured in code (no alembic.ini): see ``liteship.fleet.app.run_migrations``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from liteship.fleet.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if url is None:
    raise RuntimeError(
        "the Alembic config has no sqlalchemy.url; run migrations with "
        "liteship.fleet.app.run_migrations, which sets it."
    )
engine = create_engine(url)
with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # several API workers start at once: one migrates, the others wait, then find nothing to do
        connection.execute(text("SELECT pg_advisory_lock(74207312)"))
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(74207312)"))
            connection.commit()
engine.dispose()
