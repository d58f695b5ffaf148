"""Multi-variant releases and per-group rollouts (issue 24).

``release_variants``: the signed packages of one release, one per kind of hardware (the manifest's
``variant``: name, conditions, default). ``devices.variant`` is the variant a device reports running,
``telemetry_windows.variant`` the variant a window was measured on. ``rollouts.halt_scope`` is the
operator's policy when one hardware group's candidate is worse (``group``: halt that group only;
``release``: halt the whole rollout), ``rollouts.halted_groups`` the groups halted so far.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release_variants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
        sa.Column("name", sa.String(48), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("when", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("target_path", sa.String(300), nullable=False, unique=True),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("release_id", "name"),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("variant", sa.String(48), nullable=True))
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.add_column(sa.Column("variant", sa.String(48), nullable=True))
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("halt_scope", sa.String(16), nullable=False, server_default="release"))
        batch.add_column(sa.Column("halted_groups", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("halted_groups")
        batch.drop_column("halt_scope")
    with op.batch_alter_table("telemetry_windows") as batch:
        batch.drop_column("variant")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("variant")
    op.drop_table("release_variants")
