"""Append forever to a core and print each acknowledged length (for tests/test_crash.py).

Usage: python tests/crash_writer.py DIR [--sync]. Block ``i`` is ``block(i)``; every
third append is a batch of three, so the test can check batches are atomic.
"""

from __future__ import annotations

import asyncio
import sys

from storage import Store


def block(i: int) -> bytes:
    return (f"{i:08d}" * 128).encode()


def batch_size(op: int) -> int:
    return 3 if op % 3 == 2 else 1


async def main(path: str, sync: bool) -> None:
    async with Store(path, sync=sync) as store:
        core = store.core(name="crash")
        await core.ready()
        op = 0
        while True:
            n = batch_size(op)
            start = core.length
            length = await core.append([block(i) for i in range(start, start + n)])
            sys.stdout.write(f"{length}\n")
            sys.stdout.flush()
            op += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--sync" in sys.argv[2:]))
