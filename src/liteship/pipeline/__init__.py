"""Orchestration: ``liteship.yaml`` → every recipe → validate → bench → select → metadata → package."""

from __future__ import annotations

from liteship.pipeline.config import ALL_RECIPES, PipelineConfig, load_config
from liteship.pipeline.report import AccuracyRepairReport, PipelineReport, VariantResult
from liteship.pipeline.run import run_pipeline
from liteship.pipeline.select import Candidate, Selection, select_variant
from liteship.report.pareto import pareto_front

__all__ = [
    "run_pipeline",
    "PipelineReport",
    "VariantResult",
    "AccuracyRepairReport",
    "PipelineConfig",
    "load_config",
    "ALL_RECIPES",
    "Candidate",
    "Selection",
    "select_variant",
    "pareto_front",
]
