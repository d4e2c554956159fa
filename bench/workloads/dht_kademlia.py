"""Issue #4, second reference: the `kademlia` package's own Server (set/get) on 127.0.0.1.

The same shape as our workload: a network of N servers, then one extra node
stores a value under a random key and another extra node gets it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from kademlia.network import Server
from kademlia.storage import ForgetfulStorage

from bench.stats import percentile
from bench.workloads.common import Result, now, rss_mb, trials

HOST = "127.0.0.1"


class _NoStorage(ForgetfulStorage):  # type: ignore[misc]
    """The looker keeps nothing, so a get crawls the network instead of answering locally.

    In a small network every kademlia node is among the k closest and holds every
    value; hyperdht's ephemeral clients do not, so this keeps the comparison fair.
    """

    def __setitem__(self, key: bytes, value: Any) -> None:
        return None


async def _start(
    bootstrap: list[tuple[str, int]], keep: bool = True
) -> tuple[Server, tuple[str, int]]:
    server = Server() if keep else Server(storage=_NoStorage())
    await server.listen(0, interface=HOST)
    address: tuple[str, int] = server.transport.get_extra_info("sockname")[:2]
    if bootstrap:
        await server.bootstrap(bootstrap)
    return server, address


async def _network(size: int, p: dict[str, Any], idle: bool, m: dict[str, float]) -> None:
    gc.collect()
    before = rss_mb()
    servers = []
    first, address = await _start([])
    servers.append(first)
    for _ in range(size - 1):
        server, _ = await _start([address])
        servers.append(server)
    await asyncio.sleep(1)
    gc.collect()
    if idle:
        m["idle_node_mb"] = (rss_mb() - before) / size

    announcer, _ = await _start([address])
    looker, _ = await _start([address], keep=False)

    async def trial() -> tuple[float, bool]:
        key, value = os.urandom(32), os.urandom(32)
        await announcer.set(key, value)
        start = now()
        got = await looker.get(key)
        return (now() - start) * 1000, got == value

    results = await trials(p, trial)
    times = [ms for ms, _ in results]
    found = sum(ok for _, ok in results)
    # kademlia's get stops at the first value found: that is "first record", not a full lookup
    m[f"first_p50_ms@{size}"] = percentile(times, 50)
    m[f"first_p95_ms@{size}"] = percentile(times, 95)
    m[f"success_pct@{size}"] = 100 * found / len(results)
    for server in [*servers, announcer, looker]:
        server.stop()
    await asyncio.sleep(0)


async def run(p: dict[str, Any]) -> Result:
    logging.getLogger("kademlia").setLevel(logging.CRITICAL)
    m: dict[str, float] = {}
    for index, size in enumerate(sorted(p["sizes"], reverse=True)):  # idle memory: see lookup.py
        await _network(size, p, index == 0, m)
    return {"metrics": m, "info": {"note": "kademlia.get returns on the first value found"}}
