"""``ConversionOptions``: the one conversion signature every source frontend takes
(:mod:`liteship.convert.frontends`), built once by :func:`liteship.convert.convert` from its keywords."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from liteship.quantize.graph_repair import GraphFixes
from liteship.types import Preprocessing


@dataclass(frozen=True)
class ConversionOptions:
    """What to make of a source (the keywords of :func:`liteship.convert.convert`, which documents each).

    Attributes:
        quantize: The recipe.
        io_type: The model I/O type (``None``: the recipe's default).
        calibration: Representative data for the calibrated recipes.
        calibration_samples: At most this many calibration samples.
        preprocessing: Applied to the calibration data and stored with the model.
        keep_float_layers: Op types or op output names kept in float.
        fixes: The accuracy fixes and the range setting.
        progress: Draw a progress bar while calibrating.
        allow_select_tf_ops, allow_custom_ops: TensorFlow sources: let ops without a builtin kernel through.
    """

    quantize: str = "none"
    io_type: str | None = None
    calibration: Any = None
    calibration_samples: int = 200
    preprocessing: Preprocessing | dict[str, Any] | None = None
    keep_float_layers: tuple[str, ...] = ()
    fixes: GraphFixes = field(default_factory=GraphFixes)
    progress: bool = True
    allow_select_tf_ops: bool = False
    allow_custom_ops: bool = False

    @property
    def keep(self) -> tuple[str, ...]:
        return tuple(self.keep_float_layers)

    def resolved_preprocessing(self) -> Preprocessing:
        """``preprocessing`` as a :class:`Preprocessing` (identity when not given)."""
        p = self.preprocessing
        return p if isinstance(p, Preprocessing) else Preprocessing.from_dict(p)

    def replace(self, **changes: Any) -> ConversionOptions:
        return dataclasses.replace(self, **changes)


__all__ = ["ConversionOptions", "GraphFixes"]
