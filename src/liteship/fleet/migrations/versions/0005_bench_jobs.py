"""bench_jobs and bench_tasks: fleet bench jobs (issue 12) and each device's figures.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bench_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("selector", sa.JSON, nullable=False),
        sa.Column("tuf", sa.String(32), nullable=False),
    )
    op.create_table(
        "bench_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("bench_jobs.id"), nullable=False),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("results", sa.JSON, nullable=True),
        sa.Column("profile", sa.JSON, nullable=True),
        sa.Column("mode", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("job_id", "device_id"),
    )
    op.create_index("ix_bench_tasks_job_id", "bench_tasks", ["job_id"])
    op.create_index("ix_bench_tasks_device_state", "bench_tasks", ["device_id", "state"])


def downgrade() -> None:
    op.drop_table("bench_tasks")
    op.drop_table("bench_jobs")
