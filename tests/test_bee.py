"""Bee behaviour on a real Store/Core in a temp dir: the public API, one feature at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from storage import Bee, Entry, KeyPair, Store
from storage.bee_block import PROTOCOL, decode_block, decode_header
from storage.bee_entry import Change, Update
from storage.core import Core
from storage.errors import (
    ClosedError,
    DecodeError,
    EncodingError,
    InvalidArgumentError,
    NotABeeError,
    NotWritableError,
    OutOfRangeError,
    PeerswarmError,
    StorageError,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "store") as s:
        yield s


async def open_core(store: Store, name: str = "db") -> Core:
    core = store.core(name=name)
    await core.ready()
    return core


async def open_bee(store: Store, name: str = "db", **options: Any) -> Bee:
    db = Bee(await open_core(store, name), **options)
    await db.ready()
    return db


async def keys_of(db: Bee, **bounds: Any) -> list[Any]:
    return [e.key async for e in db.range(**bounds)]


async def test_put_get_delete_one_block_per_write(store: Store) -> None:
    db = await open_bee(store)
    assert db.version == 1  # the header
    assert await db.get("a") is None
    assert await db.put("a", {"n": 1})
    assert await db.put("b", [1, 2])
    assert db.version == db.core.length == 3
    assert await db.get("a") == Entry(1, "a", {"n": 1})
    entry = await db.get("b")
    assert entry is not None and (entry.seq, entry.key, entry.value) == (2, "b", [1, 2])
    await db.put("a", None)  # json null is a value, not a delete
    assert await db.get("a") == Entry(3, "a", None)
    assert await db.delete("a")
    assert not await db.delete("a")  # absent: nothing written
    assert db.version == 5
    assert await db.get("a") is None
    assert await keys_of(db) == ["b"]


async def test_header_says_what_the_core_is(store: Store) -> None:
    db = await open_bee(store, metadata={"app": "test"}, max_keys=8)
    header = decode_header(await db.core.get(0))
    assert header.protocol == PROTOCOL and header.max_keys == 8
    assert header.metadata == {"app": "test"} and db.header == header
    # Any other Bee object on the same core reads the same header and keeps its fan-out.
    again = Bee(db.core, max_keys=64)
    await again.ready()
    assert again.header is not None and again.header.max_keys == 8

    other = await open_core(store, "not-a-bee")
    await other.append(b"just a log")
    stranger = Bee(other)
    with pytest.raises(NotABeeError, match="not a Bee header"):
        await stranger.ready()
    with pytest.raises(NotABeeError):
        await stranger.get("x")
    with pytest.raises(NotABeeError):
        await stranger.put("x", 1)
    assert other.length == 1  # nothing was appended to a stranger's core


async def test_encodings_and_rejected_input(store: Store) -> None:
    raw = await open_bee(store, "raw", key_encoding="binary", value_encoding="binary")
    await raw.put(b"\x00\xff", b"\x01")
    assert await raw.get(b"\x00\xff") == Entry(1, b"\x00\xff", b"\x01")
    text = await open_bee(store, "text", key_encoding="utf-8", value_encoding="utf-8")
    await text.put("ключ", "значение")
    assert (await text.get("ключ")) == Entry(1, "ключ", "значение")
    packed = await open_bee(store, "mp", key_encoding="binary", value_encoding="msgpack")
    await packed.put(b"k", {"x": b"\x00"})
    assert (await packed.get(b"k")) == Entry(1, b"k", {"x": b"\x00"})

    class Reversed:
        def encode(self, obj: Any) -> bytes:
            return str(obj)[::-1].encode()

        def decode(self, data: bytes) -> Any:
            return data.decode()[::-1]

    custom = await open_bee(store, "custom", key_encoding=Reversed(), value_encoding=Reversed())
    await custom.put("abc", "xyz")
    assert (await custom.get("abc")) == Entry(1, "abc", "xyz")
    assert await custom.core.get(1) != b""  # stored reversed, read back straight

    db = await open_bee(store, "json")
    before = db.version
    for key, value in (("k", float("nan")), ("k", {1, 2}), (b"bytes", 1), ("\ud800", 1)):
        with pytest.raises(EncodingError):
            await db.put(key, value)
    with pytest.raises(EncodingError, match="limit"):
        await db.put("x" * 5000, 1)
    with pytest.raises(EncodingError):
        async with db.batch() as b:
            await b.put("fine", 1)
            await b.put("bad", float("inf"))
    assert db.version == before  # nothing was written, and the database still works
    await db.put("k", 1)
    assert (await db.get("k")) == Entry(before, "k", 1)
    with pytest.raises(EncodingError):
        Bee(db.core, value_encoding="no-such-encoding")


async def test_range_bounds_reverse_and_limit(store: Store) -> None:
    db = await open_bee(store, max_keys=4)
    keys = [f"{i:02}" for i in range(0, 60, 2)]
    async with db.batch() as b:
        for k in keys:
            await b.put(k, int(k))
    assert await keys_of(db) == keys
    assert await keys_of(db, reverse=True) == keys[::-1]
    assert await keys_of(db, gte="10", lt="20") == ["10", "12", "14", "16", "18"]
    assert await keys_of(db, gt="10", lte="20") == ["12", "14", "16", "18", "20"]
    assert await keys_of(db, gte="11", lte="19") == ["12", "14", "16", "18"]
    assert await keys_of(db, gt="10", lt="20", reverse=True) == ["18", "16", "14", "12"]
    assert await keys_of(db, gte="10", lte="20", reverse=True, limit=2) == ["20", "18"]
    assert await keys_of(db, limit=3) == ["00", "02", "04"]
    assert await keys_of(db, limit=0) == []
    assert await keys_of(db, gt="58") == [] and await keys_of(db, lt="00") == []
    assert await keys_of(db, gte="30", lt="30") == []
    assert await keys_of(db, gte="40", lte="20") == []
    assert (await db.peek(gt="33")) == Entry(1, "34", 34)
    assert (await db.peek(reverse=True)) == Entry(1, "58", 58)
    with pytest.raises(InvalidArgumentError):
        await keys_of(db, gte="a", gt="b")
    with pytest.raises(InvalidArgumentError):
        await keys_of(db, lte="a", lt="b")


async def test_subs_are_isolated_and_nestable(store: Store) -> None:
    db = await open_bee(store)
    a, ab = db.sub("a"), db.sub("ab")
    await a.put("b:1", "in a")
    await ab.put(":1", "in ab")
    await db.put("ab:1", "in root")
    assert await keys_of(a) == ["b:1"]
    assert await keys_of(ab) == [":1"]
    assert (await a.get("b:1")) == Entry(1, "b:1", "in a")
    assert await ab.get("b:1") is None and await a.get(":1") is None
    nested = a.sub("x")
    await nested.put("k", 1)
    assert await keys_of(nested) == ["k"]
    assert (await nested.get("k")) == Entry(4, "k", 1)
    assert await ab.get("k") is None and await db.get("k") is None
    assert await keys_of(a, gte="b", lt="c") == ["b:1"]  # bounds are relative to the sub
    binary = db.sub(b"bin", key_encoding="binary", value_encoding="binary")
    await binary.put(b"\x00", b"v")
    assert await keys_of(binary) == [b"\x00"]
    assert [c.key async for c in ab.history()] == [":1"]
    with pytest.raises(InvalidArgumentError):
        db.sub("bad\x00name")
    await a.delete("b:1")
    assert await keys_of(a) == ["x\x00k"]  # a sub sees its nested subs' keys, like Hyperbee
    assert await keys_of(ab) == [":1"]


async def test_checkout_and_snapshot_are_read_only_past_versions(store: Store) -> None:
    db = await open_bee(store, max_keys=4)
    for i in range(20):
        await db.put(f"k{i:02}", i)
    await db.delete("k05")
    for version in range(1, db.version + 1):
        view = db.checkout(version)
        expected = [f"k{i:02}" for i in range(min(version - 1, 20))]
        if version == 22:
            expected.remove("k05")
        assert await keys_of(view) == expected
        assert view.version == version
    snap = db.snapshot()
    await db.put("k99", 99)
    assert await snap.get("k99") is None and (await db.get("k99")) is not None
    assert await db.checkout(7).get("k05") == Entry(6, "k05", 5)
    assert await db.checkout(6).get("k05") is None
    with pytest.raises(NotWritableError):
        await snap.put("x", 1)
    with pytest.raises(NotWritableError):
        snap.batch()
    with pytest.raises(OutOfRangeError):
        db.checkout(db.version + 1)
    with pytest.raises(InvalidArgumentError):
        db.checkout(-1)
    assert await keys_of(db.checkout(0)) == []
    assert await db.checkout(1).get("k00") is None


async def test_history_of_puts_and_deletes(store: Store) -> None:
    db = await open_bee(store)
    await db.put("a", 1)
    await db.put("b", 2)
    await db.delete("a")
    async with db.batch() as b:
        await b.put("c", 3)
        await b.put("c", 4)
        await b.delete("b")
    changes = [c async for c in db.history()]
    assert changes == [
        Change("put", 1, "a", 1),
        Change("put", 2, "b", 2),
        Change("del", 3, "a"),
        Change("put", 4, "c", 3),
        Change("put", 4, "c", 4),
        Change("del", 4, "b"),
    ]
    assert [c async for c in db.history(start=2, end=4)] == changes[1:3]
    assert [c async for c in db.history(reverse=True)] == changes[::-1]
    assert [c async for c in db.checkout(3).history()] == changes[:2]

    seen: list[Change] = []

    async def follow() -> None:
        async for change in db.history(start=4, live=True):
            seen.append(change)
            if change.key == "z":
                return

    task = asyncio.create_task(follow())  # start=4: sees seq 4 and 5 whenever it starts
    await db.put("z", 26)
    await asyncio.wait_for(task, 5)
    assert seen == [*changes[3:], Change("put", 5, "z", 26)]
    with pytest.raises(InvalidArgumentError):
        [c async for c in db.history(live=True, reverse=True)]


async def test_diff_between_versions(store: Store) -> None:
    db = await open_bee(store, max_keys=4)
    async with db.batch() as b:
        for i in range(200):
            await b.put(f"k{i:03}", i)
    v1 = db.version
    await db.put("k010", "changed")
    await db.delete("k150")
    await db.put("new", 1)
    diffs = [d async for d in db.diff(v1)]
    assert [(d.key, d.left and d.left.value, d.right and d.right.value) for d in diffs] == [
        ("k010", "changed", 10),
        ("k150", None, 150),
        ("new", 1, None),
    ]
    assert [d.key async for d in db.diff(v1, reverse=True)] == ["new", "k150", "k010"]
    assert [d.key async for d in db.diff(v1, gte="k100", lt="m")] == ["k150"]
    assert [d.key async for d in db.diff(v1, limit=1)] == ["k010"]
    assert [d async for d in db.diff(db.version)] == []
    back = [d async for d in db.checkout(v1).diff(db)]  # left/right swap sides
    assert [(d.key, d.left and d.left.value) for d in back] == [
        ("k010", 10),
        ("k150", 150),
        ("new", None),
    ]
    assert len([d async for d in db.diff(0)]) == 200  # against the empty database


async def test_diff_skips_shared_subtrees(store: Store) -> None:
    db = await open_bee(store, max_keys=8)
    async with db.batch() as b:
        for i in range(5000):
            await b.put(f"k{i:05}", i)
    before = db.version
    await db.put("k02500", "x")
    src = db._source
    src.nodes.clear()
    src.blocks.clear()
    misses = src.nodes.misses
    assert [d.key async for d in db.diff(before)] == ["k02500"]
    # Only the two changed root-to-leaf paths are read, not the ~700 nodes of the tree.
    assert src.nodes.misses - misses < 30


async def test_compare_and_swap(store: Store) -> None:
    db = await open_bee(store)
    calls: list[tuple[Any, Any]] = []

    def only_if_new_value(prev: Entry, new: Entry) -> bool:
        calls.append((prev, new))
        return bool(prev.value != new.value)

    assert await db.put("k", 1, cas=only_if_new_value)  # new key: cas is not asked
    assert calls == []
    assert not await db.put("k", 1, cas=only_if_new_value)
    assert calls == [(Entry(1, "k", 1), Entry(2, "k", 1))]
    assert db.version == 2  # refused: nothing written
    assert await db.put("k", 2, cas=only_if_new_value)
    assert (await db.get("k")) == Entry(2, "k", 2)

    async def slow_no(prev: Entry, new: Any) -> bool:
        await asyncio.sleep(0)
        return False

    assert not await db.delete("k", cas=slow_no)
    assert (await db.get("k")) is not None
    deleted_with: list[Any] = []

    def record(prev: Entry, new: Any) -> bool:
        deleted_with.append((prev, new))
        return True

    assert await db.delete("k", cas=record)
    assert deleted_with == [(Entry(2, "k", 2), None)]
    assert await db.get("k") is None


async def test_batch_is_one_atomic_append(store: Store) -> None:
    db = await open_bee(store)
    lengths: list[int] = []
    db.core.on_append(lengths.append)
    async with db.batch() as b:
        await b.put("a", 1)
        await b.put("b", 2)
        assert (await b.get("a")) == Entry(1, "a", 1)  # the batch sees its own writes
        assert await db.get("a") is None  # nobody else does yet
        await b.delete("a")
        assert await b.get("a") is None
    assert lengths == [2]
    assert await keys_of(db) == ["b"]

    with pytest.raises(RuntimeError, match="boom"):
        async with db.batch() as b:
            await b.put("c", 3)
            raise RuntimeError("boom")
    assert lengths == [2] and await db.get("c") is None
    await db.put("d", 4)  # the lock was released
    assert lengths == [2, 3]

    async with db.batch() as b:
        await b.put("e", 5)  # the batch holds the write lock from its first operation
        with pytest.raises(InvalidArgumentError):
            await db.put("f", 6)  # would deadlock: it says so instead
    assert (await db.get("e")) is not None and await db.get("f") is None
    assert lengths == [2, 3, 4]

    async with db.batch() as b:
        await b.put("g", 7)
        assert await b.flush() == db.version  # an explicit flush inside is fine
    b = db.batch()  # and so is a batch without a context manager
    await b.put("h", 8)
    await b.flush()
    with pytest.raises(ClosedError):
        await b.put("i", 9)
    assert [(await db.get(k)) is not None for k in "ghi"] == [True, True, False]
    lengths.clear()
    async with db.batch() as b:  # empty: nothing appended
        pass
    async with db.batch() as b:
        assert not await b.delete("missing")
    assert lengths == []


async def test_big_batch_is_cut_into_blocks_but_appended_at_once(store: Store) -> None:
    db = Bee(await open_core(store), max_keys=16, chunk_size=32 * 1024)
    await db.ready()
    lengths: list[int] = []
    db.core.on_append(lengths.append)
    async with db.batch() as b:
        for i in range(5000):
            await b.put(f"k{i:05}", "v" * (i % 100))  # big values are not inlined
    assert len(lengths) == 1 and lengths[0] > 3  # several blocks, one append
    assert await keys_of(db) == [f"k{i:05}" for i in range(5000)]
    entry = await db.get("k04999")
    assert entry is not None and entry.value == "v" * 99 and 1 <= entry.seq < db.version
    for seq in range(1, db.version):
        assert len(await db.core.get(seq)) < 64 * 1024
    for version in range(1, db.version):  # not even a checkout sees half of the batch
        assert await db.checkout(version).peek() is None
    assert len([c async for c in db.history()]) == 5000


async def test_concurrent_writers_are_serialized(store: Store) -> None:
    db = await open_bee(store, max_keys=4)
    twin = Bee(db.core)  # another Bee object on the same core shares the lock

    async def writer(target: Bee, prefix: str) -> None:
        for i in range(30):
            await target.put(f"{prefix}{i:02}", i)

    await asyncio.gather(writer(db, "a"), writer(twin, "b"), writer(db.sub("s"), "c"))
    assert db.version == 91
    assert len(await keys_of(db, lt="s")) == 60
    assert len(await keys_of(db.sub("s"))) == 30


async def test_watch_wakes_only_on_changes_in_its_range(store: Store) -> None:
    db = await open_bee(store)
    updates: list[tuple[int, int]] = []
    seen = asyncio.Event()

    watching = db.watch(gte="m", lt="n")

    async def watch() -> None:
        async for current, previous in watching:
            updates.append((current.version, previous.version))
            seen.set()

    await watching.ready()  # changes count from here, however late the task starts
    task = asyncio.create_task(watch())
    await db.put("a", 1)  # outside the range
    await db.put("z", 1)
    await db.put("m1", 1)  # inside
    await asyncio.wait_for(seen.wait(), 5)
    assert updates[-1][0] == db.version and updates[-1][1] < db.version
    seen.clear()
    await db.delete("z")
    await asyncio.sleep(0.05)
    assert not seen.is_set()
    await db.delete("m1")
    await asyncio.wait_for(seen.wait(), 5)
    current = updates[-1]
    assert await db.checkout(current[0]).get("m1") is None
    assert await db.checkout(current[1]).get("m1") is not None
    await db.close()  # ends the watch
    await asyncio.wait_for(task, 5)
    with pytest.raises(ClosedError):
        await db.get("a")


async def test_a_ready_watch_sees_writes_made_before_it_is_iterated(store: Store) -> None:
    db = await open_bee(store)
    await db.put("a", 0)
    watching = db.watch()
    await watching.ready()
    before = db.version
    await db.put("b", 1)  # nobody iterates yet
    update = await asyncio.wait_for(anext(watching), 5)
    assert (update.current.version, update.previous.version) == (db.version, before)
    assert await update.current.get("b") is not None and await update.previous.get("b") is None
    await watching.aclose()
    with pytest.raises(InvalidArgumentError):
        db.checkout(1).watch()


async def test_watch_and_reads_on_a_replica_fed_by_proofs(tmp_path: Path) -> None:
    """Changes that arrive by replication wake a watch; a replica reads only its path."""
    kp = KeyPair.generate()
    async with Store(tmp_path / "w") as ws, Store(tmp_path / "r") as rs:
        writer_core = ws.core(key_pair=kp)
        await writer_core.ready()
        writer = Bee(writer_core, max_keys=4)
        for i in range(300):  # one block per put: the tree's nodes spread over the log
            await writer.put(f"k{i:03}", i)
        replica_core = rs.core(key=kp.public_key)
        await replica_core.ready()
        replica = Bee(replica_core)
        assert await replica.get("k001") is None  # empty replica: an empty database
        assert not replica.writable

        # Give the replica the length and exactly the blocks one lookup needs.
        await replica_core.put_verified(writer_core.proof(None))
        needed = {0, writer_core.length - 1} | await _path_blocks(writer, "k123")
        for seq in needed:
            await replica_core.put_verified(writer_core.proof(seq))
        assert len(needed) < 10 and replica_core.length == 301
        assert (await asyncio.wait_for(replica.get("k123"), 5)) == Entry(124, "k123", 123)
        with pytest.raises(TimeoutError):  # elsewhere in the tree: blocks it does not hold
            await asyncio.wait_for(replica.get("k005"), 0.2)
        with pytest.raises(NotWritableError):
            await replica.put("x", 1)

        woke = asyncio.Event()
        got: list[Update] = []

        watching = replica.watch(gte="new")

        async def watch() -> None:
            async for update in watching:
                got.append(update)
                woke.set()

        await watching.ready()
        task = asyncio.create_task(watch())
        await writer.put("new", 1)
        for seq in range(replica_core.length, writer_core.length):
            await replica_core.put_verified(writer_core.proof(seq))
        await asyncio.wait_for(woke.wait(), 5)
        assert got[0].current.version == writer_core.length
        assert (await got[0].current.get("new")) == Entry(writer_core.length - 1, "new", 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _path_blocks(db: Bee, key: str) -> set[int]:
    """The blocks holding the nodes on the root-to-key path (read from the writer's cache)."""
    from storage.bee_node import OFFSET_BITS

    src = db._source
    header_and_root: set[int] = set()
    ref = await src.root(db.version)
    assert ref is not None
    target = db._encode_key(key)
    while True:
        header_and_root.add(ref >> OFFSET_BITS)
        node = src.nodes.get(ref)
        assert node is not None
        if target in node.keys:
            i = node.keys.index(target)
            if node.inline[i] is None:  # not inline: the value's own block is needed too
                header_and_root.add(node.values[i] >> OFFSET_BITS)
            return header_and_root
        if not node.children:
            return header_and_root
        from bisect import bisect_left

        child = node.children[bisect_left(node.keys, target)]
        assert isinstance(child, int)
        ref = child


async def test_corrupt_last_block_is_a_clear_error_and_old_versions_stay(store: Store) -> None:
    db = await open_bee(store)
    await db.put("a", 1)
    await db.put("b", 2)
    good = db.version
    await db.core.append(b"\xc1 garbage, not a Bee block")  # a raw append behind the Bee's back
    with pytest.raises(DecodeError):
        await db.get("a")
    with pytest.raises(DecodeError):
        await db.put("c", 3)
    assert db.core.length == good + 1  # the failed put wrote nothing
    assert await keys_of(db.checkout(good)) == ["a", "b"]


async def test_corrupt_node_block_fails_only_the_keys_under_it(store: Store) -> None:
    """A copy of a Bee whose one block is garbage: its keys fail clearly, the rest reads."""
    db = await open_bee(store, "good", max_keys=4)
    for i in range(200):  # one put per block: each block holds one changed path
        await db.put(f"k{i:03}", i)
    blocks = [await db.core.get(i) for i in range(db.version)]
    victim = min(await _path_blocks(db, "k100"))  # holds the leaf of k100 in the latest tree
    bad_core = await open_core(store, "bad")
    await bad_core.append([b if i != victim else b"\x93garbage" for i, b in enumerate(blocks)])
    bad = Bee(bad_core)
    failed, ok = [], []
    for i in range(200):
        try:
            entry = await bad.get(f"k{i:03}")
        except DecodeError:
            failed.append(i)
        else:
            assert entry == Entry(i + 1, f"k{i:03}", i)
            ok.append(i)
    assert failed and len(ok) > 150  # only the keys whose path crosses the bad block
    # Writes whose path avoids the bad block still work; the rest fail and write nothing.
    await bad.put(f"k{ok[-1]:03}", "still writable")
    assert (await bad.get(f"k{ok[-1]:03}")) == Entry(201, f"k{ok[-1]:03}", "still writable")
    length = bad_core.length
    with pytest.raises(DecodeError):
        await bad.put(f"k{failed[0]:03}", "x")
    assert bad_core.length == length
    # A batch whose one operation failed writes nothing, even if the error was swallowed.
    with pytest.raises(StorageError, match="wrote nothing"):
        async with bad.batch() as b:
            await b.put(f"k{ok[-1]:03}", "fine")
            with pytest.raises(DecodeError):
                await b.put(f"k{failed[0]:03}", "x")
    assert bad_core.length == length
    await bad.put(f"k{ok[-1]:03}", "the lock was released")
    with pytest.raises(DecodeError):
        [c async for c in bad.history()]
    with pytest.raises(PeerswarmError):
        [e async for e in bad.range()]


async def test_corrupt_block_structures_found_by_decoding(store: Store) -> None:
    db = await open_bee(store)
    await db.put("a", 1)
    block = decode_block(await db.core.get(1), 1)
    # A syntactically fine block whose root points at a node that does not exist.
    forged = msgpack.packb([1, [], [], 1 << 32 | 5], use_bin_type=True)
    await db.core.append(forged)
    with pytest.raises(DecodeError, match="no node"):
        await db.get("a")
    assert block.root is not None


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    async with Store(tmp_path / "s") as store:
        db = await open_bee(store, max_keys=4)
        for i in range(50):
            await db.put(f"k{i:02}", i)
        version = db.version
    async with Store(tmp_path / "s") as store:
        db = await open_bee(store, max_keys=64)
        assert db.version == version
        assert db.header is not None and db.header.max_keys == 4
        assert await keys_of(db) == [f"k{i:02}" for i in range(50)]
        assert (await db.get("k10")) == Entry(11, "k10", 10)
        await db.put("k50", 50)
        assert len(await keys_of(db)) == 51


async def test_random_gets_hit_the_node_cache(store: Store) -> None:
    db = await open_bee(store, max_keys=8)
    async with db.batch() as b:
        for i in range(2000):
            await b.put(f"k{i:04}", i)
    src = db._source
    src.nodes.clear()
    for i in range(0, 2000, 7):
        assert (await db.get(f"k{i:04}")) is not None
    misses = src.nodes.misses
    hits = src.nodes.hits
    for i in range(0, 2000, 7):
        await db.get(f"k{i:04}")
    assert src.nodes.misses == misses  # the second pass decodes nothing
    assert src.nodes.hits > hits


async def test_closed_bee_refuses_work(store: Store) -> None:
    async with Bee(await open_core(store)) as db:
        await db.put("a", 1)
    with pytest.raises(ClosedError):
        await db.put("b", 2)
    with pytest.raises(ClosedError):
        await db.get("a")
    assert db.core.length == 2 and not db.core.closed


async def test_truncated_core_reads_the_cut_version_and_writes_on(store: Store) -> None:
    db = await open_bee(store)
    for i in range(10):
        await db.put(f"k{i}", i)
    assert (await db.get("k9")) is not None  # caches now hold the blocks about to go
    await db.core.truncate(6)  # back to version 6: k0..k4
    assert db.version == 6
    assert await keys_of(db) == [f"k{i}" for i in range(5)]
    assert await db.get("k9") is None
    await db.put("new", 1)
    assert (await db.get("new")) == Entry(6, "new", 1)
    assert await keys_of(db) == [*(f"k{i}" for i in range(5)), "new"]
    await db.core.truncate(0)  # not even a header: the next write starts a new Bee
    await db.put("again", 1)
    assert db.version == 2 and await keys_of(db) == ["again"]


async def test_cached_node_encodings_match_fresh_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encoding caches a put keeps in step (tails, values, children) never go stale."""
    import random

    from storage import bee_batch
    from storage.bee_node import Node, encode_node

    checked = [0]

    def checked_encode(node: Node) -> bytes:
        data = encode_node(node)
        fresh = Node(node.keys[:], node.values[:], node.inline[:], node.children[:])
        assert data == encode_node(fresh), node
        checked[0] += 1
        return data

    monkeypatch.setattr(bee_batch, "encode_node", checked_encode)
    rng = random.Random(7)
    db = await open_bee(store, max_keys=4, key_encoding="binary", value_encoding="binary")
    model: dict[bytes, bytes] = {}
    for step in range(600):
        key = rng.choice([b"k%03d" % rng.randrange(60), b"k%06d" % step, b"x%d" % step])
        value = b"v%d" % step
        if step % 7 == 0:
            async with db.batch() as b:
                for j in range(rng.randrange(1, 12)):
                    k = b"k%03d" % rng.randrange(60)
                    if j % 3 == 2:
                        await b.delete(k)
                        model.pop(k, None)
                    else:
                        await b.put(k, value + b"/%d" % j)
                        model[k] = value + b"/%d" % j
        elif step % 5 == 0:
            await db.delete(key)
            model.pop(key, None)
        else:
            await db.put(key, value)
            model[key] = value
    assert checked[0] > 600
    assert [(e.key, e.value) async for e in db.range()] == sorted(model.items())
