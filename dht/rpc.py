"""Request/response over datagrams: transaction ids, retries with backoff, a cap in flight.

A request is retransmitted (same tid) when no reply came within its timeout, each
wait longer than the last, so a lost packet costs time, not the query. The first
wait follows the round trips measured so far (``dht.rtt``) unless the caller sets
one. A reply only resolves a request when it comes from the address the request
went to. A PENDING reply (the node is alive and still working on it) resolves
nothing: it gives back the retry that drew it, so a slow peer is waited for while a
dead one is given up after the usual retries.

The core API is callback based (:meth:`RPC.send`): a query keeps many requests in
flight, and a Task, a coroutine and a Future per request cost more CPU than the
whole codec. :meth:`RPC.request` wraps it for code that simply awaits one reply.
One loop timer, armed for the earliest deadline, serves every request in flight
rather than a timer handle each.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from dht.errors import RequestTimeoutError
from dht.messages import MAX_TID, ErrorCode, Request, Response, encode
from dht.rtt import RttEstimator
from dht.transport import Address
from storage.errors import ClosedError

log = logging.getLogger(__name__)

BACKOFF = 1.5
MAX_PENDING = 6
"""PENDING replies a request takes (each gives back the retry that drew it): enough
for a peer whose app thinks for seconds, and no more for one that only stalls."""
TIMER_SLACK = 0.001
"""A request this close to its deadline when the timer fires counts as expired
(the loop may run a timer a hair early); one retransmission early does no harm."""

ReplyCallback = Callable[[Response | None, BaseException | None], None]
"""Called once per request: ``(response, None)`` or ``(None, error)``."""


H = TypeVar("H")


async def wait_reply(start: Callable[[ReplyCallback], H], cancel: Callable[[H], None]) -> Response:
    """Await a callback-style request: ``start(callback)`` sends it and returns its
    handle, which is cancelled however the wait ends (a no-op once it answered)."""
    future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def done(response: Response | None, error: BaseException | None) -> None:
        if future.done():
            return
        if response is None:
            future.set_exception(error or ClosedError("the DHT node is closed"))
        else:
            future.set_result(response)

    handle = start(done)
    try:
        return await future
    finally:
        cancel(handle)


class Pending:
    """One request in flight (or queued for a slot); the handle :meth:`RPC.cancel` takes."""

    __slots__ = (
        "adaptive",
        "address",
        "busy",
        "callback",
        "command",
        "data",
        "deadline",
        "id",
        "resent",
        "retries",
        "sent_at",
        "target",
        "tid",
        "token",
        "value",
        "wait",
    )

    def __init__(
        self,
        address: Address,
        command: int,
        id: bytes | None,
        token: bytes | None,
        target: bytes | None,
        value: bytes | None,
        retries: int,
        wait: float | None,
        callback: ReplyCallback,
    ) -> None:
        self.address = address
        self.command = command
        self.id = id
        self.token = token
        self.target = target
        self.value = value
        self.retries = retries
        self.adaptive = wait is None
        """Waits as the round trips measured so far say (and measures its own)."""
        self.wait = 0.0 if wait is None else wait
        self.callback: ReplyCallback | None = callback
        self.tid = -1
        self.data = b""
        self.deadline = 0.0
        self.sent_at = 0.0
        self.resent = False
        self.busy = 0
        """PENDING replies taken so far."""


class RPC:
    def __init__(
        self,
        send: Callable[[bytes, Address], None],
        *,
        timeout: float = 1.0,
        retries: int = 2,
        max_inflight: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self._send = send
        self.rtt = RttEstimator(timeout)
        """Waits for replies: ``timeout`` before any was measured, never longer after."""
        self.retries = retries
        self.max_inflight = max_inflight
        self._pending: dict[int, Pending] = {}
        self._queued: deque[Pending] = deque()
        self._next_tid = (rng or random.Random()).randrange(MAX_TID + 1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.sent = 0
        self.retransmitted = 0

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def send(
        self,
        address: Address,
        command: int,
        callback: ReplyCallback,
        *,
        id: bytes | None = None,
        token: bytes | None = None,
        target: bytes | None = None,
        value: bytes | None = None,
        reply_timeout: float | None = None,
        retries: int | None = None,
    ) -> Pending:
        """Start a request (or queue it while ``max_inflight`` are out). It waits
        ``reply_timeout`` for a reply before each retransmission (times the backoff),
        or by default what :attr:`rtt` estimates for ``address``.

        ``callback`` runs exactly once, never from inside this call, unless the
        request is cancelled first. Raises :class:`ClosedError` when closed.
        """
        if self._closed:
            raise ClosedError("the DHT node is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        pending = Pending(
            address,
            command,
            id,
            token,
            target,
            value,
            self.retries if retries is None else retries,
            reply_timeout,
            callback,
        )
        if len(self._pending) >= self.max_inflight:
            self._queued.append(pending)
        else:
            self._start(pending)
        return pending

    async def request(
        self,
        address: Address,
        command: int,
        *,
        id: bytes | None = None,
        token: bytes | None = None,
        target: bytes | None = None,
        value: bytes | None = None,
        reply_timeout: float | None = None,
        retries: int | None = None,
    ) -> Response:
        """Send a request and wait for its reply; :class:`RequestTimeoutError` after retries."""
        return await wait_reply(
            lambda done: self.send(
                address,
                command,
                done,
                id=id,
                token=token,
                target=target,
                value=value,
                reply_timeout=reply_timeout,
                retries=retries,
            ),
            self.cancel,
        )

    def cancel(self, pending: Pending) -> None:
        """Forget a request: its callback will not run. A no-op once it has run."""
        if pending.callback is None:
            return
        pending.callback = None
        if self._pending.get(pending.tid) is pending:
            del self._pending[pending.tid]
            self._start_queued()

    def _tid(self) -> int:
        while True:
            tid = self._next_tid
            self._next_tid = (tid + 1) & MAX_TID
            if tid not in self._pending:
                return tid

    def _start(self, pending: Pending) -> None:
        tid = pending.tid = self._tid()
        pending.data = encode(
            Request(tid, pending.command, pending.id, pending.token, pending.target, pending.value)
        )
        self._pending[tid] = pending
        if pending.adaptive:
            pending.wait = self.rtt.timeout(pending.address)
        self._transmit(pending)

    def _start_queued(self) -> None:
        while self._queued and len(self._pending) < self.max_inflight:
            pending = self._queued.popleft()
            if pending.callback is not None:  # not cancelled while it waited
                self._start(pending)

    def _transmit(self, pending: Pending) -> None:
        self.sent += 1
        self._send(pending.data, pending.address)
        assert self._loop is not None
        now = self._loop.time()
        if not pending.resent:
            pending.sent_at = now
        pending.deadline = now + pending.wait
        if self._timer is None or pending.deadline < self._timer_at:
            self._arm(pending.deadline)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        assert self._loop is not None
        now = self._loop.time() + TIMER_SLACK
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._expired(pending)
        if self._pending:
            earliest = min(p.deadline for p in self._pending.values())
            if self._timer is None or earliest < self._timer_at:
                self._arm(earliest)

    def _expired(self, pending: Pending) -> None:
        if self._pending.get(pending.tid) is not pending:
            return  # a callback that ran meanwhile cancelled it
        if pending.retries <= 0:
            host, port = pending.address
            self._finish(pending, None, RequestTimeoutError(f"no reply from {host}:{port}"))
            return
        pending.retries -= 1
        pending.resent = True
        pending.wait *= BACKOFF
        self.retransmitted += 1
        self._transmit(pending)

    def _finish(
        self, pending: Pending, response: Response | None, error: BaseException | None
    ) -> None:
        del self._pending[pending.tid]
        callback, pending.callback = pending.callback, None
        self._start_queued()
        if callback is not None:
            callback(response, error)

    def on_response(self, response: Response, address: Address) -> bool:
        """Resolve the matching request; ``False`` for a stray or spoofed reply."""
        pending = self._pending.get(response.tid)
        if pending is None or pending.address != address:
            return False
        if response.error == ErrorCode.PENDING:
            if pending.busy < MAX_PENDING:  # alive: the retransmission that asked is free
                pending.busy += 1
                pending.retries += 1
            return True
        if pending.adaptive and self._loop is not None:
            self.rtt.sample(address, self._loop.time() - pending.sent_at, pending.resent)
        self._finish(pending, response, None)
        return True

    def close(self) -> None:
        """Fail every request in flight or queued with :class:`ClosedError`."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting = list(self._pending.values()) + list(self._queued)
        self._pending.clear()
        self._queued.clear()
        for pending in waiting:
            callback, pending.callback = pending.callback, None
            if callback is not None:
                try:
                    callback(None, ClosedError("the DHT node is closed"))
                except Exception:
                    log.exception("a request's callback failed on close")
