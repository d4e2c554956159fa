"""What a figure means: its unit, which way is better, and the target an issue sets for it."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from dataclasses import dataclass


class Direction(enum.Enum):
    """Whether a bigger number is better (throughput) or worse (latency, memory)."""

    HIGHER = "higher is better"
    LOWER = "lower is better"


@dataclass(frozen=True)
class Metric:
    """One figure both sides report under the same key."""

    key: str
    label: str
    unit: str
    direction: Direction


@dataclass(frozen=True)
class Target:
    """A goal from an issue.

    Relative (``min_advantage``): we must be at least that many times ahead of the
    primary reference. Absolute (``op`` + ``bound``): our own value must satisfy it.
    """

    key: str
    text: str
    min_advantage: float | None = None
    op: str | None = None
    bound: float | None = None

    def met(self, ours: float | None, ahead: float | None) -> bool | None:
        """True/False when it can be judged, None when a side is missing."""
        if self.min_advantage is not None:
            return None if ahead is None else ahead >= self.min_advantage
        if ours is None or self.op is None or self.bound is None:
            return None
        return _OPS[self.op](ours, self.bound)


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def higher(key: str, label: str, unit: str) -> Metric:
    """A throughput-like figure."""
    return Metric(key, label, unit, Direction.HIGHER)


def lower(key: str, label: str, unit: str) -> Metric:
    """A latency- or cost-like figure."""
    return Metric(key, label, unit, Direction.LOWER)
