"""The asyncio event loop that peerswarm's own programs (the CLI, the bench) run on.

On loopback and LAN a lookup or a dial is bound by CPU, and much of that CPU is the
loop itself: one turn of the standard loop, and each datagram it reads, costs tens of
microseconds in Python. uvloop does the same work in C (libuv), which makes a
10-node lookup about a third faster and steadier. The library works on any asyncio
loop and never installs one; an app picks its own (``uvloop.run(main())`` is the
one-line way). ``PEERSWARM_LOOP=asyncio`` makes our programs use the standard loop,
to compare or to use asyncio's debug mode.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from storage.errors import InvalidArgumentError

T = TypeVar("T")

LOOPS = ("uvloop", "asyncio")
ENV = "PEERSWARM_LOOP"


def available() -> list[str]:
    """The loops installed here, best first (uvloop is a dependency wherever it builds)."""
    return [name for name in LOOPS if name == "asyncio" or importlib.util.find_spec(name)]


def loop_name(requested: str | None = None) -> str:
    """The loop to use: ``requested``, else ``$PEERSWARM_LOOP``, else the best installed."""
    name = requested or os.environ.get(ENV) or available()[0]
    if name not in LOOPS:
        raise InvalidArgumentError(f"unknown event loop {name!r}: one of {', '.join(LOOPS)}")
    return name


def loop_factory(requested: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop_name(requested) == "uvloop":
        import uvloop  # only where it is installed

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def precise_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, unless that is uvloop's: the libuv tick, in whole milliseconds and
    read once per turn, which makes a loopback RTT 0 or 1 ms. Then ``time.monotonic``,
    the same clock at full resolution (timers set from it fire up to a tick late)."""
    if type(loop).__module__.startswith("uvloop"):
        return time.monotonic
    return loop.time


def run(main: Coroutine[Any, Any, T], loop: str | None = None) -> T:
    """``asyncio.run`` on the loop :func:`loop_name` picks."""
    try:
        factory = loop_factory(loop)
    except BaseException:
        main.close()  # never awaited, and nothing to warn about
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
