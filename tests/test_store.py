"""Store: one LMDB environment, many isolated cores, growth, locking, identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import KeyPair, Store
from storage.errors import ClosedError, InvalidArgumentError, StorageError
from storage.store import derive_key_pair


async def test_map_grows_instead_of_failing(tmp_path: Path) -> None:
    async with Store(tmp_path, map_size=1 << 16) as store:  # 64 KiB to start
        core = store.core(name="grow")
        for i in range(40):
            await core.append(bytes([i]) * 100_000)  # 4 MB total
        await core.append([b"\1" * 3_000_000, b"\2" * 3_000_000])  # one batch bigger than the map
        assert store._env.info()["map_size"] > 6_000_000
        assert core.length == 42
    async with Store(tmp_path, map_size=1 << 16) as store:  # reopen with a smaller setting
        core = store.core(name="grow")
        assert await core.get(39) == bytes([39]) * 100_000
        assert await core.get(41) == b"\2" * 3_000_000


async def test_sync_store_round_trips(tmp_path: Path) -> None:
    async with Store(tmp_path, sync=True) as store:
        core = store.core(name="s")
        await core.append([b"a", b"b"])
    async with Store(tmp_path) as store:
        assert await store.core(name="s").get(1) == b"b"


async def test_one_process_at_a_time(tmp_path: Path) -> None:
    async with Store(tmp_path):
        with pytest.raises(StorageError):
            await Store(tmp_path).ready()
    async with Store(tmp_path):  # released on close
        pass


async def test_names_derive_from_the_primary_key(tmp_path: Path) -> None:
    primary = os.urandom(32)
    async with Store(tmp_path / "a", primary_key=primary) as a:
        key = a.core(name="log").key
        assert a.primary_key == primary
        assert key == derive_key_pair(primary, "log").public_key
    async with Store(tmp_path / "b", primary_key=primary) as b:
        assert b.core(name="log").key == key
    async with Store(tmp_path / "a") as a:  # the primary key is kept in the store
        assert a.primary_key == primary and a.core(name="log").key == key
    with pytest.raises(InvalidArgumentError):
        await Store(tmp_path / "a", primary_key=os.urandom(32)).ready()
    async with Store(tmp_path / "c") as c:
        assert c.core(name="log").key != key
    with pytest.raises(InvalidArgumentError):
        Store(tmp_path, primary_key=b"short")


async def test_cores_in_one_store_are_isolated(tmp_path: Path) -> None:
    async with Store(tmp_path) as store:
        cores = [store.core(name=str(i)) for i in range(4)]
        for n, core in enumerate(cores):
            await core.append([f"{n}:{i}".encode() for i in range(50)])
        await cores[0].truncate(0)  # deletes "to the end" of core 0's key ranges only
        await cores[2].truncate(7)
        assert [c.length for c in cores] == [0, 50, 7, 50]
        assert await cores[1].get(49) == b"1:49"
        assert await cores[3].get(0) == b"3:0"
        assert cores[1].tree_hash(50) == cores[1].tree_hash()
        cores[3].proof(49)
        keys = {c.key for c in cores}
        replica_key = KeyPair.generate().public_key
        await store.core(key=replica_key).ready()
        assert set(store.known_keys()) == keys | {replica_key}
        assert store.key_for_discovery_key(cores[2].discovery_key) == cores[2].key
        assert store.key_for_discovery_key(b"\0" * 32) is None
        assert set(store.cores()) >= set(cores)


async def test_opening_by_key_then_by_key_pair_becomes_writable(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path) as store:
        core = store.core(key=kp.public_key)
        await core.ready()
        assert not core.writable
        assert store.core(key_pair=kp) is core and core.writable
        await core.append(b"now mine")
    async with Store(tmp_path) as store:
        core = store.core(key=kp.public_key)
        await core.ready()
        assert core.writable and await core.get(0) == b"now mine"


async def test_closed_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    await store.ready()
    await store.close()
    assert store.closed
    with pytest.raises(ClosedError):
        await store.ready()
    with pytest.raises(InvalidArgumentError):
        Store(tmp_path, map_size=10)
