"""An asyncio event loop whose clock jumps ahead whenever nothing is ready.

The real asyncio drivers (DHT, punching, QUIC) read time only through the loop
(``loop.time()``, ``asyncio.sleep``, ``call_later``, ``wait_for``; see
``docs/architecture.md``, "Time"), so swapping the clock under them lets a simulation
of thousands of nodes run an hour of protocol time in seconds, unchanged.

How: asyncio's ``_run_once`` asks its selector to wait ``timeout`` seconds, the
distance to the next timer. :class:`VirtualTimeLoop` gives it a selector that polls
the real file descriptors without blocking and, when none is ready, advances the
virtual clock by ``timeout`` instead of sleeping. So ready I/O always runs before time
moves, timers fire in the order of their deadlines, and a loop with nothing scheduled
at all blocks for real (waiting for a thread or a socket), as asyncio does.

While work handed to threads (``run_in_executor``, ``asyncio.to_thread``,
``getaddrinfo``) is in flight, the loop cannot know when it will finish, so it waits
for real and virtual time follows the wall clock until the threads are done: a
thread's result arrives before a timeout that has not expired in real time. The same
holds when nothing at all is scheduled and the loop blocks on real I/O.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["DEFAULT_EPOCH", "VirtualTimeLoop", "run_virtual", "virtual_time"]

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_EPOCH = 1_700_000_000.0
"""Wall-clock time (seconds since 1970) at virtual time 0, fixed so runs repeat exactly."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector that never sleeps while the loop only waits for timers."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)  # callbacks are ready: just poll
        if timeout is None or self._loop.threads_in_flight:
            # Only I/O or a thread can wake us now: block for real, and let virtual
            # time follow the wall clock meanwhile.
            started = time.monotonic()
            events = self._inner.select(timeout)
            waited = time.monotonic() - started
            self._loop.advance(waited if timeout is None or events else timeout)
            return events
        events = self._inner.select(0)
        if not events:
            self._loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock that skips idle time.

    ``start`` is the value of ``time()`` when the loop is created; ``epoch`` is the
    wall-clock time that virtual time 0 stands for (see :meth:`wall_time`).
    """

    def __init__(self, *, start: float = 0.0, epoch: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)
        self._epoch = float(epoch)
        self._threads_in_flight = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def wall_time(self) -> float:
        """Seconds since 1970 in virtual time: the ``clock`` for record timestamps."""
        return self._epoch + self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (it never moves back); timers due by then fire next."""
        if seconds > 0:
            self._now += seconds

    @property
    def threads_in_flight(self) -> int:
        """Executor jobs started and not yet collected; while > 0 time follows the wall."""
        return self._threads_in_flight

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._threads_in_flight += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future[Any]) -> None:
        self._threads_in_flight -= 1


def run_virtual(
    main: Coroutine[Any, Any, T],
    *,
    start: float = 0.0,
    epoch: float = DEFAULT_EPOCH,
    debug: bool | None = None,
) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` (like ``asyncio.run``)."""
    with asyncio.Runner(
        debug=debug, loop_factory=lambda: VirtualTimeLoop(start=start, epoch=epoch)
    ) as runner:
        return runner.run(main)


def virtual_time(test: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Decorate an ``async def`` (a test) so that calling it runs it in virtual time.

    The result is a plain function, so pytest-asyncio leaves it alone and fixtures
    still arrive as arguments.
    """

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_virtual(test(*args, **kwargs))

    return run
