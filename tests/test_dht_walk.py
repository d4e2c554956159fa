"""The query driver on virtual time, against scripted replies: rounds, stalls, endings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dht.messages import Response
from dht.node_id import distance, node_id
from dht.query import QueryState
from dht.transport import Address
from dht.walk import OnReply, Walk
from nat.virtual_time import virtual_time
from storage.errors import ClosedError, DecodeError

TIMEOUT = 1.0
Reply = Callable[[Response | None, BaseException | None], None]


def addr(i: int) -> Address:
    return ("10.0.0.1", 1000 + i)


TARGET = addr(10_000)


class Script:
    """Stands in for the RPC layer: records requests, answers when the test says."""

    def __init__(self) -> None:
        self.sent: list[Address] = []
        self.waiting: dict[Address, Reply] = {}
        self.cancelled: list[Address] = []

    def start(self, address: Address, reply: Reply) -> Address:
        self.sent.append(address)
        self.waiting[address] = reply
        return address

    def cancel(self, address: Address) -> None:
        if self.waiting.pop(address, None) is not None:
            self.cancelled.append(address)

    def answer(self, address: Address, nodes: list[Address] | None = None) -> None:
        reply = self.waiting.pop(address)
        reply(Response(1, ("10.9.9.9", 1), node_id(address), None, nodes or []), None)

    def fail(self, address: Address, error: BaseException) -> None:
        self.waiting.pop(address)(None, error)


def walk(
    script: Script,
    candidates: int | list[Address],
    *,
    k: int,
    alpha: int,
    on_reply: OnReply | None = None,
    stop: Callable[[], bool] | None = None,
    first_alpha: int | None = None,
) -> Walk[Address]:
    state = QueryState(node_id(TARGET), k, set())
    for a in range(candidates) if isinstance(candidates, int) else candidates:
        state.add(addr(a) if isinstance(a, int) else a)
    w = Walk(
        state,
        script.start,
        script.cancel,
        alpha=alpha,
        timeout=TIMEOUT,
        on_reply=on_reply,
        stop=stop,
        first_alpha=first_alpha,
    )
    return w.begin()


def by_distance(addresses: list[Address]) -> list[Address]:
    return sorted(addresses, key=lambda a: distance(node_id(a), node_id(TARGET)))


@virtual_time
async def test_requests_go_out_at_once_and_the_walk_ends_when_the_closest_answered() -> None:
    script = Script()
    w = walk(script, 4, k=3, alpha=2)
    order = by_distance([addr(i) for i in range(4)])
    assert script.sent == order[:2]  # sent inside begin(), before any await
    script.answer(order[0])
    script.answer(order[1])  # nothing left in flight: the next round goes now
    assert script.sent == order[:3]
    script.answer(order[2])
    state = await asyncio.wait_for(w.done, 0.01)
    assert [c.address for c in state.closest()] == order[:3]
    assert order[3] not in script.sent


@virtual_time
async def test_a_burst_of_replies_is_taken_whole_before_the_next_round() -> None:
    """The first reply names a near node, the second a nearer one: the nearer goes first,
    as it would not if each reply chose the next request alone."""
    script = Script()
    pool = by_distance([addr(i) for i in range(200)])
    nearest, near, a, b = pool[0], pool[1], pool[-2], pool[-1]
    w = walk(script, [a, b], k=2, alpha=2)
    script.answer(a, [near])
    assert sorted(script.sent) == sorted([a, b])  # the round waits for the burst
    script.answer(b, [nearest])
    assert script.sent[2:] == [nearest, near]  # nothing left in flight: chosen at once
    w.cancel()


@virtual_time
async def test_a_silent_node_costs_one_timeout_then_stops_holding_up_the_walk() -> None:
    script = Script()
    w = walk(script, 3, k=2, alpha=2)
    first, second, third = by_distance([addr(i) for i in range(3)])
    script.answer(first)  # `second` stays silent
    await asyncio.sleep(TIMEOUT * 0.9)
    assert script.sent == [first, second]  # not stalled yet
    await asyncio.sleep(TIMEOUT * 0.2)
    assert script.sent == [first, second, third]  # stalled: its slot goes to the next
    script.answer(third)
    state = await w.done
    assert [c.address for c in state.closest()] == [first, third]
    assert script.cancelled == [second]  # its retries end with the walk


@virtual_time
async def test_replies_keep_the_stall_timer_off() -> None:
    """A request is stalled only once a whole timeout passed without any reply."""
    script = Script()
    w = walk(script, 6, k=6, alpha=2)
    o = by_distance([addr(i) for i in range(6)])
    await asyncio.sleep(TIMEOUT * 0.6)
    script.answer(o[0])  # o[2] goes out
    await asyncio.sleep(TIMEOUT * 0.6)
    script.answer(o[2])  # o[3] goes out; o[1] has waited 1.2 timeouts
    await asyncio.sleep(TIMEOUT * 0.5)
    assert script.sent == o[:4] and o[1] in script.waiting  # a reply came 0.5 ago
    await asyncio.sleep(TIMEOUT * 0.6)
    assert script.sent == o  # a whole timeout without one: o[1] and o[3] stalled
    w.cancel()


@virtual_time
async def test_stop_ends_the_walk_and_cancels_what_is_in_flight() -> None:
    script = Script()
    found: list[Address] = []
    w = walk(
        script, 4, k=4, alpha=3, stop=lambda: bool(found), on_reply=lambda a, r, h: found.append(a)
    )
    first = script.sent[0]
    script.answer(first)
    state = await asyncio.wait_for(w.done, 0.01)
    assert found == [first] and state.responses == 1
    assert sorted(script.cancelled) == sorted(script.sent[1:])


@virtual_time
async def test_a_narrow_first_round_widens_to_alpha_when_it_did_not_end_the_walk() -> None:
    script = Script()
    w = walk(script, 10, k=10, alpha=6, first_alpha=2, stop=lambda: False)
    order = by_distance([addr(i) for i in range(10)])
    assert script.sent == order[:2]
    script.answer(order[0])  # the other one is still out: the round waits for the burst
    await asyncio.sleep(0)
    assert script.sent == order[:7]  # 6 in flight: alpha again
    w.cancel()


@virtual_time
async def test_a_bad_value_is_skipped_but_a_bug_or_a_closed_node_ends_the_walk() -> None:
    script = Script()

    def bad_value(a: Address, r: Response, hop: int) -> None:
        raise DecodeError("junk from one node")

    w = walk(script, 2, k=2, alpha=2, on_reply=bad_value)
    for a in list(script.sent):
        script.answer(a)
    assert (await w.done).responses == 2  # project errors from one reply are skipped

    def bug(a: Address, r: Response, hop: int) -> None:
        raise KeyError("a bug")

    w = walk(script, 2, k=2, alpha=2, on_reply=bug)
    script.answer(script.sent[-1])
    with pytest.raises(KeyError):
        await w.done

    w = walk(script, 2, k=2, alpha=2)
    script.fail(script.sent[-1], ClosedError("closed"))
    with pytest.raises(ClosedError):
        await w.done
    assert not script.waiting  # everything else was cancelled


@virtual_time
async def test_cancel_cancels_requests_and_the_result() -> None:
    script = Script()
    w = walk(script, 3, k=3, alpha=3)
    w.cancel()
    assert sorted(script.cancelled) == sorted(script.sent) and len(script.sent) == 3
    assert w.done.cancelled()
    w.cancel()  # twice is fine
