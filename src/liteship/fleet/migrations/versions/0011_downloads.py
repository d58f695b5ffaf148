"""Bandwidth (issue 24, item 5): ``downloads``, one row per verified download a device reports
(``downloaded`` events in its check-in): the target, the bytes that crossed the network for it (a
resumed download counts only what was fetched again), the target's size and the device's clock.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "downloads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False, index=True),
        sa.Column("model_id", sa.String(128), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("target", sa.String(300), nullable=False, index=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("resumed_from", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("device_id", "target", "at"),
    )


def downgrade() -> None:
    op.drop_table("downloads")
