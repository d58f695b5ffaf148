"""Fleet server settings: defaults that make ``liteship serve`` work with no configuration.

Every field can come from the environment as ``LITESHIP_<FIELD>`` (upper case). Tokens that are not
configured are generated on first start and kept in ``<data_dir>/secrets.json`` (mode 0600, see
:mod:`liteship.fleet.secrets`). A weak token (the template's ``changethis`` or shorter than 16
characters) is refused outside ``environment="development"``, as in the FastAPI full-stack template,
and on any host that is not loopback (:func:`liteship.fleet.secrets.check_exposure`).

    >>> s = Settings(data_dir="/tmp/fleet")          # doctest: +SKIP
    >>> s.resolved_database_url()                    # doctest: +SKIP
    'sqlite:////tmp/fleet/fleet.db'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from liteship.errors import UsageError

DEFAULT_SECRET = "changethis"
MIN_SECRET_LENGTH = 16
SECRET_FIELDS = ("admin_token", "enrollment_token")
_LIST_FIELDS = {"trusted_keys", "default_stages", "mirrors"}
DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def secret_problem(value: str) -> str | None:
    """Why a token is weak (the template default, or too short), or None when it is acceptable."""
    if value == DEFAULT_SECRET:
        return f"the well-known default {DEFAULT_SECRET!r}"
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    return None


class Settings(BaseModel):
    """Configuration of one fleet server (all API workers of a deployment share it)."""

    environment: Literal["development", "production"] = "development"
    database_url: str | None = None  # default: SQLite file inside data_dir
    data_dir: Path = Path("liteship-data")
    # None: <data_dir>/artifacts on local disk; or s3://bucket/prefix (liteship.fleet.s3)
    artifacts: str | None = None
    # S3-compatible endpoint (SeaweedFS, MinIO, Ceph…); None: AWS (or $AWS_ENDPOINT_URL_S3). Credentials
    # come from the standard AWS chain: $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY, ~/.aws, instance role.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None  # None: $AWS_REGION / $AWS_DEFAULT_REGION, else us-east-1
    # "redirect": downloads get a 307 to a presigned URL (the API never touches the bytes);
    # "proxy": the API streams them from the store (devices need not reach the store)
    s3_downloads: Literal["redirect", "proxy"] = "redirect"
    s3_presign_s: int = Field(default=3600, ge=60, le=7 * 86400)
    s3_timeout_s: float = Field(default=10.0, gt=0, le=300)  # per request to the store (2 attempts)
    # base URLs of untrusted target mirrors / CDNs, tried in order before this server (sent in each plan)
    mirrors: list[str] = Field(default_factory=list)
    # None: generated on first start and stored in <data_dir>/secrets.json (liteship.fleet.secrets)
    admin_token: str | None = None
    enrollment_token: str | None = None
    trusted_keys: list[str] = Field(default_factory=list)  # publisher public keys (paths or key text)
    max_body_bytes: int = 1 << 20  # every JSON endpoint
    max_package_bytes: int = 512 << 20  # the publish endpoint
    default_stages: list[float] = Field(default_factory=lambda: [2.0, 15.0, 100.0])
    decision_interval_s: float = 30.0  # evaluate a rollout at most this often on telemetry
    min_predictions: int = 500
    min_devices: int = 10
    # per-device rate limits (liteship.fleet.limits): over one, 429 with Retry-After, nothing stored
    # (an agent checks in once per poll interval, default 60 s, and sends one window per --window, 60 s)
    limit_checkins_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    limit_windows_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    limit_events_per_hour: int = Field(default=100, ge=1, le=1_000_000)
    limit_bytes_per_day: int = Field(default=64 << 20, ge=1 << 16, le=1 << 40)
    # raw telemetry windows and revert rows older than this are deleted (after being folded into the
    # per-period aggregates: liteship.fleet.retention); 0 keeps them forever
    retention_days: float = Field(default=90.0, ge=0.0, le=36500.0)
    # field samples (issue 25) received longer ago than this are deleted, rows and files, unless someone
    # labeled them (labels are work; `fleet samples purge` removes those); 0 keeps them forever
    sample_retention_days: float = Field(default=90.0, ge=0.0, le=36500.0)
    # PostgreSQL: async connections per API worker on which common check-ins run on the event loop
    # (liteship.fleet.pg_checkin); 0 runs every check-in in the thread pool as before
    pg_checkin_connections: int = Field(default=8, ge=0, le=64)
    tuf_timestamp_days: float = 1.0
    tuf_snapshot_days: float = 7.0
    tuf_targets_days: float = 7.0
    tuf_root_days: float = 365.0

    @model_validator(mode="after")
    def _refuse_weak_secrets_in_production(self) -> Settings:
        if self.environment == "development":
            return self  # weak tokens are still refused off loopback (secrets.check_exposure)
        for name, problem in self.weak_secrets().items():
            raise ValueError(
                f"the {name} is {problem}. Set LITESHIP_{name.upper()} to a long random value (e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or leave it unset so "
                "the server generates one. This is refused outside environment=development."
            )
        return self

    def weak_secrets(self) -> dict[str, str]:
        """``{field: problem}`` for every configured token that is weak (unset tokens are not listed)."""
        out = {}
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            problem = None if value is None else secret_problem(value)
            if problem is not None:
                out[name] = problem
        return out

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from ``LITESHIP_*`` variables, then ``overrides`` (None values are ignored).

        Raises:
            UsageError: a value cannot be used (e.g. a default secret in production).
        """
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = os.environ.get(f"LITESHIP_{name.upper()}")
            if raw is None:
                continue
            values[name] = [v for v in raw.split(",") if v] if name in _LIST_FIELDS else raw
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        try:
            return cls.model_validate(values)
        except ValueError as e:
            raise UsageError(f"fleet server settings cannot be used: {_pydantic_message(e)}") from None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, _ = value.partition("://")
        if not sep or scheme.lower() not in DATABASE_SCHEMES:
            raise ValueError(
                f"`database_url` {redact_url(value)[:100]!r} is not a supported database URL; expected "
                "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
            )
        return value

    @field_validator("artifacts")
    @classmethod
    def _known_artifacts(cls, value: str | None) -> str | None:
        if value is None or value.startswith("s3://") or "://" not in value:
            return value  # s3://…, or a local folder
        raise ValueError(
            f"`artifacts` {value[:100]!r} is not supported; expected s3://BUCKET[/PREFIX] or a local folder"
        )

    @field_validator("mirrors")
    @classmethod
    def _http_mirrors(cls, value: list[str]) -> list[str]:
        for url in value:
            if not (url.startswith("http://") or url.startswith("https://")) or len(url) > 500:
                raise ValueError(f"mirror {url[:100]!r} is not an http(s):// base URL")
        return [url.rstrip("/") for url in value]

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL; ``postgresql://`` is mapped to the psycopg 3 driver."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'fleet.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")


def _pydantic_message(e: ValueError) -> str:
    """The messages of a pydantic ValidationError without its URLs and input echoes (which may hold secrets)."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    parts = []
    for err in errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def redact_url(url: str) -> str:
    """``url`` without its password: ``scheme://user:***@host/…``."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, tail = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in creds else ''}@{tail}"
    return url
