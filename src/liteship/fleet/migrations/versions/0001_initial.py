"""Initial schema: models, releases, channels, devices, rollouts, decisions, telemetry windows.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(128), sa.ForeignKey("models.id"), nullable=False, index=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("target_path", sa.String(300), nullable=False, unique=True),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("model_id", "version"),
    )
    op.create_table(
        "channels",
        sa.Column("model_id", sa.String(128), sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("runtime", sa.JSON, nullable=True),
        sa.Column("health", sa.JSON, nullable=True),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=True),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(128), sa.ForeignKey("models.id"), nullable=False, index=True),
        sa.Column("control_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("candidate_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("stage_index", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("stage_started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("evaluated_at", sa.Float, nullable=True),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("stage_index", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("by", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("numbers", sa.JSON, nullable=False),
    )
    op.create_table(
        "telemetry_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False, index=True),
        sa.Column("window_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float, nullable=False),
        sa.Column("inferences", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("rollbacks", sa.Integer, nullable=False),
        sa.Column("out_of_range_fraction", sa.Float, nullable=False),
        sa.Column("confidence_hist", sa.JSON, nullable=False),
        sa.Column("latency_hist", sa.JSON, nullable=False),
        sa.Column("latency_edges_ms", sa.JSON, nullable=False),
        sa.Column("dropped_windows", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("device_id", "window_id"),
    )
    op.create_index(
        "ix_telemetry_model_version_ended", "telemetry_windows", ["model_id", "model_version", "ended"]
    )


def downgrade() -> None:
    for table in ("telemetry_windows", "decisions", "rollouts", "devices", "channels", "releases", "models"):
        op.drop_table(table)
