"""Drift per variant (issue 24): ``telemetry_variant_hours`` sums the counted windows of each variant of
a model version per hour of their end (window count and confidence histogram), as ``telemetry_hours``
(0007) does per version, so each variant of a multi-variant release is compared with its own reference
in O(hours). Counted windows already stored with a ``variant`` (0009) are folded in here; a row that
cannot be read is left out, as the rescan leaves it out.

Revision ID: 0012
Revises: 0011
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BINS = 20
HOUR_S = 3600.0
COLUMNS = [f"c{i:02d}" for i in range(BINS)]


def upgrade() -> None:
    table = op.create_table(
        "telemetry_variant_hours",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(48), nullable=False),
        sa.Column("hour", sa.Float, nullable=False),
        sa.Column("windows", sa.Integer, nullable=False, server_default="0"),
        *[sa.Column(c, sa.BigInteger, nullable=False, server_default="0") for c in COLUMNS],
        sa.UniqueConstraint("model_id", "model_version", "variant", "hour"),
    )
    rows = op.get_bind().execute(
        sa.text(
            "SELECT model_id, model_version, variant, ended, confidence_hist FROM telemetry_windows "
            "WHERE assigned AND model_id IS NOT NULL AND model_version IS NOT NULL AND variant IS NOT NULL"
        )
    )
    sums: dict[tuple[str, str, str, float], list[int]] = {}
    for model_id, version, variant, ended, hist in rows:
        hist = json.loads(hist) if isinstance(hist, str) else hist
        try:
            hour = (float(ended) // HOUR_S) * HOUR_S
            ok = math.isfinite(hour) and isinstance(hist, list) and len(hist) == BINS
            counts = [int(c) for c in hist] if ok else []
            ok = ok and all(0 <= c <= 10**9 and float(c) == h for c, h in zip(counts, hist, strict=True))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            continue
        acc = sums.setdefault((model_id, version, variant, hour), [0] * (BINS + 1))
        acc[0] += 1
        for i, c in enumerate(counts):
            acc[1 + i] += c
    if sums:
        op.bulk_insert(
            table,
            [
                {
                    "model_id": m,
                    "model_version": v,
                    "variant": name,
                    "hour": h,
                    "windows": a[0],
                    **dict(zip(COLUMNS, a[1:], strict=True)),
                }
                for (m, v, name, h), a in sums.items()
            ],  # fmt: skip
        )


def downgrade() -> None:
    op.drop_table("telemetry_variant_hours")
