"""Round-trip times, per address and overall, for timeouts that fit the path.

A fixed timeout has to suit the slowest path, so a lost packet or a dead node costs
that long on every path: with one second, a lookup over a lossy or churning network
spends most of its time waiting. Each reply's round trip feeds RFC 6298's smoothed
mean and deviation, and a request waits ``srtt + 4 * rttvar`` (between a floor and
the configured timeout) before it is sent again. An address never heard from gets
the overall estimate, or the configured timeout before any reply came at all.

Karn's rule: a reply to a retransmitted request cannot tell which copy it answers,
so it only seeds an address that has no estimate yet, with the time since the first
copy (too long, hence a safe start).
"""

from __future__ import annotations

from dht.transport import Address

MIN_TIMEOUT = 0.25
"""Floor of an adaptive timeout: below it, a busy host's scheduling delay would
count as loss (and a retransmission costs little next to waiting a second)."""
MAX_ADDRESSES = 256
"""Addresses with an estimate of their own; the oldest entry goes first. Mostly the
routing table's contacts, which a node asks again and again."""


class RttEstimator:
    """RFC 6298 estimates per address; :meth:`timeout` is what the RPC waits."""

    __slots__ = ("_by_address", "_overall", "initial", "minimum")

    def __init__(self, initial: float, minimum: float = MIN_TIMEOUT) -> None:
        self.initial = initial
        """The timeout before any reply, and the ceiling of every adaptive one."""
        self.minimum = min(minimum, initial)
        self._by_address: dict[Address, list[float]] = {}
        self._overall: list[float] | None = None

    def sample(self, address: Address, rtt: float, retransmitted: bool = False) -> None:
        """One reply's round trip (from the copy it answered, unless ``retransmitted``)."""
        known = self._by_address.get(address)
        if known is None:
            self._remember(address, [rtt, rtt / 2])
        elif not retransmitted:
            _update(known, rtt)
        if retransmitted:
            return
        if self._overall is None:
            self._overall = [rtt, rtt / 2]
        else:
            _update(self._overall, rtt)

    def timeout(self, address: Address | None = None) -> float:
        """How long to wait for ``address`` (``None``: any node) before sending again."""
        estimate = self._by_address.get(address) if address is not None else None
        if estimate is None:
            estimate = self._overall
            if estimate is None:
                return self.initial
        wait = estimate[0] + 4 * estimate[1]
        if wait < self.minimum:
            return self.minimum
        return wait if wait < self.initial else self.initial

    def __len__(self) -> int:
        return len(self._by_address)

    def _remember(self, address: Address, estimate: list[float]) -> None:
        table = self._by_address
        if len(table) >= MAX_ADDRESSES:
            del table[next(iter(table))]
        table[address] = estimate


def _update(estimate: list[float], rtt: float) -> None:
    """RFC 6298: rttvar <- 3/4 rttvar + 1/4 |srtt - r|, then srtt <- 7/8 srtt + 1/8 r."""
    srtt = estimate[0]
    estimate[1] = 0.75 * estimate[1] + 0.25 * abs(srtt - rtt)
    estimate[0] = 0.875 * srtt + 0.125 * rtt
