"""Issue #3 on our side: a Bee on an on-disk Store; mirrors bench/reference/bee.js."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench.workloads.common import Result, now, rate


def key(i: int) -> str:
    return f"key-{i:08d}"


def value(i: int) -> str:
    return f"value-{i:08d}"


async def run(p: dict[str, Any]) -> Result:
    from storage import Bee, Store  # late: the worker reports an ImportError as "not available yet"

    n: int = p["n"]
    m: dict[str, float] = {}
    async with Store(str(Path(p["dir"]) / "store")) as store:
        core = store.core(name="seq")
        await core.ready()
        db = Bee(core, key_encoding="utf-8", value_encoding="utf-8")
        await db.ready()
        t = now()
        for i in range(n):
            await db.put(key(i), value(i))
        m["put_seq_ops"] = rate(n, now() - t)

        bulk_core = store.core(name="batch")
        await bulk_core.ready()
        bulk = Bee(bulk_core, key_encoding="utf-8", value_encoding="utf-8")
        await bulk.ready()
        t = now()
        async with bulk.batch() as b:
            for i in range(n):
                await b.put(key(i), value(i))
        m["put_batch_ops"] = rate(n, now() - t)

        rng = random.Random(1)
        t = now()
        for _ in range(n):
            j = rng.randrange(n)
            entry = await db.get(key(j))
            if entry is None or entry.value != value(j):
                raise AssertionError(f"missing key {key(j)}")
        m["get_random_ops"] = rate(n, now() - t)

        t = now()
        count = 0
        async for _ in db.range():
            count += 1
        m["scan_ops"] = rate(count, now() - t)
        if count != n:
            raise AssertionError(f"scan saw {count} of {n}")
    return {"metrics": m, "info": {}}
