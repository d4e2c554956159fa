"""A local DHT for tests and demos: ``async with testnet(size=10) as net``.

Every node is persistent from its first second (``ephemeral=False``): they play the
long-lived nodes of a real network, any of which can bootstrap others. The first one
is the bootstrap node the others (and ``net.bootstrap`` users) join through. Pass
``ephemeral=None`` to :meth:`Testnet.add_node` to test the adaptive join path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from dht.node import DHTNode
from dht.transport import Address, Network

START_CONCURRENCY = 8


@dataclass
class Testnet:
    __test__ = False  # not a pytest test class, despite the name

    nodes: list[DHTNode] = field(default_factory=list)

    @property
    def bootstrap(self) -> list[Address]:
        """The bootstrap list other nodes should use (the first node's address)."""
        return [self.nodes[0].address] if self.nodes else []

    def __len__(self) -> int:
        return len(self.nodes)

    async def add_node(self, **node_kwargs: Any) -> DHTNode:
        """Start one more node bootstrapped from this testnet (closed with the testnet)."""
        first = self.nodes[0]
        kwargs = {
            "host": first.address[0],
            "network": first.network,
            "ephemeral": False,
            **node_kwargs,
        }
        node = DHTNode(bootstrap=self.bootstrap, **kwargs)
        self.nodes.append(node)
        await node.start()
        await node.ready()
        return node

    async def close(self) -> None:
        await asyncio.gather(*(n.close() for n in reversed(self.nodes)), return_exceptions=True)


@asynccontextmanager
async def testnet(
    size: int = 10, host: str = "127.0.0.1", network: Network | None = None, **node_kwargs: Any
) -> AsyncIterator[Testnet]:
    """``size`` persistent DHT nodes on ``host``; the first is the bootstrap node."""
    net = Testnet()
    try:
        if size > 0:
            first = DHTNode(**{**node_kwargs, "host": host, "network": network, "ephemeral": False})
            net.nodes.append(first)
            await first.start()
            pending = list(range(1, size))
            while pending:
                batch, pending = pending[:START_CONCURRENCY], pending[START_CONCURRENCY:]
                await asyncio.gather(*(net.add_node(**node_kwargs) for _ in batch))
        yield net
    finally:
        await net.close()


testnet.__test__ = False  # type: ignore[attr-defined]  # not a pytest test either
