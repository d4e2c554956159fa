"""A local DHT for tests and demos: ``async with testnet(size=10) as net``.

The first node is a persistent bootstrap node; the others start adaptive and become
persistent once their reachability check succeeds (always, on loopback), so the
testnet exercises the same join path as a real network.
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
        kwargs = {"host": first.address[0], "network": first.network, **node_kwargs}
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
    """``size`` DHT nodes on ``host``; the first is the persistent bootstrap node."""
    net = Testnet()
    try:
        if size > 0:
            first = DHTNode(host=host, ephemeral=False, network=network, **node_kwargs)
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
