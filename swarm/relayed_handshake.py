"""The client's half of a handshake through DHT relays: ask one, hedge with the next.

A peer's record names the DHT nodes that hold its announcement; any of them forwards
our :class:`~swarm.handshake.ConnectRequest` to it. The first relay is asked at once
(in the caller's turn of the event loop: nothing waits for a task to start), the
next one as soon as one fails or when none answered within the hedge delay, and the
first answer wins. Everything is driven by the replies' callbacks: a task per relay,
and asyncio.wait over them, cost three turns of the event loop between a reply and us.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from dht.transport import Address
from storage.errors import PeerswarmError
from swarm import handshake
from swarm.errors import HandshakeError
from swarm.handshake import ConnectReply

HEDGE = 0.25
"""Seconds to wait on the relays asked so far before asking the next one as well."""

ForwardCallback = Callable[[bytes | None, PeerswarmError | None], None]


class Forwarder(Protocol):
    """What the handshake needs of a DHT node (:class:`dht.node.DHTNode` is one)."""

    def has_token(self, addr: Address) -> bool: ...

    def forward_call(
        self, via: Address, target_public_key: bytes, payload: bytes, callback: ForwardCallback
    ) -> Callable[[], None]: ...


def relay_order(
    relays: Iterable[Address], has_token: Callable[[Address], bool], holder: Address | None
) -> list[Address]:
    """``holder`` (a node that just gave us the record: it holds the announcement and
    we its token) first, then the relays we hold a token of (no extra round trip for
    one), then the rest."""
    ordered = sorted(dict.fromkeys(relays), key=lambda a: not has_token(a))
    if holder is not None:
        ordered = [holder, *(a for a in ordered if a != holder)]
    return ordered


class RelayedHandshake:
    """One handshake in flight; :attr:`result` gets the peer's reply or a
    :class:`HandshakeError` (its cause: the last relay's error). Call :meth:`stop`
    when done with it: it withdraws what is still in flight."""

    def __init__(
        self,
        dht: Forwarder,
        target: bytes,
        request: bytes,
        relays: Sequence[Address],
    ) -> None:
        self._dht = dht
        self._target = target
        self._request = request
        self._relays = list(relays)
        self._loop = asyncio.get_running_loop()
        self.result: asyncio.Future[ConnectReply] = self._loop.create_future()
        self._cancels: list[Callable[[], None]] = []
        self._asking = 0
        self._last: PeerswarmError | None = None
        self._hedge: asyncio.TimerHandle | None = None
        if not self._relays:
            self.result.set_exception(HandshakeError("the peer's record names no relay"))
        else:
            self._ask_next()

    def stop(self) -> None:
        if self._hedge is not None:
            self._hedge.cancel()
            self._hedge = None
        cancels, self._cancels = self._cancels, []
        for cancel in cancels:
            cancel()
        if not self.result.done():
            self.result.cancel()

    def _ask_next(self) -> None:
        if self._hedge is not None:
            self._hedge.cancel()
            self._hedge = None
        if self.result.done():
            return
        self._asking += 1
        relay = self._relays.pop(0)
        try:
            cancel = self._dht.forward_call(relay, self._target, self._request, self._answered)
        except PeerswarmError as e:
            self._answered(None, e)
            return
        self._cancels.append(cancel)
        if self._relays:
            self._hedge = self._loop.call_later(HEDGE, self._ask_next)

    def _answered(self, data: bytes | None, error: PeerswarmError | None) -> None:
        self._asking -= 1
        if self.result.done():
            return
        if data is not None:
            try:
                self.result.set_result(handshake.decode_reply(data))
                return
            except PeerswarmError as e:
                error = e
        self._last = error
        if self._relays:
            self._ask_next()
        elif self._asking == 0:
            failure = HandshakeError(f"no relay could reach the peer: {self._last}")
            failure.__cause__ = self._last
            self.result.set_exception(failure)
