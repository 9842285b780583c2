"""PaddleClas's published ImageNet-1k results per architecture, the yardstick a model card compares against.

The table (`paddleclas_imagenet1k_zoo.csv`, shipped as package data) is PaddleClas's model list: one row per
published weight file (`in1k`, `ssld`, `22kto1k`, `fix`), keyed by the architecture that produced it.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

TABLE = "paddleclas_imagenet1k_zoo.csv"


@dataclass(frozen=True)
class PublishedResult:
    """One published weight file: `model` is PaddleClas's name for it (`MobileNetV3_large_x1_0_ssld`), `arch` the
    architecture, `weights` its tag; `top1`/`top5` are fractions on ImageNet-1k val at `input_size`."""

    model: str
    arch: str
    weights: str
    top1: float
    top5: float | None
    input_size: int


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, tuple[PublishedResult, ...]]:
    text = resources.files("ppipe.report").joinpath(TABLE).read_text(encoding="utf-8")
    by_arch: dict[str, list[PublishedResult]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        by_arch.setdefault(row["arch"], []).append(PublishedResult(
            model=row["model"], arch=row["arch"], weights=row["weights"], top1=float(row["top1"]),
            top5=float(row["top5"]) if row["top5"] else None, input_size=int(row["input_size"])))
    return {arch: tuple(rows) for arch, rows in by_arch.items()}


def published_results(arch: str) -> list[PublishedResult]:
    """Every published result of architecture `arch`, `in1k` first; empty when PaddleClas publishes none."""
    return sorted(_table().get(arch, ()), key=lambda r: (r.weights != "in1k", r.weights))
