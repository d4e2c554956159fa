"""The RPC layer on its own, in virtual time: replies, retries, adaptive timeouts, PENDING,
the in-flight cap, cancel, close."""

from __future__ import annotations

import asyncio

import pytest

from dht.errors import RequestTimeoutError
from dht.messages import Command, ErrorCode, Request, Response, decode
from dht.rpc import BACKOFF, MAX_PENDING, RPC, ReplyCallback
from dht.rtt import MIN_TIMEOUT
from dht.transport import Address
from nat.virtual_time import virtual_time
from storage.errors import ClosedError

A: Address = ("10.0.0.1", 1000)
B: Address = ("10.0.0.2", 2000)


class Wire:
    """Records what the RPC sends, with the loop time."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Request, Address]] = []

    def send(self, data: bytes, addr: Address) -> None:
        msg = decode(data)
        assert isinstance(msg, Request)
        self.sent.append((asyncio.get_running_loop().time(), msg, addr))

    def tids(self) -> list[int]:
        return [req.tid for _, req, _ in self.sent]


def reply_to(req: Request, value: bytes = b"") -> Response:
    return Response(req.tid, A, value=value)


class Results:
    def __init__(self) -> None:
        self.got: dict[str, tuple[Response | None, BaseException | None, float]] = {}

    def callback(self, name: str) -> ReplyCallback:
        def done(resp: Response | None, error: BaseException | None) -> None:
            assert name not in self.got, "a callback ran twice"
            self.got[name] = (resp, error, asyncio.get_running_loop().time())

        return done


@virtual_time
async def test_a_reply_from_the_right_address_resolves_the_request() -> None:
    wire = Wire()
    rpc = RPC(wire.send)
    task = asyncio.ensure_future(rpc.request(A, Command.PING))
    await asyncio.sleep(0)
    ((_, req, to),) = wire.sent
    assert to == A
    assert not rpc.on_response(reply_to(req), B)  # spoofed: another address
    assert not rpc.on_response(Response(req.tid + 1, A), A)  # unknown tid
    assert rpc.on_response(reply_to(req, b"x"), A)
    assert (await task).value == b"x"
    assert not rpc.on_response(reply_to(req), A)  # a duplicate is stray
    assert rpc.inflight == 0


@virtual_time
async def test_retransmits_with_backoff_then_times_out() -> None:
    loop = asyncio.get_running_loop()
    wire = Wire()
    rpc = RPC(wire.send, timeout=1.0, retries=2)
    start = loop.time()
    with pytest.raises(RequestTimeoutError):
        await rpc.request(A, Command.PING)
    times = [t - start for t, _, _ in wire.sent]
    assert times == pytest.approx([0.0, 1.0, 2.5], abs=0.01)
    assert len(set(wire.tids())) == 1  # the same tid each time
    assert loop.time() - start == pytest.approx(1.0 + 1.5 + 2.25, abs=0.01)
    assert rpc.sent == 3 and rpc.retransmitted == 2 and rpc.inflight == 0


@virtual_time
async def test_each_request_expires_at_its_own_deadline() -> None:
    """One timer serves all requests: a later request with a shorter timeout re-arms it."""
    wire = Wire()
    rpc = RPC(wire.send, retries=0)
    results = Results()
    rpc.send(A, Command.PING, results.callback("slow"), reply_timeout=5.0)
    await asyncio.sleep(1.0)
    rpc.send(B, Command.PING, results.callback("fast"), reply_timeout=0.5)
    await asyncio.sleep(10)
    fast, slow = results.got["fast"], results.got["slow"]
    assert isinstance(fast[1], RequestTimeoutError) and isinstance(slow[1], RequestTimeoutError)
    assert fast[2] == pytest.approx(1.5, abs=0.01)
    assert slow[2] == pytest.approx(5.0, abs=0.01)


@virtual_time
async def test_requests_over_the_cap_wait_for_a_slot() -> None:
    wire = Wire()
    rpc = RPC(wire.send, max_inflight=2)
    results = Results()
    for name in "abc":
        rpc.send(A, Command.PING, results.callback(name))
    assert len(wire.sent) == 2 and rpc.inflight == 2  # "c" is queued, not sent
    first = wire.sent[0][1]
    assert rpc.on_response(reply_to(first), A)
    assert "a" in results.got
    assert len(wire.sent) == 3  # the freed slot went to "c" at once
    for _, req, _ in wire.sent[1:]:
        assert rpc.on_response(reply_to(req), A)
    assert set(results.got) == {"a", "b", "c"}
    assert all(error is None for _, error, _ in results.got.values())


@virtual_time
async def test_cancelled_requests_never_call_back_nor_go_out() -> None:
    wire = Wire()
    rpc = RPC(wire.send, max_inflight=1, retries=1)
    results = Results()
    sent = rpc.send(A, Command.PING, results.callback("sent"))
    queued = rpc.send(A, Command.PING, results.callback("queued"))
    rpc.cancel(queued)
    rpc.cancel(sent)
    rpc.cancel(sent)  # idempotent
    await asyncio.sleep(10)
    assert results.got == {}
    assert len(wire.sent) == 1  # no retransmission of the cancelled one, queued never sent
    assert not rpc.on_response(reply_to(wire.sent[0][1]), A)
    assert rpc.inflight == 0


@virtual_time
async def test_close_fails_everything_and_refuses_more() -> None:
    wire = Wire()
    rpc = RPC(wire.send, max_inflight=1)
    results = Results()
    rpc.send(A, Command.PING, results.callback("inflight"))
    rpc.send(A, Command.PING, results.callback("queued"))
    waiting = asyncio.ensure_future(rpc.request(A, Command.PING))
    await asyncio.sleep(0)
    rpc.close()
    assert isinstance(results.got["inflight"][1], ClosedError)
    assert isinstance(results.got["queued"][1], ClosedError)
    with pytest.raises(ClosedError):
        await waiting
    with pytest.raises(ClosedError):
        rpc.send(A, Command.PING, results.callback("late"))
    assert len(wire.sent) == 1


@virtual_time
async def test_a_cancelled_awaiting_caller_frees_its_slot() -> None:
    wire = Wire()
    rpc = RPC(wire.send, max_inflight=1)
    task = asyncio.ensure_future(rpc.request(A, Command.PING))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rpc.inflight == 0
    results = Results()
    rpc.send(B, Command.PING, results.callback("next"))
    assert wire.sent[-1][2] == B  # sent at once: the slot was free


@virtual_time
async def test_a_pending_reply_resolves_nothing_and_gives_back_the_retry_that_drew_it() -> None:
    loop = asyncio.get_running_loop()
    wire = Wire()
    rpc = RPC(wire.send, retries=1)
    results = Results()
    rpc.send(A, Command.FORWARD, results.callback("slow peer"), reply_timeout=1.0)
    await asyncio.sleep(1.0)  # the retransmission went out: "still working on it"
    assert len(wire.sent) == 2
    assert rpc.on_response(Response(wire.sent[-1][1].tid, A, error=ErrorCode.PENDING), A)
    assert results.got == {}
    await asyncio.sleep(1.5)  # its one retry came back: a third copy instead of giving up
    assert len(wire.sent) == 3 and results.got == {}
    assert rpc.on_response(reply_to(wire.sent[-1][1], b"decided"), A)
    resp, error, _ = results.got["slow peer"]
    assert error is None and resp is not None and resp.value == b"decided"
    assert loop.time() == pytest.approx(2.5, abs=0.01)


@virtual_time
async def test_a_node_that_only_ever_says_pending_is_given_up() -> None:
    loop = asyncio.get_running_loop()
    wire = Wire()

    def send(data: bytes, addr: Address) -> None:
        wire.send(data, addr)
        if len(wire.sent) > 1:  # each retransmission: "still working on it"
            pending = Response(wire.sent[-1][1].tid, A, error=ErrorCode.PENDING)
            loop.call_soon(rpc.on_response, pending, A)

    rpc = RPC(send, retries=1)
    with pytest.raises(RequestTimeoutError):
        await rpc.request(A, Command.FORWARD, reply_timeout=0.1)
    assert len(wire.sent) == 1 + 1 + MAX_PENDING  # the first, its retry, one per PENDING


async def _answered(rpc: RPC, wire: Wire, after: float) -> None:
    """One request to A, answered ``after`` seconds later."""
    task = asyncio.ensure_future(rpc.request(A, Command.PING))
    await asyncio.sleep(after)
    assert rpc.on_response(reply_to(wire.sent[-1][1]), A)
    await task


@virtual_time
async def test_once_a_round_trip_is_known_a_lost_request_is_resent_that_much_sooner() -> None:
    loop = asyncio.get_running_loop()
    wire = Wire()
    rpc = RPC(wire.send, timeout=1.0, retries=1)
    await _answered(rpc, wire, 0.02)
    wire.sent.clear()
    start = loop.time()
    with pytest.raises(RequestTimeoutError):
        await rpc.request(A, Command.PING)  # nobody answers now
    times = [t - start for t, _, _ in wire.sent]
    # one timeout of a fixed second would resend at 1.0 and give up at 2.5
    assert times == pytest.approx([0.0, MIN_TIMEOUT], abs=0.001)
    assert loop.time() - start == pytest.approx(MIN_TIMEOUT * (1 + BACKOFF), abs=0.001)


@virtual_time
async def test_a_timeout_the_caller_sets_is_kept_and_its_reply_not_measured() -> None:
    """A FORWARD's reply crosses two hops and the peer's app: one round trip is no measure."""
    loop = asyncio.get_running_loop()
    wire = Wire()
    rpc = RPC(wire.send, timeout=1.0, retries=0)
    await _answered(rpc, wire, 0.02)
    slow = asyncio.ensure_future(rpc.request(A, Command.FORWARD, reply_timeout=2.0))
    await asyncio.sleep(1.5)
    assert rpc.on_response(reply_to(wire.sent[-1][1]), A)
    await slow
    assert rpc.rtt.timeout(A) == MIN_TIMEOUT  # as before: the 1.5 s did not count
    start = loop.time()
    with pytest.raises(RequestTimeoutError):
        await rpc.request(A, Command.FORWARD, reply_timeout=2.0)
    assert loop.time() - start == pytest.approx(2.0, abs=0.001)


@virtual_time
async def test_a_slow_path_is_given_the_time_it_needs() -> None:
    wire = Wire()
    rpc = RPC(wire.send, timeout=2.0, retries=0)  # a request that times out fails
    for _ in range(20):
        await _answered(rpc, wire, 0.6)
    assert len(wire.sent) == 20
    assert 0.6 < rpc.rtt.timeout(A) < 0.7  # shorter than the configured 2 s, never too short
