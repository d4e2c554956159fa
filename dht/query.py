"""The state of one iterative Kademlia query, free of I/O.

The driver (``DHTNode``) asks :meth:`QueryState.next` whom to query, reports each
reply or failure, and stops when :meth:`QueryState.finished` says the ``k`` closest
nodes it knows have all answered. Candidate ids are derived from their addresses
(ids are bound to addresses), so even a node no one has vouched for has a place in
the order; a reply only counts toward the closest set when the responder claimed
that id (an ephemeral node answers but stores nothing).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter

from dht.node_id import node_id
from dht.transport import Address


class _State(Enum):
    NEW = 0
    IN_FLIGHT = 1
    RESPONDED = 2
    FAILED = 3


@dataclass(slots=True)
class Candidate:
    address: Address
    distance: int
    state: _State = _State.NEW
    stalled: bool = False
    """In flight past one timeout: probably dead, so it stops holding up the query."""
    verified: bool = False
    """The responder claimed the id its address hashes to: a persistent node."""
    token: bytes | None = None
    hop: int = 1
    """1 for a node the query started from; k+1 for one first named by a hop-k reply."""


_BY_DISTANCE = attrgetter("distance")


class QueryState:
    def __init__(
        self,
        target: bytes,
        k: int,
        exclude: set[Address],
        max_candidates: int | None = None,
        max_queries: int | None = None,
    ) -> None:
        self.target = target
        self._target = int.from_bytes(target, "big")
        self.k = k
        self._exclude = exclude
        self._max = max_candidates or 8 * k
        self._max_queries = max_queries or 10 * k
        self._new = 0  # unqueried candidates: capped at _max
        self.queried = 0  # requests started: capped at _max_queries
        self._sorted: list[Candidate] = []  # by distance
        self._by_address: dict[Address, Candidate] = {}
        self.responses = 0

    def add(self, address: Address, hop: int = 1) -> None:
        if address in self._by_address or address in self._exclude:
            return
        number = int.from_bytes(node_id(address), "big")
        candidate = Candidate(address, number ^ self._target, hop=hop)
        if self._new >= self._max:
            # Full of unqueried candidates: the newcomer replaces the farthest of them,
            # if it is closer. Queried ones stay (they carry replies and tokens).
            for i in range(len(self._sorted) - 1, -1, -1):
                worst = self._sorted[i]
                if worst.distance <= candidate.distance:
                    return
                if worst.state is _State.NEW:
                    del self._sorted[i]
                    del self._by_address[worst.address]
                    self._new -= 1
                    break
        self._new += 1
        bisect.insort(self._sorted, candidate, key=_BY_DISTANCE)
        self._by_address[address] = candidate

    def _window(self) -> list[Candidate]:
        """The k closest candidates that may still be storage nodes."""
        window = []
        for c in self._sorted:
            if c.state is _State.FAILED or c.stalled:
                continue
            if c.state is _State.RESPONDED and not c.verified:
                continue
            window.append(c)
            if len(window) == self.k:
                break
        return window

    def next(self, count: int) -> list[Address]:
        """Up to ``count`` unqueried addresses among the closest; marks them in flight."""
        count = min(count, self._max_queries - self.queried)
        if count <= 0:
            return []
        chosen = []
        for c in self._window():
            if c.state is _State.NEW:
                c.state = _State.IN_FLIGHT
                self._new -= 1
                chosen.append(c.address)
                if len(chosen) == count:
                    break
        self.queried += len(chosen)
        return chosen

    def responded(
        self, address: Address, verified: bool, token: bytes | None, nodes: list[Address]
    ) -> None:
        c = self._by_address.get(address)
        hop = 1
        if c is not None:
            c.state, c.verified, c.token = _State.RESPONDED, verified, token
            hop = c.hop
        self.responses += 1
        known, exclude = self._by_address, self._exclude
        for a in nodes[: self.k]:
            if a not in known and a not in exclude:  # most are: spare the call
                self.add(a, hop + 1)

    def hop(self, address: Address) -> int:
        """The hop at which the query reached ``address`` (1 if it never did)."""
        c = self._by_address.get(address)
        return 1 if c is None else c.hop

    def failed(self, address: Address) -> None:
        c = self._by_address.get(address)
        if c is not None:
            c.state, c.stalled = _State.FAILED, False

    def stalled(self, address: Address) -> None:
        """No answer within one timeout (retries continue): let the next candidate in."""
        c = self._by_address.get(address)
        if c is not None and c.state is _State.IN_FLIGHT:
            c.stalled = True

    def finished(self) -> bool:
        """Every one of the k closest candidates answered (or none is left, or the
        query used up its budget of requests).

        Stalled requests are not waited for once some persistent node has answered;
        while none has, they are all we have (a lost packet, not a dead network).
        """
        window = self._window()
        if self.queried >= self._max_queries:
            return not any(c.state is _State.IN_FLIGHT for c in window)
        if not all(c.state is _State.RESPONDED for c in window):
            return False
        waiting = any(c.stalled for c in self._sorted)
        return not waiting or any(c.state is _State.RESPONDED and c.verified for c in self._sorted)

    def closest(self, count: int | None = None) -> list[Candidate]:
        """The closest persistent responders, each with the write token it gave us."""
        count = self.k if count is None else count
        done = [c for c in self._sorted if c.state is _State.RESPONDED and c.verified]
        return done[:count]
