"""Issue #2 on our side: appends and random gets on an on-disk Store.

Mirrors bench/reference/core.js: same block sizes, counts and access pattern.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from bench.workloads.common import MB, Result, now, rate


async def _timed_appends(
    core: Any, payload: bytes | list[bytes], calls: int, m: dict[str, float], name: str
) -> None:
    """Append ``payload`` ``calls`` times; record blocks/s and MB/s under ``name``."""
    blocks = len(payload) if isinstance(payload, list) else 1
    block_size = len(payload[0]) if isinstance(payload, list) else len(payload)
    await core.ready()
    t = now()
    for _ in range(calls):
        await core.append(payload)
    dt = now() - t
    m[f"{name}_ops"] = rate(calls * blocks, dt)
    m[f"{name}_mbps"] = rate(calls * blocks * block_size / MB, dt)


async def run(p: dict[str, Any]) -> Result:
    from storage import Store  # late: the worker reports an ImportError as "not available yet"

    small = os.urandom(1024)
    big = os.urandom(64 * 1024)
    single, batches, size, n_big, gets = (
        p["single"],
        p["batches"],
        p["batch_size"],
        p["big"],
        p["gets"],
    )
    m: dict[str, float] = {}
    path = str(Path(p["dir"]) / "store")
    async with Store(path, sync=True) if p.get("sync") else Store(path) as store:
        await _timed_appends(store.core(name="single"), small, single, m, "append_1k_single")
        core = store.core(name="batch")
        await _timed_appends(core, [small] * size, batches, m, "append_1k_batch")

        rng = random.Random(1)
        length = core.length
        t = now()
        for _ in range(gets):
            await core.get(rng.randrange(length))
        m["get_random_ops"] = rate(gets, now() - t)

        await _timed_appends(store.core(name="big"), big, n_big, m, "append_64k")
    return {"metrics": m, "info": {"sync": bool(p.get("sync"))}}
