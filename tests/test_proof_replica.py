"""A replica filled only through verified proofs: holes, upgrades, forks, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import KeyPair, Store
from storage.errors import (
    BlockNotAvailableError,
    DecodeError,
    ForkMismatchError,
    InvalidArgumentError,
    VerificationError,
)


async def test_out_of_order_blocks_with_holes_and_reopen(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path / "w") as ws, Store(tmp_path / "r") as rs:
        writer = ws.core(key_pair=kp)
        await writer.append([f"block {i}".encode() for i in range(20)])
        replica = rs.core(key=kp.public_key)
        await replica.ready()
        assert await replica.put_verified(writer.proof(17).encode())  # bytes are decoded
        assert (replica.length, replica.fork) == (20, 0)
        assert replica.tree_hash() == writer.tree_hash()
        assert replica.signature == writer.signature
        for i in (3, 4, 9):
            assert await replica.put_verified(writer.proof(i))
        assert not await replica.put_verified(writer.proof(9))  # nothing new
        assert [replica.has(i) for i in (3, 4, 5, 17)] == [True, True, False, True]
        assert replica.missing_ranges() == [(0, 3), (5, 9), (10, 17), (18, 20)]
        assert replica.missing_ranges(4, 12) == [(5, 9), (10, 12)]
        assert replica.contiguous_length == 0
        assert await replica.get(17) == b"block 17"
        with pytest.raises(BlockNotAvailableError):
            await replica.get(5, wait=False)
        # The replica can serve what it holds to the next peer.
        again = replica.proof(4)
        assert again.encode() == writer.proof(4).encode()
        with pytest.raises(BlockNotAvailableError):
            replica.proof(5)
    async with Store(tmp_path / "r") as rs:
        replica = rs.core(key=kp.public_key)
        await replica.ready()
        assert replica.length == 20 and not replica.writable
        assert replica.missing_ranges() == [(0, 3), (5, 9), (10, 17), (18, 20)]
        assert await replica.get(9) == b"block 9"


async def test_waiters_wake_and_upgrades_notify(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path / "w") as ws, Store(tmp_path / "r") as rs:
        writer = ws.core(key_pair=kp)
        replica = rs.core(key=kp.public_key)
        await replica.ready()
        lengths: list[int] = []
        replica.on_append(lengths.append)
        waiter = asyncio.create_task(replica.get(2, timeout=5))
        await asyncio.sleep(0)
        await writer.append([b"a", b"b"])
        assert await replica.put_verified(writer.proof(None))  # upgrade only
        assert replica.length == 2 and lengths == [2] and not waiter.done()
        await writer.append(b"c")
        await replica.put_verified(writer.proof(2))
        assert await waiter == b"c"
        assert lengths == [2, 3]
        # An older signed length of the same fork still proves blocks, no downgrade.
        await replica.put_verified(writer.proof(0, 1))
        assert replica.length == 3 and await replica.get(0) == b"a"
        with pytest.raises(BlockNotAvailableError):
            await replica.download(0, 3, timeout=0.01)
        await replica.put_verified(writer.proof(1))
        await replica.download(timeout=1)
        assert replica.contiguous_length == 3


async def test_bad_proofs_leave_the_replica_untouched(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path / "w") as ws, Store(tmp_path / "r") as rs:
        writer = ws.core(key_pair=kp)
        await writer.append([b"one", b"two", b"three"])
        replica = rs.core(key=kp.public_key)
        await replica.put_verified(writer.proof(0, 2))
        state = (replica.length, replica.signature, replica.missing_ranges())
        good = writer.proof(2)
        impostor = Store(tmp_path / "x")
        fake = impostor.core(key_pair=KeyPair.generate())
        await fake.append([b"one", b"two", b"three"])
        bad = [
            replace(good, block=b"thre3"),  # corrupted block
            replace(good, signature=fake.signature),  # signature of another key
            fake.proof(2),  # a whole proof from another key
            replace(writer.proof(0), nodes=()),  # wrong proof shape
        ]
        for proof in bad:
            with pytest.raises(VerificationError):
                await replica.put_verified(proof)
        with pytest.raises(DecodeError):
            await replica.put_verified(good.encode()[:-3])
        assert (replica.length, replica.signature, replica.missing_ranges()) == state
        assert not replica.has(2)
        with pytest.raises(InvalidArgumentError):
            await writer.put_verified(good)
        await impostor.close()


async def test_equivocating_writer_is_detected(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b, Store(tmp_path / "r") as r:
        honest, twin = a.core(key_pair=kp), b.core(key_pair=kp)
        await honest.append([b"x", b"y"])
        await twin.append([b"x", b"Y"])  # same key, same fork, another log
        replica = r.core(key=kp.public_key)
        await replica.put_verified(honest.proof(1))
        with pytest.raises(VerificationError):
            await replica.put_verified(twin.proof(0))
        assert await replica.get(1) == b"y" and not replica.has(0)


async def test_fork_upgrade_keeps_shared_prefix_and_drops_the_rest(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    async with Store(tmp_path / "w") as ws, Store(tmp_path / "r") as rs:
        writer = ws.core(key_pair=kp)
        await writer.append([bytes([i]) for i in range(6)])
        replica = rs.core(key=kp.public_key)
        old_proofs = [writer.proof(i) for i in range(6)]
        for p in old_proofs:
            await replica.put_verified(p)
        snap = replica.snapshot()
        truncs: list[tuple[int, int]] = []
        replica.on_truncate(lambda n, f: truncs.append((n, f)))
        await writer.truncate(5)
        await writer.append([b"new5", b"new6"])  # roots now: [0..3], [4..5], [6]
        assert await replica.put_verified(writer.proof(6))
        assert (replica.fork, replica.length) == (1, 7)
        assert replica.tree_hash() == writer.tree_hash()
        # Blocks 0-3 sit under a root both forks share: kept. 4 and 5 were under a changed root.
        assert [replica.has(i) for i in range(7)] == [True] * 4 + [False, False, True]
        assert truncs == [(4, 1)]
        assert await snap.get(3) == bytes([3])
        with pytest.raises(BlockNotAvailableError):
            await snap.get(4)
        with pytest.raises(ForkMismatchError):
            await replica.put_verified(old_proofs[5])
        await replica.put_verified(writer.proof(5))
        assert await replica.get(5) == b"new5"
        assert replica.proof(2).encode() == writer.proof(2).encode()


@given(
    st.lists(st.binary(max_size=20), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
@settings(max_examples=25, deadline=None)
def test_any_delivery_order_rebuilds_the_log(blocks: list[bytes], rnd: random.Random) -> None:
    async def run(tmp: Path) -> None:
        kp = KeyPair.generate()
        async with Store(tmp / "w") as ws, Store(tmp / "r") as rs:
            writer = ws.core(key_pair=kp)
            replica = rs.core(key=kp.public_key)
            # The writer grows while proofs of random lengths travel in random order.
            proofs = []
            for i, block in enumerate(blocks):
                await writer.append(block)
                proofs.append(writer.proof(rnd.randrange(0, i + 1)))
            for i in range(len(blocks)):
                proofs.append(writer.proof(i))
            rnd.shuffle(proofs)
            for p in proofs:
                await replica.put_verified(p)
            assert replica.length == len(blocks)
            assert replica.tree_hash() == writer.tree_hash()
            assert replica.byte_length == writer.byte_length
            assert [await replica.get(i) for i in range(len(blocks))] == blocks
            assert replica.missing_ranges() == []
            for i in range(len(blocks)):
                assert replica.proof(i).encode() == writer.proof(i).encode()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d)))


@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.floats(0, 1), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.randoms(use_true_random=False),
)
@settings(max_examples=30, deadline=None)
def test_replica_follows_a_truncating_writer(
    rounds: list[tuple[int, float, bool]], rnd: random.Random
) -> None:
    """Whatever forks happen, a replica never keeps a block the writer no longer has."""

    async def run(tmp: Path) -> None:
        kp = KeyPair.generate()
        async with Store(tmp / "w") as ws, Store(tmp / "r") as rs:
            writer = ws.core(key_pair=kp)
            replica = rs.core(key=kp.public_key)
            await replica.ready()
            model: list[bytes] = []
            for grow, cut, truncate in rounds:
                if truncate:
                    n = int(cut * len(model))
                    await writer.truncate(n)
                    del model[n:]
                new = [
                    rnd.randbytes(rnd.randrange(4)) + bytes([len(model) + i]) for i in range(grow)
                ]
                await writer.append(new)
                model += new
                if model:  # deliver a random sample of the current fork's blocks
                    for i in rnd.sample(range(len(model)), k=min(len(model), 4)):
                        await replica.put_verified(writer.proof(i))
                else:
                    await replica.put_verified(writer.proof(None))
                assert (replica.fork, replica.length) == (writer.fork, writer.length)
                assert replica.tree_hash() == writer.tree_hash()
                for i in range(len(model)):
                    if replica.has(i):
                        assert await replica.get(i) == model[i]
                        if i % 2:  # a fresh proof fills any path node an upgrade skipped
                            await replica.put_verified(writer.proof(i))
                            assert replica.proof(i).encode() == writer.proof(i).encode()
                        with contextlib.suppress(BlockNotAvailableError):
                            assert replica.proof(i).encode() == writer.proof(i).encode()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d)))
