"""Our Core against Hypercore v10's own output: every set, every append step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage import KeyPair, Store
from storage.hashes import TREE_NAMESPACE, leaf_hash, signable
from storage.keypair import verify


async def test_every_step_matches_hypercore(
    tmp_path: Path, hypercore_vectors: dict[str, Any]
) -> None:
    assert TREE_NAMESPACE.hex() == hypercore_vectors["tree_namespace"]
    assert len(hypercore_vectors["sets"]) >= 5
    async with Store(tmp_path) as store:
        for vec in hypercore_vectors["sets"]:
            kp = KeyPair.from_seed(bytes.fromhex(vec["seed"]))
            core = store.core(key_pair=kp)
            await core.ready()
            assert core.key.hex() == vec["public_key"] == vec["core_key"]
            assert core.discovery_key.hex() == vec["discovery_key"]
            blocks = [bytes.fromhex(b) for b in vec["blocks"]]
            assert [leaf_hash(b).hex() for b in blocks] == vec["leaf_hashes"]
            steps = vec["after_each_append"]
            assert len(steps) == len(blocks)
            for block, step in zip(blocks, steps, strict=True):
                assert await core.append(block) == step["length"]
                assert core.fork == vec["fork"]
                assert core.byte_length == step["byte_length"]
                assert core.tree_hash().hex() == step["tree_hash"]
                roots = [
                    {"index": r.index, "size": r.size, "hash": r.hash.hex()} for r in core.roots()
                ]
                assert roots == step["roots"]
                assert core.signature.hex() == step["signature"]
                verify(kp.public_key, _signable(step), core.signature)
            # Past lengths stay provable: the stored nodes give the same answers.
            for step in steps:
                assert core.tree_hash(step["length"]).hex() == step["tree_hash"]


async def test_batch_append_gives_the_same_final_state(
    tmp_path: Path, hypercore_vectors: dict[str, Any]
) -> None:
    async with Store(tmp_path) as store:
        for vec in hypercore_vectors["sets"]:
            core = store.core(key_pair=KeyPair.from_seed(bytes.fromhex(vec["seed"])))
            last = vec["after_each_append"][-1]
            assert await core.append([bytes.fromhex(b) for b in vec["blocks"]]) == last["length"]
            assert core.tree_hash().hex() == last["tree_hash"]
            assert core.signature.hex() == last["signature"]


def _signable(step: dict[str, Any]) -> bytes:
    return signable(bytes.fromhex(step["tree_hash"]), step["length"], 0)
