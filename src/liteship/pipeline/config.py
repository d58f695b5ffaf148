"""``liteship.yaml``: the pipeline's configuration (Pydantic at this boundary only).

Relative paths are resolved against the YAML file's folder, so a config can travel with its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from liteship.errors import UsageError

ALL_RECIPES = ("none", "dynamic", "int8", "int8-fallback", "float16", "int16x8")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PreprocessingConfig(_Strict):
    mean: list[float] | float = 0.0
    std: list[float] | float = 1.0
    size: tuple[int, int] | None = None
    channel_order: Literal["rgb", "bgr"] = "rgb"


class DataConfig(_Strict):
    data: str
    samples: int | None = Field(default=None, ge=1)


class BenchConfig(_Strict):
    threads: list[int] = Field(default_factory=lambda: [1])
    runs: int = Field(default=50, ge=1)
    warmup: int = Field(default=5, ge=0)
    min_seconds: float = Field(default=1.0, ge=0)


class GatesConfig(_Strict):
    max_accuracy_drop: float | None = Field(default=1.0, ge=0, description="points (0..100)")
    min_agreement: float | None = Field(default=0.98, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_size_mb: float | None = Field(default=None, gt=0)
    min_sqnr: float | None = None


class MixedPrecisionConfig(_Strict):
    enabled: bool = False
    recipe: Literal["int8", "int8-fallback"] = "int8-fallback"
    step: int = Field(default=2, ge=1, description="layers moved to float per round")
    max_rounds: int = Field(default=4, ge=1)


class MetadataConfig(_Strict):
    name: str | None = None
    description: str | None = None
    author: str | None = None
    license: str | None = None
    labels: str | None = None


class PackageConfig(_Strict):
    key: str | None = None
    golden_samples: int = Field(default=8, ge=1)
    latency_budget_factor: float = Field(default=5.0, gt=1.0)


class PipelineConfig(_Strict):
    """The whole pipeline. See docs/pipeline.md for every key."""

    source: str
    model_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version: str = "1.0.0"
    output: str = "out"
    recipes: list[str] = Field(default_factory=lambda: list(ALL_RECIPES))
    io_type: Literal["float32", "int8", "uint8"] | None = None
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    calibration: DataConfig
    validation: DataConfig
    bench: BenchConfig = Field(default_factory=BenchConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    objective: Literal["latency", "size"] = "latency"
    auto_mixed_precision: MixedPrecisionConfig = Field(default_factory=MixedPrecisionConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    package: PackageConfig = Field(default_factory=PackageConfig)
    base_dir: str = "."

    @field_validator("recipes")
    @classmethod
    def _known_recipes(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in ALL_RECIPES]
        if bad:
            raise ValueError(f"unknown recipes {bad}; choose from {list(ALL_RECIPES)}")
        if not v:
            raise ValueError("at least one recipe is needed")
        return list(dict.fromkeys(v))

    def path(self, p: str | None) -> Path | None:
        """Resolve a config path against the config file's folder."""
        if p is None:
            return None
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q


def load_config(source: str | Path | dict[str, Any]) -> PipelineConfig:
    """Read and check a pipeline configuration.

    Args:
        source: Path to ``liteship.yaml`` or an already-parsed dict.

    Raises:
        UsageError: The file is missing, not YAML, or has unknown/invalid keys (all listed).
    """
    if isinstance(source, dict):
        raw, base = dict(source), Path(source.get("base_dir", "."))
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(
                f"pipeline config {str(path)!r} does not exist.",
                hint="Create one from examples/digits/liteship.yaml.",
            )
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise UsageError(f"{str(path)!r} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise UsageError(f"{str(path)!r} must hold a mapping of keys (source, model_id, ...).")
        base = path.resolve().parent
    raw.setdefault("base_dir", str(base))
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise UsageError(
            f"invalid pipeline config: {problems}.", hint="See docs/pipeline.md for the keys and their types."
        ) from e


__all__ = ["PipelineConfig", "load_config", "ALL_RECIPES"]
