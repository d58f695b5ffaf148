"""Hardening and small fleets (issues 10, 11):

- ``telemetry_windows.assigned``: False for a window naming another model/version than the server
  assigned the device (stored so the agent's spool drains, never counted by decisions or drift);
- ``dashboard_sessions``: the dashboard's own session cookies (sha256 of the random value, expiry),
  instead of a cookie holding the admin token;
- ``rollouts.min_arm_devices`` and ``rollouts.bucket_cutoff``: a rollout may ask for at least N devices
  on each arm per stage; the bucket cutoff that gives them is computed when a stage starts.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.add_column(sa.Column("assigned", sa.Boolean, nullable=False, server_default=sa.true()))
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("min_arm_devices", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("bucket_cutoff", sa.Integer, nullable=True))
    op.create_table(
        "dashboard_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("bucket_cutoff")
        batch.drop_column("min_arm_devices")
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.drop_column("assigned")
