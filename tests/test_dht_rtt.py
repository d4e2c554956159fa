"""Adaptive request timeouts: the estimator alone, then the RPC that uses it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.errors import RequestTimeoutError
from dht.messages import Command, Request, Response, decode
from dht.rpc import BACKOFF, RPC
from dht.rtt import MAX_ADDRESSES, MIN_TIMEOUT, RttEstimator
from dht.transport import Address
from nat.virtual_time import virtual_time

A: Address = ("10.0.0.1", 1000)
B: Address = ("10.0.0.2", 2000)


def test_before_any_reply_every_address_waits_the_configured_timeout() -> None:
    rtt = RttEstimator(1.0)
    assert rtt.timeout(A) == rtt.timeout(None) == 1.0


def test_a_first_round_trip_gives_three_times_itself_within_the_bounds() -> None:
    rtt = RttEstimator(1.0)
    rtt.sample(A, 0.2)  # srtt 0.2, rttvar 0.1: 0.2 + 4 * 0.1
    assert rtt.timeout(A) == pytest.approx(0.6)
    rtt.sample(B, 0.01)
    assert rtt.timeout(B) == MIN_TIMEOUT  # a fast path still waits the floor
    slow = RttEstimator(1.0)
    slow.sample(A, 0.5)
    assert slow.timeout(A) == 1.0  # never above the configured timeout


def test_steady_round_trips_settle_just_above_the_path_s_own() -> None:
    rtt = RttEstimator(2.0)
    for _ in range(30):
        rtt.sample(A, 0.4)
    assert 0.4 < rtt.timeout(A) < 0.41
    rtt.sample(A, 1.2)  # a sudden delay widens the margin at once
    assert rtt.timeout(A) > 1.0


def test_an_address_never_heard_from_gets_the_overall_estimate() -> None:
    rtt = RttEstimator(1.0)
    for _ in range(10):
        rtt.sample(A, 0.3)
    assert rtt.timeout(B) == pytest.approx(rtt.timeout(A))
    assert rtt.timeout(B) < 1.0


def test_a_reply_to_a_retransmission_only_seeds_an_unknown_address() -> None:
    """Karn: which copy it answers is unknown, so it must not move a real estimate."""
    rtt = RttEstimator(1.0)
    for _ in range(10):
        rtt.sample(A, 0.3)
    before = rtt.timeout(A)
    rtt.sample(A, 0.9, retransmitted=True)
    assert rtt.timeout(A) == before
    rtt.sample(B, 0.3, retransmitted=True)  # a start for B (too long: on the safe side)
    assert rtt.timeout(B) == pytest.approx(0.9)
    assert rtt.timeout(None) == pytest.approx(before)  # nor does it move the overall one


def test_the_table_of_addresses_is_bounded() -> None:
    rtt = RttEstimator(1.0)
    for i in range(MAX_ADDRESSES + 50):
        rtt.sample((f"10.1.{i // 250}.{i % 250}", 1), 0.3)
    assert len(rtt) == MAX_ADDRESSES


@given(
    st.lists(st.tuples(st.sampled_from([A, B]), st.floats(0, 60), st.booleans()), max_size=50),
    st.floats(0.01, 10),
)
def test_every_timeout_stays_between_the_floor_and_the_configured_one(
    samples: list[tuple[Address, float, bool]], initial: float
) -> None:
    rtt = RttEstimator(initial)
    for address, value, retransmitted in samples:
        rtt.sample(address, value, retransmitted=retransmitted)
        for target in (A, B, None):
            assert min(MIN_TIMEOUT, initial) <= rtt.timeout(target) <= initial


class Wire:
    """Records what the RPC sends, with the loop time."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Request]] = []

    def send(self, data: bytes, addr: Address) -> None:
        msg = decode(data)
        assert isinstance(msg, Request)
        self.sent.append((asyncio.get_running_loop().time(), msg))


async def _answered(rpc: RPC, wire: Wire, after: float) -> None:
    """One request to A, answered ``after`` seconds later."""
    task = asyncio.ensure_future(rpc.request(A, Command.PING))
    await asyncio.sleep(after)
    rpc.on_response(Response(wire.sent[-1][1].tid, A), A)
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
    times = [t - start for t, _ in wire.sent]
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
    assert rpc.on_response(Response(wire.sent[-1][1].tid, A), A)
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
