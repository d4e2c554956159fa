"""Request/response over datagrams: transaction ids, retries with backoff, a cap in flight.

Thin asyncio driver around the codec: a request is retransmitted (same tid) when no
reply came within its timeout, each wait longer than the last, so a lost packet
costs time, not the query. Timers are ``loop.call_later`` handles rather than tasks,
which keeps thousands of simulated nodes cheap. A reply only resolves a request when
it comes from the address the request went to.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from dht.errors import RequestTimeoutError
from dht.messages import MAX_TID, Request, Response, encode
from dht.transport import Address
from storage.errors import ClosedError

BACKOFF = 1.5


class _Pending:
    __slots__ = ("address", "data", "future", "handle", "retries", "wait")

    def __init__(
        self,
        address: Address,
        data: bytes,
        future: asyncio.Future[Response],
        retries: int,
        wait: float,
    ) -> None:
        self.address = address
        self.data = data
        self.future = future
        self.retries = retries
        self.wait = wait
        self.handle: asyncio.TimerHandle | None = None


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
        self.timeout = timeout
        self.retries = retries
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: dict[int, _Pending] = {}
        self._next_tid = (rng or random.Random()).randrange(MAX_TID + 1)
        self._closed = False
        self.sent = 0
        self.retransmitted = 0

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def _tid(self) -> int:
        while True:
            tid = self._next_tid
            self._next_tid = (tid + 1) & MAX_TID
            if tid not in self._pending:
                return tid

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
        async with self._slots:
            if self._closed:
                raise ClosedError("the DHT node is closed")
            loop = asyncio.get_running_loop()
            tid = self._tid()
            data = encode(Request(tid, command, id, token, target, value))
            pending = _Pending(
                address,
                data,
                loop.create_future(),
                self.retries if retries is None else retries,
                self.timeout if reply_timeout is None else reply_timeout,
            )
            self._pending[tid] = pending
            try:
                self._transmit(tid, pending)
                return await pending.future
            finally:
                if pending.handle is not None:
                    pending.handle.cancel()
                self._pending.pop(tid, None)

    def _transmit(self, tid: int, pending: _Pending) -> None:
        self.sent += 1
        self._send(pending.data, pending.address)
        loop = asyncio.get_running_loop()
        pending.handle = loop.call_later(pending.wait, self._expired, tid, pending)

    def _expired(self, tid: int, pending: _Pending) -> None:
        if pending.future.done():
            return
        if pending.retries <= 0:
            pending.future.set_exception(
                RequestTimeoutError(f"no reply from {pending.address[0]}:{pending.address[1]}")
            )
            return
        pending.retries -= 1
        pending.wait *= BACKOFF
        self.retransmitted += 1
        self._transmit(tid, pending)

    def on_response(self, response: Response, address: Address) -> bool:
        """Resolve the matching request; ``False`` for a stray or spoofed reply."""
        pending = self._pending.get(response.tid)
        if pending is None or pending.address != address or pending.future.done():
            return False
        pending.future.set_result(response)
        return True

    def close(self) -> None:
        self._closed = True
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(ClosedError("the DHT node is closed"))
