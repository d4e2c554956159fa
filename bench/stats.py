"""Pure statistics for benchmark results: medians, percentiles, who is ahead."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from bench.metrics import Direction


def median(values: Iterable[float]) -> float:
    """Median; the harness reports medians so one noisy run cannot move a figure."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of nothing")
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100), the definition latency reports usually use."""
    if not values:
        raise ValueError("percentile of nothing")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median_metrics(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-metric median over runs; a metric missing from some runs uses the runs that have it."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run))
    return {name: median(run[name] for run in runs if name in run) for name in names}


def advantage(ours: float, theirs: float, direction: Direction) -> float | None:
    """How many times we are ahead: > 1 means better than the reference, whatever the direction.

    None when the ratio has no meaning (a zero on the side that would divide).
    """
    if direction is Direction.HIGHER:
        return ours / theirs if theirs > 0 else None
    return theirs / ours if ours > 0 else None
