"""Fleet server settings: defaults that make ``liteship serve`` work with no configuration.

Every field can come from the environment as ``LITESHIP_<FIELD>`` (upper case). Secrets left at their
default value are refused outside ``environment="development"``, as in the FastAPI full-stack template.

    >>> s = Settings(data_dir="/tmp/fleet")          # doctest: +SKIP
    >>> s.resolved_database_url()                    # doctest: +SKIP
    'sqlite:////tmp/fleet/fleet.db'
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from liteship.errors import UsageError

DEFAULT_SECRET = "changethis"
_LIST_FIELDS = {"trusted_keys", "default_stages"}


class Settings(BaseModel):
    """Configuration of one fleet server (all API workers of a deployment share it)."""

    environment: Literal["development", "production"] = "development"
    database_url: str | None = None  # default: SQLite file inside data_dir
    data_dir: Path = Path("liteship-data")
    admin_token: str = DEFAULT_SECRET
    enrollment_token: str = DEFAULT_SECRET
    trusted_keys: list[str] = Field(default_factory=list)  # publisher public keys (paths or key text)
    max_body_bytes: int = 1 << 20  # every JSON endpoint
    max_package_bytes: int = 512 << 20  # the publish endpoint
    default_stages: list[float] = Field(default_factory=lambda: [2.0, 15.0, 100.0])
    decision_interval_s: float = 30.0  # evaluate a rollout at most this often on telemetry
    min_predictions: int = 500
    min_devices: int = 10
    tuf_timestamp_days: float = 1.0
    tuf_snapshot_days: float = 7.0
    tuf_targets_days: float = 7.0
    tuf_root_days: float = 365.0

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        for name in ("admin_token", "enrollment_token"):
            value = getattr(self, name)
            if value != DEFAULT_SECRET and len(value) >= 16:
                continue
            message = (
                f"the {name} is {'the default ' + repr(DEFAULT_SECRET) if value == DEFAULT_SECRET else 'shorter than 16 characters'}."
                f" Set LITESHIP_{name.upper()} to a long random value (e.g. `python -c 'import secrets;"
                f" print(secrets.token_urlsafe(32))'`)."
            )
            if self.environment != "development":
                raise ValueError(message + " This is refused outside environment=development.")
            warnings.warn(message + " Accepted only because environment=development.", stacklevel=2)
        return self

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
            return cls(**values)
        except ValueError as e:
            raise UsageError(f"fleet server settings cannot be used: {e}") from None

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL; ``postgresql://`` is mapped to the psycopg 3 driver."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'fleet.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
