"""Hop counts of our lookups, measured from outside the DHT.

``DHTNode.lookup`` does not report hops, so the benchmark watches the query the
way bench/reference/dht.js watches dht-rpc's: nodes a query starts from (routing
table, bootstrap) are hop 1, a node first learned from a hop-k reply is hop k+1,
and a lookup takes as many hops as the first reply that carried the record.
This leans on two private names (``dht.node.QueryState``, ``DHTNode._request``);
if they change, hops are simply not reported.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from dht import node as dht_node
from dht import records as rec
from dht.messages import Command
from dht.query import QueryState
from dht.transport import Address
from storage.errors import PeerswarmError


class _Tracked(QueryState):
    """A QueryState that remembers at which hop it learned each address."""

    def __init__(self, target: bytes, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.depth: dict[Address, int] = {}
        counter = HopCounter.active
        if counter is not None and counter.topic == target:
            counter.state = self

    def add(self, address: Address) -> None:
        self.depth.setdefault(address, 1)
        super().add(address)

    def responded(
        self, address: Address, verified: bool, token: bytes | None, nodes: list[Address]
    ) -> None:
        hop = self.depth.get(address, 1) + 1
        for a in nodes:
            self.depth.setdefault(a, hop)
        super().responded(address, verified, token, nodes)


class HopCounter:
    """Counts the hops of one lookup at a time made by one node."""

    active: ClassVar[HopCounter | None] = None

    def __init__(self) -> None:
        self.topic: bytes | None = None
        self.public_key: bytes | None = None
        self.state: _Tracked | None = None
        self.found: Address | None = None

    def install(self, node: Any) -> bool:
        """Watch ``node``'s lookups; False when the DHT's internals no longer fit."""
        request = getattr(node, "_request", None)
        if request is None or getattr(dht_node, "QueryState", None) not in (QueryState, _Tracked):
            return False
        setattr(dht_node, "QueryState", _Tracked)  # noqa: B010 (a private name, see docstring)
        HopCounter.active = self

        async def watched(addr: Address, command: int, **kwargs: Any) -> Any:
            resp = await request(addr, command, **kwargs)
            if (
                command == Command.LOOKUP
                and self.found is None
                and kwargs.get("target") == self.topic
            ):
                with contextlib.suppress(PeerswarmError, TypeError, ValueError):
                    if resp.value and any(
                        r.public_key == self.public_key
                        for r in rec.decode_lookup_reply(resp.value, 64)
                    ):
                        self.found = addr
            return resp

        node._request = watched
        return True

    def start(self, topic: bytes, public_key: bytes) -> None:
        """Begin watching the lookup of ``topic`` for ``public_key``'s record."""
        self.topic, self.public_key, self.state, self.found = topic, public_key, None, None

    def hops(self) -> int | None:
        """Hops of the last lookup: 0 when the record was already local, None if unknown."""
        if self.found is None:
            return 0 if self.state is not None else None
        return None if self.state is None else self.state.depth.get(self.found)
