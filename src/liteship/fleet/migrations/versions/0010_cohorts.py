"""Cohorts and maintenance windows (issue 24, items 3-4).

``devices.tags``: the device's tags (``site=berlin``, ``ring=canary``), set at enrollment or by the
operator. ``devices.update_windows``: the device's own update windows (local time, ``HH:MM-HH:MM``).
``rollouts.tags``: a rollout takes only devices carrying all of them. ``cohort_pins``: a tag pinned to
one version of a model. ``cohort_windows``: the update windows of every device carrying a tag.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=True))
        batch.add_column(sa.Column("update_windows", sa.JSON, nullable=True))
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=True))
    op.create_table(
        "cohort_pins",
        sa.Column("model_id", sa.String(128), sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "cohort_windows",
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("windows", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cohort_windows")
    op.drop_table("cohort_pins")
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("update_windows")
        batch.drop_column("tags")
