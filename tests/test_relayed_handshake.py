"""The client's relayed handshake against a scripted DHT: order, hedging, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from helpers import until

from dht.errors import RequestTimeoutError
from dht.transport import Address
from storage.errors import ClosedError, PeerswarmError
from swarm import handshake, relayed_handshake
from swarm.errors import HandshakeError
from swarm.handshake import ConnectReply, ReplyStatus
from swarm.relayed_handshake import ForwardCallback, RelayedHandshake, relay_order

A, B, C = ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)
KEY = bytes(32)
OK = handshake.encode_reply(ConnectReply(ReplyStatus.OK, ((A[0], 9),)))


class ScriptedDHT:
    """Records each forward; the test answers them through :attr:`calls`."""

    def __init__(self, tokens: frozenset[Address] = frozenset(), refuse: bool = False) -> None:
        self.tokens = tokens
        self.refuse = refuse
        self.calls: list[tuple[Address, ForwardCallback]] = []
        self.cancelled: list[Address] = []

    def has_token(self, addr: Address) -> bool:
        return addr in self.tokens

    def forward_call(
        self, via: Address, target_public_key: bytes, payload: bytes, callback: ForwardCallback
    ) -> Callable[[], None]:
        if self.refuse:
            raise ClosedError("node closed")
        self.calls.append((via, callback))
        return lambda: self.cancelled.append(via)

    @property
    def asked(self) -> list[Address]:
        return [relay for relay, _ in self.calls]


def test_relay_order_puts_the_holder_then_token_holders_first() -> None:
    assert relay_order([A, B, C, B], lambda a: a == C, None) == [C, A, B]
    assert relay_order([A, B, C], lambda a: a == C, B) == [B, C, A]
    assert relay_order([], lambda a: True, A) == [A]


async def test_first_relay_is_asked_at_once_and_its_answer_wins() -> None:
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A, B])
    assert dht.asked == [A]  # sent before the constructor returned
    dht.calls[0][1](OK, None)
    reply = await ask.result
    assert reply.status == ReplyStatus.OK
    ask.stop()
    assert dht.cancelled == [A]
    assert dht.asked == [A]  # the hedge was called off


async def test_a_failed_relay_hands_over_to_the_next_at_once() -> None:
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A, B])
    dht.calls[0][1](None, PeerswarmError("unknown target"))
    assert dht.asked == [A, B]
    dht.calls[1][1](OK, None)
    assert (await ask.result).status == ReplyStatus.OK


async def test_a_silent_relay_is_hedged_after_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relayed_handshake, "HEDGE", 0.01)
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A, B])
    assert dht.asked == [A]
    await until(lambda: dht.asked == [A, B])
    dht.calls[0][1](OK, None)  # the slow first one still counts
    assert (await ask.result).status == ReplyStatus.OK
    dht.calls[1][1](None, RequestTimeoutError("late"))  # ignored once decided
    ask.stop()


async def test_every_relay_failing_is_a_handshake_error_with_the_last_cause() -> None:
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A, B])
    dht.calls[0][1](None, PeerswarmError("first"))
    timeout = RequestTimeoutError("no answer")
    dht.calls[1][1](None, timeout)
    with pytest.raises(HandshakeError, match="no relay could reach the peer") as failed:
        await ask.result
    assert failed.value.__cause__ is timeout


async def test_a_garbled_reply_counts_as_that_relay_failing() -> None:
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A])
    dht.calls[0][1](b"\xff not a reply", None)
    with pytest.raises(HandshakeError):
        await ask.result


async def test_no_relay_or_a_closed_node_fails_without_raising_here() -> None:
    empty = RelayedHandshake(ScriptedDHT(), KEY, b"request", [])
    with pytest.raises(HandshakeError, match="names no relay"):
        await empty.result
    closed = RelayedHandshake(ScriptedDHT(refuse=True), KEY, b"request", [A])
    with pytest.raises(HandshakeError) as failed:
        await closed.result
    assert isinstance(failed.value.__cause__, ClosedError)


async def test_stop_withdraws_what_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relayed_handshake, "HEDGE", 0.01)
    dht = ScriptedDHT()
    ask = RelayedHandshake(dht, KEY, b"request", [A, B])
    ask.stop()
    assert dht.cancelled == [A] and ask.result.cancelled()
    await asyncio.sleep(0.05)
    assert dht.asked == [A]  # no hedge after stop
