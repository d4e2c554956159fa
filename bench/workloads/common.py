"""Helpers shared by our workloads: clocks, warmed-up trials, rates, memory, the event loop."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

Result = dict[str, Any]
MB = 1_000_000  # decimal MB everywhere (throughput and memory), as the JS side reports it


def now() -> float:
    """A monotonic high-resolution clock (seconds)."""
    return time.perf_counter()


async def trials(p: dict[str, Any], trial: Callable[[], Awaitable[T]]) -> list[T]:
    """The results of ``p["trials"]`` trials, run after ``p["warmup"]`` untimed ones.

    The first trials of a kind run cold code (and V8 optimises hot code as it runs):
    left in, they would weigh on whichever network size is measured first.
    """
    for _ in range(p.get("warmup", 0)):
        await trial()
    return [await trial() for _ in range(p["trials"])]


def rate(count: float, seconds: float) -> float:
    """Operations per second; a zero duration cannot happen at our sizes but must not crash."""
    return count / seconds if seconds > 0 else float("inf")


def rss_mb() -> float:
    """Current resident set size of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return float("nan")


def progress(result: Result) -> None:
    """Print the figures so far: if the run is cut short, the harness keeps the last line."""
    print(json.dumps(result), flush=True)


def on_loop(
    main: Callable[[dict[str, Any]], Coroutine[Any, Any, Result]], p: dict[str, Any]
) -> Result:
    """Run an async workload on the loop ``p["loop"]`` names (see ``dht.event_loop``)."""
    from dht import event_loop  # late: the storage workloads never load the DHT

    result = event_loop.run(main(p), p.get("loop"))
    result.setdefault("info", {})["loop"] = event_loop.loop_name(p.get("loop"))
    return result
