"""Issue #4 on our side: announce then lookup on ``dht.testnet`` loopback networks.

Mirrors bench/reference/dht.js: idle memory per node on the largest network, then
for each size two extra ephemeral nodes (announcer, looker) and ``trials`` topics.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
from typing import Any

from bench.stats import percentile
from bench.workloads.common import Result, now, on_loop, rss_mb, trials


async def _network(size: int, p: dict[str, Any], idle: bool, m: dict[str, float]) -> None:
    # late imports: the worker reports an ImportError as "not available yet"
    from dht import DHTNode
    from dht.testnet import testnet

    gc.collect()
    before = rss_mb()
    async with testnet(size=size) as net:
        await asyncio.sleep(1)
        gc.collect()
        if idle:
            m["idle_node_mb"] = (rss_mb() - before) / size
        check_loopback(net.bootstrap)
        async with (
            # ephemeral, like hyperdht's testnet.createNode(): clients that store nothing
            DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as announcer,
            DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as looker,
        ):
            await announcer.ready()
            await looker.ready()

            results = await trials(p, lambda: trial(announcer, looker))
    times = [ms for ms, _, _ in results]
    firsts = [first for _, first, _ in results if first is not None]
    hops = [hop for _, _, hop in results if hop is not None]
    m[f"lookup_p50_ms@{size}"] = percentile(times, 50)
    m[f"lookup_p95_ms@{size}"] = percentile(times, 95)
    if firsts:
        m[f"first_p50_ms@{size}"] = percentile(firsts, 50)
        m[f"first_p95_ms@{size}"] = percentile(firsts, 95)
    if hops:
        m[f"hops_median@{size}"] = statistics.median(hops)
    m[f"success_pct@{size}"] = 100 * len(firsts) / len(results)


async def trial(announcer: Any, looker: Any) -> tuple[float, float | None, int | None]:
    """Announce a new topic, then look it up from another node: (ms to completion, ms
    to the announcer's record, its hop)."""
    from dht import LookupTrace
    from storage import KeyPair

    topic, key_pair = os.urandom(32), KeyPair.generate()
    await announcer.announce(topic, key_pair)
    trace = LookupTrace()
    start = now()
    first = None
    async for peer in looker.lookup(topic, trace):
        if first is None and peer.public_key == key_pair.public_key:
            first = (now() - start) * 1000
    hop = None if first is None else trace.hops[key_pair.public_key]
    return (now() - start) * 1000, first, hop


def check_loopback(bootstrap: list[tuple[str, int]]) -> None:
    """Benchmarks send to 127.0.0.1 only."""
    for host, _ in bootstrap:
        if host != "127.0.0.1":
            raise RuntimeError(f"refusing non-loopback bootstrap {host}")


async def _run(p: dict[str, Any]) -> Result:
    m: dict[str, float] = {}
    # largest first: idle memory is read on the first network, before freed memory
    # from an earlier one could be reused and hide the cost
    for index, size in enumerate(sorted(p["sizes"], reverse=True)):
        await _network(size, p, index == 0, m)
    return {"metrics": m, "info": {}}


def run(p: dict[str, Any]) -> Result:
    return on_loop(_run, p)
