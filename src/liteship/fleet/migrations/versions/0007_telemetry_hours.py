"""Aggregates, not rescans (issue 21, item 9): ``devices.own_reverts`` counts the reverts a device
decided itself as they are stored (the devices list read a GROUP BY over every revert), and ``telemetry_hours`` sums the counted windows of each model
version per hour of their end (window count and confidence histogram), maintained as windows arrive, so
drift costs O(hours) and survives the retention policy's deletion of raw windows. Existing windows are
folded in here (rows that cannot be read are counted in ``skipped``, as the rescan skipped them).

Revision ID: 0007
Revises: 0006
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BINS = 20
HOUR_S = 3600.0
COLUMNS = [f"c{i:02d}" for i in range(BINS)]


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("own_reverts", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE devices SET own_reverts = (SELECT count(*) FROM reverts WHERE reverts.device_id = devices.id "
        "AND NOT reverts.by_server)"
    )
    table = op.create_table(
        "telemetry_hours",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("hour", sa.Float, nullable=False),
        sa.Column("windows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
        *[sa.Column(c, sa.BigInteger, nullable=False, server_default="0") for c in COLUMNS],
        sa.UniqueConstraint("model_id", "model_version", "hour"),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT model_id, model_version, ended, confidence_hist FROM telemetry_windows "
            "WHERE assigned AND model_id IS NOT NULL AND model_version IS NOT NULL"
        )
    )
    sums: dict[tuple[str, str, float], list[int]] = {}
    for model_id, version, ended, hist in rows:
        hist = json.loads(hist) if isinstance(hist, str) else hist
        try:
            hour = (float(ended) // HOUR_S) * HOUR_S
            ok = math.isfinite(hour) and isinstance(hist, list) and len(hist) == BINS
            counts = [int(c) for c in hist] if ok else []
            ok = ok and all(0 <= c <= 10**9 and float(c) == h for c, h in zip(counts, hist, strict=True))
        except (TypeError, ValueError, OverflowError):
            ok, hour, counts = False, None, []
        if hour is None or not math.isfinite(hour):
            continue  # no hour to count it in (the rescan skipped it too)
        acc = sums.setdefault((model_id, version, hour), [0] * (BINS + 2))
        if ok:
            acc[0] += 1
            for i, c in enumerate(counts):
                acc[2 + i] += c
        else:
            acc[1] += 1
    if sums:
        op.bulk_insert(
            table,
            [
                {
                    "model_id": m,
                    "model_version": v,
                    "hour": h,
                    "windows": a[0],
                    "skipped": a[1],
                    **dict(zip(COLUMNS, a[2:], strict=True)),
                }
                for (m, v, h), a in sums.items()
            ],  # fmt: skip
        )


def downgrade() -> None:
    op.drop_table("telemetry_hours")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("own_reverts")
