"""The round-trip estimator behind adaptive request timeouts (the RPC using it:
test_dht_rpc)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.rtt import MAX_ADDRESSES, MIN_TIMEOUT, RttEstimator
from dht.transport import Address

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
