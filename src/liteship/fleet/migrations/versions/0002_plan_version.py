"""models.plan_version: a counter bumped in the same transaction as every change to a model's
assignment plan (a rollout created or changed, a channel moved), so API workers can cache the plan and
check it with one primary-key read per check-in (see ``liteship.fleet.checkin``).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("plan_version", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("plan_version")
