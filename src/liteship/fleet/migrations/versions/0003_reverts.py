"""reverts: one row per revert event a device reports in its check-in ``health`` (they were only kept
in ``devices.health``, overwritten at the next check-in), counted by the decision engine.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reverts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("to_version", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("by_server", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("device_id", "version", "at"),
    )
    op.create_index("ix_reverts_device_id", "reverts", ["device_id"])
    op.create_index("ix_reverts_model_version_at", "reverts", ["model_id", "version", "at"])


def downgrade() -> None:
    op.drop_table("reverts")
