"""The asyncio event loop that peerswarm's own programs (the CLI, the bench) run on.

The library works on any asyncio loop and never installs one. Our programs use
asyncio's own unless ``PEERSWARM_LOOP=uvloop`` asks for uvloop (the ``uvloop``
extra), which makes lookups faster (``python -m bench dht``: 2.3 against 3.6 ms on
100 nodes). Dials in ``python -m bench connect`` come out about 1 ms slower on it,
but that is the order it runs callbacks in, not the cost of a dial: uvloop reads
ready sockets before it resumes the tasks their data woke. With both ends in one
process, the server's check of the client's proof then runs before the client's
connect returns (in 30 of 30 dials on uvloop, none of 30 on asyncio's loop).
Between two hosts that order costs nothing. It stays opt-in, as an extra: the
default install needs no compiled event loop.
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

LOOPS = ("asyncio", "uvloop")
ENV = "PEERSWARM_LOOP"


def available() -> list[str]:
    """The loops installed here, the default first."""
    return [name for name in LOOPS if name == "asyncio" or importlib.util.find_spec(name)]


def loop_name(requested: str | None = None) -> str:
    """The loop to use: ``requested``, else ``$PEERSWARM_LOOP``, else asyncio's own."""
    name = requested or os.environ.get(ENV) or LOOPS[0]
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
