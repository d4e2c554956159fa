"""Collects the addresses other nodes report seeing us at (bounded, newest wins)."""

from __future__ import annotations

from collections import Counter, OrderedDict

from dht.nat_type import NatType, classify, public_reports
from dht.transport import Address

DEFAULT_SAMPLES = 16


class NatSampler:
    """One report per reporter address, the most recent ``size`` reporters kept."""

    def __init__(self, size: int = DEFAULT_SAMPLES) -> None:
        self._size = size
        self._seen: OrderedDict[Address, Address] = OrderedDict()

    def add(self, reporter: Address, seen: Address) -> bool:
        """Record a report; ``True`` when it is news (a new reporter or a new address)."""
        old = self._seen.pop(reporter, None)
        self._seen[reporter] = seen
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return old != seen

    def clear(self) -> None:
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)

    def public_address(self, local: Address) -> Address | None:
        """The outside address most reporters agree on (ties: the most recent)."""
        reports = public_reports(self._seen.values(), local)
        if not reports:
            return None
        counts = Counter(reports)
        best = max(counts.values())
        return next(seen for seen in reversed(reports) if counts[seen] == best)

    def nat_type(self, local: Address, reachable: bool | None) -> NatType:
        return classify(self._seen.values(), local, reachable)
