"""Random append / truncate / reopen sequences against a plain list."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from storage import KeyPair, Store, merkle
from storage import flat_tree as ft
from storage.hashes import signable, tree_hash
from storage.keypair import verify

op = st.one_of(
    st.tuples(st.just("append"), st.lists(st.binary(max_size=12), max_size=6)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("reopen"), st.none()),
)


@given(st.lists(op, max_size=25))
@settings(max_examples=40, deadline=None)
def test_core_behaves_like_a_list(ops: list[tuple[str, Any]]) -> None:
    kp = KeyPair.generate()

    async def check(core: Any, model: list[bytes], fork: int) -> None:
        assert (core.length, core.fork) == (len(model), fork)
        assert core.byte_length == sum(map(len, model))
        assert [await core.get(i) for i in range(len(model))] == model
        _, roots = merkle.append([], 0, model)
        assert core.tree_hash() == tree_hash(roots)
        verify(kp.public_key, signable(core.tree_hash(), len(model), fork), core.signature)
        assert core.missing_ranges() == [] and core.contiguous_length == len(model)
        # On disk: exactly the blocks and the complete tree nodes, nothing stale.
        with core._store.read() as txn:
            nodes = [int.from_bytes(k[4:], "big") for k, _ in core._scan(txn, "nodes", 0, None)]
            blocks = [int.from_bytes(k[4:], "big") for k, _ in core._scan(txn, "blocks", 0, None)]
        spans = [ft.spans(r) for r in ft.full_roots(2 * len(model))]
        assert nodes == [i for a, b in spans for i in range(a, b + 1)]
        assert blocks == list(range(len(model)))

    async def run(path: Path) -> None:
        model: list[bytes] = []
        fork = 0
        store = Store(path)
        core = store.core(key_pair=kp)
        await core.ready()
        for name, arg in ops:
            if name == "append":
                assert await core.append(arg) == len(model) + len(arg)
                model.extend(arg)
            elif name == "truncate":
                n = int(arg * len(model))
                await core.truncate(n)
                del model[n:]
                fork += 1
            else:
                await store.close()
                store = Store(path)
                core = store.core(key=kp.public_key)
                await core.ready()
            await check(core, model, fork)
        await store.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d)))
