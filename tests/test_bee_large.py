"""Large Bees: deep trees (small fan-out), every range edge, random deletes, and 100k keys.

The default suite runs each scenario at a few thousand keys; the ``slow`` marks run the
100k-key versions (``pytest -m slow``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import Bee, Store
from storage.bee_node import Node


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "store") as s:
        yield s


async def open_bee(store: Store, name: str, **options: Any) -> Bee:
    core = store.core(name=name)
    await core.ready()
    db = Bee(core, key_encoding="binary", value_encoding="binary", **options)
    await db.ready()
    return db


def key(i: int) -> bytes:
    return b"key-%08d" % i


async def depth_and_shape(db: Bee) -> tuple[int, int]:
    """The tree's depth and node count, checking B-tree order and size rules on the way."""
    src = db._source
    root = await src.root(db.version)
    if root is None:
        return 0, 0
    max_keys = db.header.max_keys if db.header else 64
    depths: set[int] = set()
    count = 0

    async def walk(ref: Any, depth: int, low: bytes | None, high: bytes | None) -> None:
        nonlocal count
        node: Node = src.cached(ref) or await src.load(ref)
        count += 1
        assert 1 <= len(node.keys) <= max_keys
        assert node.keys == sorted(node.keys)
        assert low is None or node.keys[0] > low
        assert high is None or node.keys[-1] < high
        if not node.children:
            depths.add(depth)
            return
        bounds = [low, *node.keys, high]
        for i, child in enumerate(node.children):
            await walk(child, depth + 1, bounds[i], bounds[i + 1])

    await walk(root, 1, None, None)
    assert len(depths) == 1, "all leaves at the same depth"
    return depths.pop(), count


async def check_ranges(db: Bee, present: list[int], rng: random.Random, probes: int) -> None:
    """Range edges around present and absent keys, both directions, against a sorted list."""
    keys = [key(i) for i in present]
    assert [e.key async for e in db.range()] == keys
    assert [e.key async for e in db.range(reverse=True)] == keys[::-1]
    top = (present[-1] + 2) if present else 10
    for _ in range(probes):
        a, b = sorted(rng.randrange(-1, top + 1) for _ in range(2))
        lo, hi = key(a) if a >= 0 else b"", key(b)
        for low_incl in (True, False):
            for high_incl in (True, False):
                bounds: dict[str, Any] = {
                    ("gte" if low_incl else "gt"): lo,
                    ("lte" if high_incl else "lt"): hi,
                }
                want = [
                    k
                    for k in keys
                    if (k > lo or (low_incl and k == lo)) and (k < hi or (high_incl and k == hi))
                ]
                got = [e.key async for e in db.range(**bounds)]
                assert got == want, bounds
                back = [e.key async for e in db.range(**bounds, reverse=True, limit=3)]
                assert back == want[::-1][:3], bounds


async def deep_tree_scenario(store: Store, n: int, max_keys: int, seed: int) -> None:
    rng = random.Random(seed)
    db = await open_bee(store, f"deep-{n}-{max_keys}", max_keys=max_keys)
    order = list(range(n))
    rng.shuffle(order)
    half = n // 2
    for start in range(0, half, 500):  # half in batches of random keys...
        async with db.batch() as b:
            for i in order[start : min(start + 500, half)]:
                await b.put(key(i), b"%d" % i)
    for i in order[half : half + 300]:  # ...a few one by one...
        await db.put(key(i), b"%d" % i)
    async with db.batch() as b:  # ...and the rest at once
        for i in order[half + 300 :]:
            await b.put(key(i), b"%d" % i)
    depth, nodes = await depth_and_shape(db)
    assert depth >= (4 if max_keys <= 4 else 3) and nodes > n // max_keys
    full = db.version
    probes = 40 if n <= 10_000 else 5
    await check_ranges(db, list(range(n)), rng, probes)

    # Random deletes, some one by one and most in batches, then the same checks.
    doomed = rng.sample(range(n), n * 3 // 4)
    for i in doomed[:200]:
        assert await db.delete(key(i))
    for start in range(200, len(doomed), 700):
        async with db.batch() as b:
            for i in doomed[start : start + 700]:
                assert await b.delete(key(i))
    left = sorted(set(range(n)) - set(doomed))
    await depth_and_shape(db)
    await check_ranges(db, left, rng, probes)
    for i in rng.sample(range(n), 300):
        entry = await db.get(key(i))
        assert (entry is not None) == (i in set(left))
        if entry is not None:
            assert entry.value == b"%d" % i

    # The full version is still there, untouched.
    old = db.checkout(full)
    assert len([e async for e in old.range()]) == n
    assert [d.key async for d in db.diff(full)] == sorted(key(i) for i in doomed)

    # Delete everything: the tree shrinks back to nothing.
    async with db.batch() as b:
        for i in left:
            await b.delete(key(i))
    assert await depth_and_shape(db) == (0, 0)
    assert [e async for e in db.range()] == []


@pytest.mark.parametrize("max_keys", [2, 3, 4])
async def test_deep_trees_small_fanout(store: Store, max_keys: int) -> None:
    await deep_tree_scenario(store, 3000, max_keys, seed=max_keys)


@pytest.mark.slow
@pytest.mark.parametrize("max_keys", [4, 64])
async def test_deep_trees_100k(store: Store, max_keys: int) -> None:
    await deep_tree_scenario(store, 100_000, max_keys, seed=max_keys)


async def sequential_scenario(store: Store, n: int, one_by_one: int) -> None:
    """The benchmark's shape: sequential puts, a batch, random gets and a full scan."""
    db = await open_bee(store, f"seq-{n}")
    for i in range(one_by_one):
        await db.put(key(i), b"value-%08d" % i)
    async with db.batch() as b:
        for i in range(one_by_one, n):
            await b.put(key(i), b"value-%08d" % i)
    assert db.version >= 1 + one_by_one
    _, nodes = await depth_and_shape(db)
    # Ascending inserts keep nodes full: about n / 63 nodes, not n / 32.
    assert nodes < n / 50 + 10
    rng = random.Random(n)
    for _ in range(2000):
        i = rng.randrange(n)
        entry = await db.get(key(i))
        assert entry is not None and entry.value == b"value-%08d" % i and entry.key == key(i)
        if i < one_by_one:
            assert entry.seq == i + 1
        else:
            assert one_by_one < entry.seq < db.version
    count = 0
    async for entry in db.range():
        assert entry.key == key(count)
        count += 1
    assert count == n
    assert len([e async for e in db.range(gte=key(n // 2), limit=10)]) == 10
    last = [e.key async for e in db.range(reverse=True, limit=2)]
    assert last == [key(n - 1), key(n - 2)]
    assert await db.get(key(n)) is None


async def test_sequential_10k(store: Store) -> None:
    await sequential_scenario(store, 10_000, one_by_one=2_000)


@pytest.mark.slow
async def test_sequential_100k(store: Store) -> None:
    await sequential_scenario(store, 100_000, one_by_one=100_000)
