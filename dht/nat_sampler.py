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
        self._uniform: Address | None = None
        """The address every report says, if they all agree (``None`` if not or none)."""

    def add(self, reporter: Address, seen: Address) -> bool:
        """Record a report; ``True`` when it is news (a new reporter or a new address).

        Not news either when at least two reports all said ``seen`` before and still
        do: the public address and NAT class cannot have changed (every reply carries
        a report, so this spares recomputing them per reply on a stable network).
        """
        values = self._seen
        uniform = self._uniform == seen and len(values) >= 2
        old = values.pop(reporter, None)
        values[reporter] = seen
        while len(values) > self._size:
            values.popitem(last=False)
        if self._uniform != seen:  # (when it was ``seen``, it still is)
            self._uniform = seen if all(v == seen for v in values.values()) else None
        return old != seen and not (uniform and len(values) >= 2)

    def clear(self) -> None:
        self._seen.clear()
        self._uniform = None

    def __len__(self) -> int:
        return len(self._seen)

    def public_address(self, local: Address) -> Address | None:
        """The outside address most reporters agree on (ties: the most recent)."""
        if self._uniform is not None:
            return self._uniform  # every query asks; on a stable network all agree
        reports = public_reports(self._seen.values(), local)
        if not reports:
            return None
        counts = Counter(reports)
        best = max(counts.values())
        return next(seen for seen in reversed(reports) if counts[seen] == best)

    def nat_type(self, local: Address, reachable: bool | None) -> NatType:
        return classify(self._seen.values(), local, reachable)
