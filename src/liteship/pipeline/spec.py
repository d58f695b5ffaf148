"""What one variant is made of: its recipe, model I/O type, range setting, each accuracy fix and the ops
kept in float — a typed :class:`VariantSpec` instead of a tuple of fix names.

Adding a quantization fix to the pipeline is this file: its name in ``Fix``, a field of
:class:`VariantSpec`, its short variant-name suffix in ``SHORT`` (``int8+eq``); the fix itself lives in
``liteship.quantize`` and which sources take it in ``convert/frontends.py: FRONTENDS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from liteship.convert.recipes import RECIPES

Fix = Literal["range_mse", "range_percentile", "equalize", "absorb_high_bias", "bias_correction", "adaround"]
RangeSetting = Literal["minmax", "percentile", "mse"]
# the accuracy repair's default order: range setting first (cheap, any TF source), then the Keras fixes
FIXES: tuple[Fix, ...] = ("range_percentile", "equalize", "bias_correction", "adaround")
RANGE_FIXES: dict[str, RangeSetting] = {"range_mse": "mse", "range_percentile": "percentile"}
# the fixes that rewrite weights: a variant with one converts the source itself, not its SavedModel export
KERAS_FIXES = ("equalize", "absorb_high_bias", "bias_correction", "adaround")
# not configurable: the repair adds it first when the model's integer inputs alone fail the gates and
# no io_type was asked for (pipeline/accuracy_repair.py, InputCeiling)
FLOAT_IO = "float_io"
# the recipes that calibrate (and so take io_type, range setting and the fixes): int8, int8-fallback, int16x8
INTEGER_RECIPES = tuple(r.name for r in RECIPES.values() if r.needs_calibration)
# a variant's name is its base recipe and these suffixes in the order the repair applied them
SHORT = {
    FLOAT_IO: "fio",
    "equalize": "eq",
    "absorb_high_bias": "hb",
    "bias_correction": "bc",
    "adaround": "ar",
    "range_mse": "mse",
    "range_percentile": "pct",
}
_WEIGHT_FIXES = ("equalize", "absorb_high_bias", "bias_correction", "adaround")


@dataclass(frozen=True)
class VariantSpec:
    """How to make one variant from the source.

    Attributes:
        recipe: The converter recipe (``int8``, ``float16``, …).
        io_type: The model I/O type asked for (``None``: the recipe's default); ``float_io`` overrides it.
        range_setting: How activation ranges are set from the calibration data.
        equalize, absorb_high_bias, bias_correction, adaround: The weight fixes applied before conversion.
        float_io: float32 model I/O, taken by the repair when the integer inputs alone fail the gates.
        keep_float: Ops (types or output tensor names) kept in float.
    """

    recipe: str
    io_type: str | None = None
    range_setting: RangeSetting = "minmax"
    equalize: bool = False
    absorb_high_bias: bool = False
    bias_correction: bool = False
    adaround: bool = False
    float_io: bool = False
    keep_float: tuple[str, ...] = ()

    @classmethod
    def configured(cls, recipe: str, cfg: Any) -> VariantSpec:
        """The spec of one of ``cfg.recipes`` with the config's ``graph_fixes`` and ``io_type``: integer
        recipes only; high-bias absorption and range setting on the int8 ones (int16x8 has no int8
        activation ranges to narrow: either would be a usage error there)."""
        if recipe not in INTEGER_RECIPES:
            return cls(recipe)
        gf = cfg.graph_fixes
        int8 = recipe != "int16x8"
        return cls(
            recipe,
            io_type=cfg.io_type,
            range_setting=gf.range_setting if int8 else "minmax",
            equalize=gf.equalize,
            absorb_high_bias=gf.absorb_high_bias and int8,
            bias_correction=gf.bias_correction,
            adaround=gf.adaround,
        )

    @property
    def integer(self) -> bool:
        return self.recipe in INTEGER_RECIPES

    @property
    def model_io_type(self) -> str | None:
        """The I/O type the variant is converted with: float32 once the repair took ``float_io``, else the
        configured one (``None``: the recipe's default)."""
        return "float32" if self.float_io else self.io_type

    @property
    def rewrites_weights(self) -> bool:
        """A weight fix is on: the variant converts the source itself, not its SavedModel export."""
        return any(getattr(self, f) for f in _WEIGHT_FIXES)

    @property
    def fixes(self) -> tuple[str, ...]:
        """The fix names that are on, in the order they act (``float_io``, range setting, weight fixes)."""
        ranges = tuple(k for k, v in RANGE_FIXES.items() if v == self.range_setting)
        return (
            ((FLOAT_IO,) if self.float_io else ())
            + ranges
            + tuple(f for f in _WEIGHT_FIXES if getattr(self, f))
        )

    def has(self, fix: str) -> bool:
        """Whether ``fix`` (a ``Fix`` name or ``float_io``) is on."""
        return fix in self.fixes

    def with_fix(self, fix: str, on: bool = True) -> VariantSpec:
        """The spec with ``fix`` switched on (or off): a range fix sets (or resets) the range setting."""
        if fix in RANGE_FIXES:
            setting: RangeSetting = RANGE_FIXES[fix] if on else "minmax"
            if not on and self.range_setting != RANGE_FIXES[fix]:
                return self
            return dataclasses.replace(self, range_setting=setting)
        if fix == FLOAT_IO or fix in _WEIGHT_FIXES:
            changes: dict[str, Any] = {fix: on}
            return dataclasses.replace(self, **changes)
        raise ValueError(f"unknown fix {fix!r}; the fixes are {[*SHORT]}")

    def with_fixes(self, fixes: Iterable[str]) -> VariantSpec:
        spec = self
        for f in fixes:
            spec = spec.with_fix(f)
        return spec

    def fix_options(self) -> dict[str, Any]:
        """The converter's keywords for the fixes, the recipe and the I/O type (``convert``, and the search
        backend that calibrates the same way)."""
        return {
            "quantize": self.recipe,
            "io_type": self.model_io_type if self.integer else None,
            "equalize": self.equalize,
            "bias_correction": self.bias_correction,
            "absorb_high_bias": self.absorb_high_bias,
            "adaround": self.adaround,
            "range_setting": self.range_setting,
        }


__all__ = [
    "VariantSpec",
    "Fix",
    "FIXES",
    "FLOAT_IO",
    "INTEGER_RECIPES",
    "KERAS_FIXES",
    "RANGE_FIXES",
    "SHORT",
]
