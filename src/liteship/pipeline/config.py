"""``liteship.yaml``: the pipeline's configuration (Pydantic at this boundary only).

Relative paths are resolved against the YAML file's folder, so a config can travel with its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from liteship.bench.core import MAX_MIN_SECONDS, MAX_RUNS, MAX_WARMUP
from liteship.convert.recipes import RECIPE_NAMES
from liteship.errors import PipelineError, UsageError
from liteship.pipeline.gates import GatesConfig
from liteship.pipeline.spec import FIXES, Fix, RangeSetting
from liteship.runtime.compiled import AcceleratorError, parse_accelerator

ALL_RECIPES = ("none", "dynamic", "int8", "int8-fallback", "float16", "int16x8")  # the default list
ACCEPTED_RECIPES = RECIPE_NAMES  # every recipe `liteship convert` takes (weight-int8/-int4 too)


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


class ValidationConfig(DataConfig):
    # issue 23.2: also validate the variants on fleet devices and gate each hardware group on their
    # figures (docs/device-jobs.md). None: the devices of bench.devices; []: not on devices.
    devices: list[str] | None = Field(default=None, max_length=500)


class BenchConfig(_Strict):
    threads: list[int] = Field(default_factory=lambda: [1])
    runs: int = Field(default=50, ge=1, le=MAX_RUNS)
    warmup: int = Field(default=5, ge=0, le=MAX_WARMUP)
    min_seconds: float = Field(default=1.0, ge=0, le=MAX_MIN_SECONDS, allow_inf_nan=False)
    accelerators: list[str | None] = Field(
        default_factory=lambda: list[str | None]([None]),
        description="interpreter (null) and/or CompiledModel accelerators: cpu, gpu, gpu,cpu, auto",
    )

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, v: list[str | None]) -> list[str | None]:
        out: list[str | None] = []
        for a in v or [None]:
            if a is None or a.strip().lower() == "interpreter":
                out.append(None)
                continue
            try:
                out.append(",".join(parse_accelerator(a)))
            except AcceleratorError as e:
                raise ValueError(e.message) from None
        return list(dict.fromkeys(out))

    # issue 12: also benchmark on these fleet devices and select on their median p50 (docs/device-jobs.md)
    devices: list[str] = Field(default_factory=list, max_length=500)
    device_timeout_s: float = Field(default=600.0, ge=0, le=86_400)
    # issue 23.3: also profile the packaged variant(s) on those devices (per-op time) for report.html
    profile: bool = False


class GraphFixesConfig(_Strict):
    """Applied to every integer recipe: equalization, high-bias absorption (int8 recipes only) and bias
    correction rewrite the Keras source before conversion; ``range_setting`` sets the int8 activation
    ranges from the calibration data."""

    equalize: bool = False
    absorb_high_bias: bool = False
    bias_correction: bool = False
    adaround: bool = False  # learned rounding: float .tflite sources (liteship.quantize.adaround)
    range_setting: RangeSetting = "minmax"


class MixedPrecisionConfig(_Strict):
    """Accuracy repair of an integer variant that fails the accuracy gates: graph fixes first (``repair``,
    in order, cumulatively), then the sensitivity search for a minimal set of ops to keep in float."""

    enabled: bool = False
    recipe: Literal["int8", "int8-fallback"] = "int8-fallback"
    repair: list[Fix] = Field(default_factory=lambda: list(FIXES))
    search: bool = True
    max_rounds: int = Field(default=60, ge=1, le=10_000, description="evaluations the search may run")
    max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    max_overhead: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="the repair (fixes and search) may take at most this multiple of the wall time the "
        "pipeline took before it: 1.0 keeps the whole run within 2x the plain one; the best so far is kept",
    )
    samples: int | None = Field(default=None, ge=1, description="validation samples per search round")
    probe: int = Field(default=24, ge=1, le=1000, description="ops measured one by one at most")
    beam: int = Field(default=3, ge=1, le=100, description="ops re-measured before each addition")


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
    validation: ValidationConfig
    bench: BenchConfig = Field(default_factory=BenchConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    objective: Literal["latency", "size"] = "latency"
    graph_fixes: GraphFixesConfig = Field(default_factory=GraphFixesConfig)
    auto_mixed_precision: MixedPrecisionConfig = Field(default_factory=MixedPrecisionConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    package: PackageConfig = Field(default_factory=PackageConfig)
    convert_workers: int | None = Field(
        default=None, ge=1, description="parallel conversions; default min(cores, 4)"
    )
    base_dir: str = "."

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        from liteship.package import parse_semver

        try:
            parse_semver(v)
        except Exception as e:  # PackageError: not MAJOR.MINOR.PATCH
            raise ValueError(f"{v!r} is not a semantic version like 1.2.0") from e
        return v

    @field_validator("recipes")
    @classmethod
    def _known_recipes(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in ACCEPTED_RECIPES]
        if bad:
            raise ValueError(f"unknown recipes {bad}; choose from {list(ACCEPTED_RECIPES)}")
        if not v:
            raise ValueError("at least one recipe is needed")
        return list(dict.fromkeys(v))

    @property
    def validation_devices(self) -> list[str]:
        """The devices the variants are validated on (``validation.devices``, else ``bench.devices``)."""
        devices = self.validation.devices
        return list(self.bench.devices if devices is None else devices)

    @overload
    def path(self, p: str) -> Path: ...

    @overload
    def path(self, p: None) -> None: ...

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
        PipelineError: The file is missing (bad input, exit 1 like every missing path).
        UsageError: The file is not YAML, or has unknown/invalid keys (all listed).
    """
    if isinstance(source, dict):
        raw, base = dict(source), Path(source.get("base_dir", "."))
    else:
        path = Path(source)
        if not path.is_file():
            raise PipelineError(
                f"pipeline config {str(path)!r} does not exist.",
                hint="Create one from examples/digits/liteship.yaml.",
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UsageError(
                f"{str(path)!r} is not a text file; expected a liteship.yaml.",
                hint="Pass the YAML config, not the model (the model goes in its `source` key).",
            ) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise UsageError(
                f"{str(path)!r} is not valid YAML{where}: {getattr(e, 'problem', None) or e}."
            ) from None
        if not isinstance(raw, dict):
            raise UsageError(f"{str(path)!r} must hold a mapping of keys (source, model_id, ...).")
        base = path.resolve().parent
    raw.setdefault("base_dir", str(base))
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as e:
        raise UsageError(
            f"invalid pipeline config: {'; '.join(_problems(e))}.",
            hint="See docs/pipeline.md for the keys and their types.",
        ) from None


def _problems(e: ValidationError) -> list[str]:
    """One readable line per key: unknown keys get a did-you-mean; union alternatives are merged."""
    import difflib

    seen: dict[str, str] = {}
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        # pydantic adds the union member tried ("list", "float") to the location: drop it
        while len(loc) > 1 and loc[-1] in ("list[float]", "float", "list", "int", "str", "tuple[int, int]"):
            loc.pop()
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            model: Any = PipelineConfig
            for part in loc[:-1]:
                field = model.model_fields.get(part)
                model = getattr(field, "annotation", None) if field else None
                if not (isinstance(model, type) and issubclass(model, BaseModel)):
                    model = None
                    break
            known = list(model.model_fields) if model else []
            close = difflib.get_close_matches(loc[-1], known, n=1)
            msg = f"unknown key{f'; did you mean {close[0]!r}?' if close else ''}"
        elif err["type"] == "missing":
            msg = "missing (required)"
        else:
            msg = err["msg"].replace("Value error, ", "")
        seen.setdefault(key, f"{key}: {msg}")
    return list(seen.values())


__all__ = ["PipelineConfig", "GatesConfig", "load_config", "ALL_RECIPES", "ACCEPTED_RECIPES"]
