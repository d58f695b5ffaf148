"""Migration 0004 on a database that already holds data at 0003: nothing is lost, old windows count."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from liteship.fleet.app import MIGRATIONS, run_migrations


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'fleet.db'}"


def test_upgrade_from_0003_keeps_rows_and_counts_old_windows(url):
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "0003")
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO models (id, created_at, plan_version) VALUES ('m', 1, 0)"))
        c.execute(
            text(
                "INSERT INTO releases (model_id, version, sha256, size, target_path, manifest, created_at) "
                "VALUES ('m', '1.0.0', :s, 1, 'm/1.0.0/m.lsp', '{}', 1), "
                "('m', '1.1.0', :t, 1, 'm/1.1.0/m.lsp', '{}', 1)"
            ),
            {"s": "a" * 64, "t": "b" * 64},
        )
        c.execute(
            text("INSERT INTO devices (id, token_hash, bucket, registered_at) VALUES ('d', :h, 5, 1)"),
            {"h": "c" * 64},
        )
        c.execute(
            text(
                "INSERT INTO telemetry_windows (device_id, window_id, model_id, model_version, started, ended, "
                "inferences, errors, rollbacks, out_of_range_fraction, confidence_hist, latency_hist, "
                "latency_edges_ms, dropped_windows, received_at) VALUES ('d', 'w', 'm', '1.0.0', 1, 2, 3, 0, 0, "
                "0, '[3]', '[]', '[]', 0, 2)"
            )
        )
        c.execute(
            text(
                "INSERT INTO rollouts (model_id, control_release_id, candidate_release_id, stages, stage_index, "
                "state, thresholds, created_at, stage_started_at, updated_at) VALUES ('m', 1, 2, '[2, 100]', 0, "
                "'running', '{}', 1, 1, 1)"
            )
        )
    run_migrations(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT window_id, assigned FROM telemetry_windows")).one() == ("w", True)
        assert c.execute(text("SELECT min_arm_devices, bucket_cutoff FROM rollouts")).one() == (0, None)
        assert c.execute(text("SELECT count(*) FROM dashboard_sessions")).scalar() == 0
    command.downgrade(cfg, "0003")  # and back: the 0003 rows are still there
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM telemetry_windows")).scalar() == 1
    engine.dispose()


def test_head_matches_the_models_and_every_migration_goes_down_and_up_again(url):
    """Issue 24/25 migrations (0007-0012) on both backends: the schema at head is the models' schema, and
    base -> head -> base -> head runs (rows in the new tables — a ``when`` column among them — go with it)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from liteship.fleet.models import Base

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    run_migrations(url)
    engine = create_engine(url)

    def diff() -> list:
        with engine.connect() as c:
            ctx = MigrationContext.configure(c, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)

    assert diff() == []
    with engine.begin() as c:
        c.execute(text("INSERT INTO models (id, created_at, plan_version) VALUES ('m', 1, 0)"))
        c.execute(
            text(
                "INSERT INTO releases (model_id, version, sha256, size, target_path, manifest, created_at) "
                "VALUES ('m', '1.0.0', :s, 1, 'm/1.0.0/m.lsp', '{}', 1)"
            ),
            {"s": "a" * 64},
        )
        rid = c.execute(text("SELECT id FROM releases")).scalar()
        c.execute(
            text(
                'INSERT INTO release_variants (release_id, name, is_default, "when", sha256, size, target_path, '
                "manifest, created_at) VALUES (:r, 'float', true, '[]', :s, 1, 'm/1.0.0/f.lsp', '{}', 1)"
            ),
            {"r": rid, "s": "b" * 64},
        )
        c.execute(
            text(
                "INSERT INTO devices (id, token_hash, bucket, registered_at, tags) "
                "VALUES ('d', :h, 5, 1, '[\"ring=canary\"]')"
            ),
            {"h": "c" * 64},
        )
        c.execute(
            text(
                "INSERT INTO cohort_pins (model_id, tag, release_id, created_at) VALUES ('m', 'ring=canary', :r, 1)"
            ),
            {"r": rid},
        )
        c.execute(
            text(
                "INSERT INTO downloads (device_id, target, bytes, size, at, received_at) "
                "VALUES ('d', 'm/1.0.0/f.lsp', 5000000000, 5000000000, 1, 1)"
            )
        )
        c.execute(
            text(
                "INSERT INTO telemetry_variant_hours (model_id, model_version, variant, hour, windows, c00) "
                "VALUES ('m', '1.0.0', 'float', 3600, 1, 5000000000)"
            )
        )
    command.downgrade(cfg, "0006")
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM devices")).scalar() == 1
    command.downgrade(cfg, "base")
    run_migrations(url)
    assert diff() == []
    engine.dispose()
