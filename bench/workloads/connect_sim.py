"""Issue #5 on a virtual network: connect by key, then again, timed in network latency.

On loopback a round trip costs microseconds, so the loopback figures measure CPU.
On a real network what a connect costs is the round trips it waits for. The virtual
network (``nat.simulation``: the real code over virtual links with a fixed one-way
latency, on a virtual clock) counts exactly those. Each client connects by key
first, which is a query toward the key and then the handshake through a node that
holds the announcement. After closing, it connects again; that connect goes
through the relays of the record the first one found, with no query.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.stats import percentile
from bench.workloads.common import Result, progress


def run(p: dict[str, Any]) -> Result:
    """Synchronous: the virtual clock brings its own event loop."""
    from nat.virtual_time import run_virtual  # late: "not available yet" until it lands

    return run_virtual(_run(p))


async def _run(p: dict[str, Any]) -> Result:
    m: dict[str, float] = {}
    for size in sorted(p["virtual_sizes"]):
        first, again = await _network(size, p)
        m[f"sim_connect_key_p50_ms@{size}"] = percentile(first, 50)
        m[f"sim_reconnect_key_p50_ms@{size}"] = percentile(again, 50)
        progress({"metrics": m})
    return {"metrics": m, "info": {"one_way_ms": p["one_way_ms"]}}


async def _network(size: int, p: dict[str, Any]) -> tuple[list[float], list[float]]:
    from nat.simulation import Simulation
    from nat.virtual_time import VirtualTimeLoop
    from storage.keypair import KeyPair
    from swarm import Swarm

    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    first: list[float] = []
    again: list[float] = []
    async with Simulation(latency=p["one_way_ms"] / 1000, jitter=0.0, seed=size) as sim:

        def peer(number: int, **dht_options: Any) -> Swarm:
            """A swarm on a host of its own, its key pair derived from ``number``."""
            seed = number.to_bytes(4, "big") * 8
            dht = {"clock": loop.wall_time, **dht_options}
            host = sim.net.add_host()
            return Swarm(
                sim.bootstrap, KeyPair.from_seed(seed), host=host, network=sim.net, dht_options=dht
            )

        await sim.start(size)
        async with peer(0) as server:
            await server.listen()
            for i in range(1, p["virtual_clients"] + 1):
                async with peer(i, ephemeral=True) as client:
                    await client.dht.ready()
                    for times in (first, again):
                        start = loop.time()
                        conn = await client.connect(server.public_key)
                        times.append((loop.time() - start) * 1000)
                        accepted = server.get_connection(client.public_key)
                        await conn.close()
                        if accepted is not None:  # gone on both ends before the next
                            await accepted.wait_closed()
    return first, again
