"""One device, one device's say (issue 21): ``devices.refused_reports`` counts the reports refused
because they are not about the device's own model or arm (windows for another model, revert events
for a version it is not assigned, check-ins claiming another model).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("refused_reports", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("refused_reports")
