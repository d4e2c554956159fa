"""Core behaviour through the public API, on real LMDB in a temp dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import lmdb
import pytest

from storage import MAX_BLOCK_SIZE, KeyPair, Store
from storage.errors import (
    BlockNotAvailableError,
    BlockTooLargeError,
    ClosedError,
    CorruptionError,
    InvalidArgumentError,
    NotWritableError,
    OutOfRangeError,
    SnapshotNotAvailableError,
)
from storage.hashes import discovery_key, signable
from storage.keypair import is_valid, verify


def _sig_ok(core_key: bytes, th: bytes, length: int, fork: int, sig: bytes) -> bool:
    return is_valid(core_key, signable(th, length, fork), sig)


async def test_append_get_and_reopen(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        assert (core.length, core.byte_length, core.fork, core.writable) == (0, 0, 0, True)
        assert await core.append(b"hello") == 1
        assert await core.append([b"a", bytearray(b"bc"), memoryview(b"def")]) == 4
        assert await core.append([]) == 4
        assert (core.length, core.byte_length) == (4, 11)
        assert [await core.get(i) for i in range(4)] == [b"hello", b"a", b"bc", b"def"]
        assert core.discovery_key == discovery_key(core.key)
        key, th, sig = core.key, core.tree_hash(), core.signature
        assert _sig_ok(key, th, 4, 0, sig)
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        assert (core.key, core.length, core.byte_length) == (key, 4, 11)
        assert (core.tree_hash(), core.signature) == (th, sig)
        assert await core.get(3) == b"def"
        assert store.key_for_discovery_key(core.discovery_key) == key
        assert await core.append(b"more") == 5
        assert store.core(key=key) is core


async def test_names_and_key_pairs_select_cores(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path) as store:
        a, b = store.core(name="a"), store.core(name="b")
        assert a.key != b.key and store.core(name="a") is a
        explicit = store.core(key_pair=kp)
        await explicit.append(b"x")
        assert explicit.key == kp.public_key
        with pytest.raises(InvalidArgumentError):
            store.core()
        with pytest.raises(InvalidArgumentError):
            store.core(name="a", key=kp.public_key)
        with pytest.raises(InvalidArgumentError):
            store.core(key=b"short")
    async with Store(tmp_path) as store:
        # The secret key was kept: opening by public key alone is still writable.
        again = store.core(key=kp.public_key)
        await again.ready()
        assert again.writable and again.length == 1
        await again.append(b"y")
        assert await again.get(1) == b"y"


async def test_bad_appends_and_reads_are_clear_errors(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.append(b"a")
        with pytest.raises(OutOfRangeError):
            await core.get(1)
        with pytest.raises(OutOfRangeError):
            await core.get(-1)
        with pytest.raises(BlockTooLargeError):
            await core.append(b"\0" * (MAX_BLOCK_SIZE + 1))
        with pytest.raises(BlockTooLargeError):  # the batch is all or nothing
            await core.append([b"ok", b"\0" * (MAX_BLOCK_SIZE + 1)])
        with pytest.raises(InvalidArgumentError):
            await core.append("text")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await core.append([b"a", 3])  # type: ignore[list-item]
        assert core.length == 1
        replica = store.core(key=KeyPair.generate().public_key)
        with pytest.raises(NotWritableError):
            await replica.append(b"x")
        with pytest.raises(NotWritableError):
            await replica.truncate(0)
        with pytest.raises(InvalidArgumentError):
            await core.truncate(5)


async def test_largest_block_round_trips(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="big")
        block = bytes(range(256)) * (MAX_BLOCK_SIZE // 256)
        assert len(block) == MAX_BLOCK_SIZE
        await core.append(block)
        assert await core.get(0) == block


async def test_truncate_bumps_fork_resigns_and_persists(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.append([bytes([i]) * i for i in range(10)])
        th6 = core.tree_hash(6)
        await core.truncate(6)
        assert (core.length, core.fork, core.byte_length) == (6, 1, sum(range(6)))
        assert core.tree_hash() == th6
        assert _sig_ok(core.key, th6, 6, 1, core.signature)
        with pytest.raises(OutOfRangeError):
            await core.get(6)
        assert core.missing_ranges() == [] and not core.has(7)
        await core.append([b"new", b"er"])
        assert await core.get(6) == b"new"
        fresh = store.core(name="fresh")
        await fresh.append([bytes([i]) * i for i in range(6)] + [b"new", b"er"])
        assert core.tree_hash() == fresh.tree_hash()
        await core.truncate(0)
        assert (core.length, core.byte_length, core.fork) == (0, 0, 2)
        await core.append(b"z")
        await core.truncate(1)  # same length still bumps the fork
        assert core.fork == 3
        key, sig = core.key, core.signature
    async with Store(tmp_path) as store:
        core = store.core(key=key)
        await core.ready()
        assert (core.length, core.fork, core.signature) == (1, 3, sig)
        assert await core.get(0) == b"z"


async def test_snapshot_is_fixed_and_survives_appends_not_truncation(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.append([b"a", b"b", b"c"])
        snap = core.snapshot()
        th = core.tree_hash()
        await core.append(b"d")
        assert snap.length == 3 and snap.tree_hash() == th
        assert [b async for b in snap.read()] == [b"a", b"b", b"c"]
        with pytest.raises(OutOfRangeError):
            await snap.get(3)
        await core.truncate(1)
        assert await snap.get(0) == b"a"
        assert not snap.has(1)
        with pytest.raises(SnapshotNotAvailableError):
            await snap.get(1)


async def test_read_and_live_read(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.append([b"0", b"1", b"2"])
        assert [b async for b in core.read()] == [b"0", b"1", b"2"]
        assert [b async for b in core.read(1, 2)] == [b"1"]

        async def live() -> list[bytes]:
            out = []
            async for b in core.read(live=True):
                out.append(b)
                if len(out) == 5:
                    return out
            return out

        task = asyncio.create_task(live())
        await asyncio.sleep(0)
        await core.append(b"3")
        await core.append(b"4")
        assert await asyncio.wait_for(task, 5) == [b"0", b"1", b"2", b"3", b"4"]


async def test_on_append_and_updates(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        seen: list[int] = []
        off = core.on_append(seen.append)
        core.on_append(lambda _: 1 / 0)  # a broken listener must not break the writer
        truncs: list[tuple[int, int]] = []
        core.on_truncate(lambda n, f: truncs.append((n, f)))
        got: asyncio.Queue[int] = asyncio.Queue()

        async def watch() -> None:
            async for length in core.updates():
                await got.put(length)

        task = asyncio.create_task(watch())
        await asyncio.sleep(0)
        await core.append(b"a")
        assert await asyncio.wait_for(got.get(), 5) == 1
        await core.append([b"b", b"c"])
        assert await asyncio.wait_for(got.get(), 5) == 3
        # A burst while the watcher is not looking is coalesced into the latest length.
        await core.append(b"d")
        await core.truncate(2)
        assert await asyncio.wait_for(got.get(), 5) == 2
        assert got.empty()
        assert seen == [1, 3, 4] and truncs == [(2, 1)]
        await core.close()  # ends the iterator
        await asyncio.wait_for(task, 5)
        off()
        core = store.core(name="log")
        core.on_append(seen.append)
        off2 = core.on_append(seen.append)
        off2()
        await core.append(b"e")
        assert seen == [1, 3, 4, 3]


async def test_replica_get_waits_times_out_or_refuses(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        replica = store.core(key=KeyPair.generate().public_key)
        await replica.ready()
        assert not replica.writable and replica.signature == b""
        with pytest.raises(BlockNotAvailableError):
            await replica.get(0, wait=False)
        with pytest.raises(BlockNotAvailableError):
            await replica.get(0, timeout=0.01)
        with pytest.raises(BlockNotAvailableError):
            await replica.download(0, 1, timeout=0.01)
        waiter = asyncio.create_task(replica.get(3))
        await asyncio.sleep(0)
        await replica.close()
        with pytest.raises(ClosedError):
            await waiter
        with pytest.raises(ClosedError):
            await replica.get(0)


async def test_corrupted_block_on_disk_is_detected(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.append([b"good", b"data"])
        env, blocks = store._env, store._dbs["blocks"]
        with env.begin(write=True) as txn:
            key = next(k for k, v in txn.cursor(db=blocks) if v == b"data")
            txn.put(key, b"evil", db=blocks)
        with pytest.raises(CorruptionError):
            await core.get(1)
        with pytest.raises(CorruptionError):
            core.proof(1)
        assert await core.get(0) == b"good"


async def test_closed_store_and_core_refuse_work(tmp_path: Path) -> None:
    store = Store(tmp_path)
    core = store.core(name="x")  # usable before ready(): it opens on demand
    await core.append(b"a")
    await store.close()
    await store.close()
    with pytest.raises(ClosedError):
        await core.append(b"b")
    with pytest.raises(ClosedError):
        store.core(name="x")
    # Everything acknowledged is on disk.
    env = lmdb.open(str(tmp_path), max_dbs=8, readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.get(b"a", db=env.open_db(b"blocks", txn=txn)) is None  # keys are prefixed
    env.close()
    async with Store(tmp_path) as again:
        c = again.core(name="x")
        assert await c.get(0) == b"a"
        verify(c.key, signable(c.tree_hash(), 1, 0), c.signature)


async def test_appends_leave_bitfield_pages_to_the_header_run(tmp_path: Path) -> None:
    """Appends write no bitfield page (the header's appended run says they are held);
    what is held is the same after a reopen, a truncation and more appends."""
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        for i in range(0, 9000, 500):  # crosses the first 8192-bit page
            await core.append([b"%d" % j for j in range(i, i + 500)])
        await core.append(b"one")
        with store.read() as txn:
            assert txn.stat(store._dbs["bitfield"])["entries"] == 0
        assert core.contiguous_length == core.length == 9001
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        assert core.contiguous_length == 9001 and core.missing_ranges() == []
        assert await core.get(8192) == b"8192" and await core.get(9000) == b"one"
        await core.truncate(8000)
        assert await core.append(b"x") == 8001
    async with Store(tmp_path) as store:
        core = store.core(name="log")
        await core.ready()
        assert (core.length, core.contiguous_length) == (8001, 8001)
        assert core.has(8000) and not core.has(8001) and not core.has(8500)
        assert await core.get(7999) == b"7999" and await core.get(8000) == b"x"


def test_fast_signing_is_byte_identical_to_pynacl() -> None:
    import os

    import nacl.signing

    for _ in range(20):
        kp = KeyPair.generate()
        message = os.urandom(int.from_bytes(os.urandom(1), "big"))
        expected = nacl.signing.SigningKey(kp.seed).sign(message).signature
        assert kp.sign(message) == expected
        verify(kp.public_key, message, expected)
