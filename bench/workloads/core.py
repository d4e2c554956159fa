"""Issue #2 on our side: appends and random gets on an on-disk Store.

Mirrors bench/reference/core.js: same block sizes, counts and access pattern.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from bench.workloads.common import MB, Result, now, rate


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
        core = store.core(name="single")
        await core.ready()
        t = now()
        for _ in range(single):
            await core.append(small)
        dt = now() - t
        m["append_1k_single_ops"] = rate(single, dt)
        m["append_1k_single_mbps"] = rate(single * len(small) / MB, dt)

        core = store.core(name="batch")
        await core.ready()
        batch = [small] * size
        t = now()
        for _ in range(batches):
            await core.append(batch)
        dt = now() - t
        m["append_1k_batch_ops"] = rate(batches * size, dt)
        m["append_1k_batch_mbps"] = rate(batches * size * len(small) / MB, dt)

        rng = random.Random(1)
        length = core.length
        t = now()
        for _ in range(gets):
            await core.get(rng.randrange(length))
        m["get_random_ops"] = rate(gets, now() - t)

        core = store.core(name="big")
        await core.ready()
        t = now()
        for _ in range(n_big):
            await core.append(big)
        dt = now() - t
        m["append_64k_ops"] = rate(n_big, dt)
        m["append_64k_mbps"] = rate(n_big * len(big) / MB, dt)
    return {"metrics": m, "info": {"sync": bool(p.get("sync"))}}
