"""A token bucket: how the node bounds work that strangers can ask of it."""

from __future__ import annotations


class TokenBucket:
    """``rate`` events per second on average, bursts up to ``burst``; time is passed in."""

    __slots__ = ("_burst", "_level", "_rate", "_updated")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._level = burst
        self._updated: float | None = None

    def take(self, now: float) -> bool:
        if self._updated is not None:
            self._level = min(self._burst, self._level + (now - self._updated) * self._rate)
        self._updated = now
        if self._level < 1:
            return False
        self._level -= 1
        return True
