"""capture_policies and field_samples: field capture (issue 25), the signed policies that turn it on and
the samples devices upload.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "capture_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("target_path", sa.String(300), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("devices", sa.JSON, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("tuf", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_capture_policies_model_id", "capture_policies", ["model_id"])
    op.create_index("ix_capture_policies_model_sha", "capture_policies", ["model_id", "sha256"])
    op.create_table(
        "field_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("predicted", sa.Integer, nullable=False),
        sa.Column("predicted_label", sa.String(200), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("out_of_range", sa.Boolean, nullable=False),
        sa.Column("captured_at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("shape", sa.JSON, nullable=False),
        sa.Column("has_image", sa.Boolean, nullable=False),
        sa.Column("policy_sha256", sa.String(64), nullable=False),
        sa.Column("label", sa.Integer, nullable=True),
        sa.Column("discarded", sa.Boolean, nullable=False),
        sa.Column("labeled_at", sa.Float, nullable=True),
        sa.UniqueConstraint("device_id", "sample_id"),
    )
    op.create_index("ix_field_samples_model_received", "field_samples", ["model_id", "received_at"])
    op.create_index("ix_field_samples_device_received", "field_samples", ["device_id", "received_at"])


def downgrade() -> None:
    op.drop_table("field_samples")
    op.drop_table("capture_policies")
