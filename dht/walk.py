"""The driver of one iterative query: reply callbacks move a :class:`QueryState` on.

Replies are handled where they arrive (in the socket's read callback), not by a
task woken for them: every hop between the socket and the query's reader used to
cost an event-loop iteration, and a lookup on a small network is little else.
Requests still go out in rounds: a burst of replies read together is taken in
whole before the next round is chosen (one ``call_soon``), so later replies of the
burst can steer it; when nothing is left in flight the round is chosen at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from dht.messages import Response
from dht.node_id import node_id
from dht.query import QueryState
from dht.rpc import TIMER_SLACK, ReplyCallback
from dht.transport import Address
from storage.errors import ClosedError, PeerswarmError

H = TypeVar("H")

Start = Callable[[Address, ReplyCallback], H]
"""Send one request to an address; the callback runs once with its outcome."""
OnReply = Callable[[Address, Response, int], None]
"""A reply from a node, with the hop at which the query reached it."""


class Walk(Generic[H]):
    """Keeps ``alpha`` requests in flight, closest first, until ``state`` is finished
    (or ``stop()`` says so); :attr:`done` then holds the state.

    A request with no answer after one timeout is "stalled": it stops counting
    against alpha and holding a place among the closest (its retries go on), so a
    dead node slows a query by one timeout, not by all its retries.

    ``first_alpha`` narrows the first round, for a walk that its first replies most
    likely end (``stop``): later rounds, if any, go back to ``alpha``. ``on_done`` runs
    as soon as :attr:`done` is set, in the same turn of the event loop (a done callback
    of the future would run a turn later).
    """

    def __init__(
        self,
        state: QueryState,
        start: Start[H],
        cancel: Callable[[H], None],
        *,
        alpha: int,
        timeout: float,
        on_reply: OnReply | None = None,
        stop: Callable[[], bool] | None = None,
        first_alpha: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self._start = start
        self._cancel = cancel
        self._alpha = alpha
        self._width = alpha if first_alpha is None else min(first_alpha, alpha)
        self._timeout = timeout
        self._on_reply = on_reply
        self._stop = stop
        self._when_done = on_done
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[QueryState] = self._loop.create_future()
        self._inflight: dict[Address, H] = {}
        self._stalled: set[Address] = set()
        self._round_due = False
        self._last_reply = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> Walk[H]:
        self._round()
        return self

    def cancel(self) -> None:
        """Stop: cancel what is in flight; :attr:`done` is cancelled unless it is set."""
        self._close()
        self.done.cancel()

    # -- internals ----------------------------------------------------------------------

    def _round(self) -> None:
        """Send what alpha allows, or finish."""
        self._round_due = False
        if self.done.done():
            return
        state, inflight = self.state, self._inflight
        try:
            for addr in state.next(self._width - len(inflight) + len(self._stalled)):
                inflight[addr] = self._start(addr, self._callback(addr))
        except Exception as e:  # ClosedError from a node closing under us
            self._fail(e)
            return
        self._width = self._alpha
        if not inflight or state.finished():
            self._finish()
        elif self._timer is None:
            self._arm(self._last_reply + self._timeout)

    def _callback(self, addr: Address) -> ReplyCallback:
        return lambda resp, error: self._on_done(addr, resp, error)

    def _on_done(self, addr: Address, resp: Response | None, error: BaseException | None) -> None:
        if self.done.done() or self._inflight.pop(addr, None) is None:
            return
        self._stalled.discard(addr)
        state = self.state
        if resp is None:
            if isinstance(error, ClosedError):
                self._fail(error)
                return
            state.failed(addr)
        else:
            self._last_reply = self._loop.time()
            verified = resp.id is not None and resp.id == node_id(addr)
            state.responded(addr, verified, resp.token, resp.nodes)
            if self._on_reply is not None:
                try:
                    self._on_reply(addr, resp, state.hop(addr))
                except PeerswarmError:
                    pass  # one node's bad value does not end the query
                except Exception as e:
                    self._fail(e)
                    return
        if self._stop is not None and self._stop():
            self._finish()
        elif not self._inflight:
            self._round()  # no more replies can be on their way: decide now
        elif not self._round_due:
            self._round_due = True
            self._loop.call_soon(self._round)

    def _arm(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.done.done() or not self._inflight:
            return
        due = self._last_reply + self._timeout
        if self._loop.time() + TIMER_SLACK < due:
            self._arm(due)  # a reply came meanwhile: one more timeout from it
            return
        for addr in self._inflight:
            if addr not in self._stalled:
                self._stalled.add(addr)
                self.state.stalled(addr)
        self._last_reply = self._loop.time()  # the next stall is one timeout away
        self._round()

    def _finish(self) -> None:
        self._close()
        if not self.done.done():
            self.done.set_result(self.state)
            self._ended()

    def _fail(self, error: Exception) -> None:
        self._close()
        if not self.done.done():
            self.done.set_exception(error)
            self._ended()

    def _ended(self) -> None:
        if self._when_done is not None:
            self._when_done()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inflight, self._inflight = self._inflight, {}
        for handle in inflight.values():
            self._cancel(handle)
