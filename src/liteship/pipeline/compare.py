"""``liteship pipeline compare``: the current release and a run's variants, side by side on several data
sets — typically the field samples a fleet captured (``liteship fleet samples export``) and the original
validation set (issue 25, item 3).

Every model is validated against the run's own reference (its ``source``) with the run's preprocessing,
so the figures are the ones ``liteship validate`` gives, in one table: accuracy when the data set has
labels, top-1 agreement with the reference always.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.errors import PipelineError, UsageError
from liteship.pipeline.device_select import read_report, variant_files
from liteship.types import Preprocessing, ReportMixin
from liteship.validate import validate


@dataclass(frozen=True)
class Cell(ReportMixin):
    """One model on one data set."""

    accuracy: float | None  # None without labels
    agreement: float | None  # top-1 agreement with the reference
    reference_accuracy: float | None
    samples: int


@dataclass(frozen=True)
class Comparison(ReportMixin):
    """Rows are models (``release`` first, then each variant), columns data sets (by name)."""

    reference: str
    datasets: dict[str, str]  # name → path
    models: dict[str, str]  # name → .tflite
    cells: dict[str, dict[str, Cell]]  # model → data set → figures

    def best_on(self, dataset: str) -> str | None:
        """The model with the highest accuracy (else agreement) on ``dataset``."""
        scored = [
            (c.accuracy if c.accuracy is not None else (c.agreement or 0.0), m)
            for m, row in self.cells.items()
            if (c := row.get(dataset)) is not None
        ]
        return max(scored)[1] if scored else None


def parse_dataset(text: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named after the file)."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text).stem, text
    if not name or not path:
        raise UsageError(f"--data {text!r}: expected NAME=PATH or PATH.", hint="E.g. --data field=field.npz.")
    return name, path


def compare(
    report_path: str | Path, *, release: str | Path | None, datasets: dict[str, str], progress: bool = False
) -> Comparison:
    """Validate the release and every converted variant of ``report_path`` on each data set.

    Raises:
        UsageError: The report, the release or a data set is missing.
        PipelineError: No variant file of the report exists any more.
    """
    report = read_report(report_path)
    if not datasets:
        raise UsageError("give at least one data set (--data NAME=PATH).")
    for name, path in datasets.items():
        if not Path(path).exists():
            raise UsageError(f"data set {name!r}: {path!r} does not exist.")
    models: dict[str, str] = {}
    if release is not None:
        if not Path(release).is_file():
            raise UsageError(
                f"--release {str(release)!r} does not exist.", hint="Give the release's .tflite."
            )
        models["release"] = str(release)
    paths, _ = variant_files(report, report_path)
    recipes = [v["recipe"] for v in report["variants"] if v.get("ok") and v.get("path")]
    for recipe, p in zip(recipes, paths, strict=False):
        models[recipe] = str(p)
    reference = report.get("source")
    if not isinstance(reference, str) or not Path(reference).exists():
        raise PipelineError(f"the run's reference model {reference!r} does not exist any more.")
    pre_dict: Any = (report.get("preprocessing") or {}).get("preprocessing")
    pre = (
        Preprocessing.from_dict(
            {k: v for k, v in pre_dict.items() if k in ("mean", "std", "size", "channel_order", "grayscale")}
        )
        if isinstance(pre_dict, dict)
        else None
    )
    cells: dict[str, dict[str, Cell]] = {}
    for model, path in models.items():
        for name, data in datasets.items():
            r = validate(path, reference, data, preprocessing=pre, progress=progress)
            a = r.agreement[0] if r.agreement else None
            cells.setdefault(model, {})[name] = Cell(
                accuracy=a.candidate_accuracy if a else None,
                agreement=a.top1 if a else None,
                reference_accuracy=a.reference_accuracy if a else None,
                samples=r.samples,
            )
    return Comparison(reference=reference, datasets=dict(datasets), models=models, cells=cells)


__all__ = ["Cell", "Comparison", "compare", "parse_dataset"]
