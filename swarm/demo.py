"""``swarm demo``: every layer at work on an embedded local network, no configuration.

Each step prints what it did and checks what it claims; a failed check is an
error (exit status 1), so the demo doubles as a smoke test a newcomer can run.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from storage.errors import PeerswarmError

Step = Callable[[Path], Awaitable[dict[str, Any]]]


class DemoCheckFailed(PeerswarmError):
    """A demo step saw something other than what it expected."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoCheckFailed(f"demo check failed: {what}")


async def core_step(root: Path) -> dict[str, Any]:
    """Create a signed log, append, verify a block against the public key alone, reopen."""
    from storage import Store
    from storage.proof import verify_proof

    blocks = [f"block {i}".encode() for i in range(1000)]
    async with Store(root / "core") as store:
        core = store.core(name="demo-log")
        await core.ready()
        t0 = time.perf_counter()
        for block in blocks[:500]:
            await core.append(block)
        await core.append(blocks[500:])
        elapsed = time.perf_counter() - t0
        key, tree_hash, signature = core.key, core.tree_hash(), core.signature
        proof = core.proof(123)
        verified = verify_proof(core.key, proof)
        _check(verified.block == blocks[123], "proof of block 123 carries block 123")
    async with Store(root / "core") as store:
        again = store.core(name="demo-log")
        await again.ready()
        _check(again.key == key, "the same name derives the same key")
        _check(again.length == len(blocks), "length survives a reopen")
        _check(again.tree_hash() == tree_hash, "tree hash survives a reopen")
        _check(await again.get(999) == blocks[999], "last block reads back")
    return {
        "key": key.hex(),
        "length": len(blocks),
        "tree_hash": tree_hash.hex(),
        "signature": signature.hex()[:32] + "...",
        "appends_per_second": round(len(blocks) / elapsed),
    }


STEPS: list[tuple[str, str, Step]] = [
    ("core", "Core: a signed, Merkle-tree append-only log in LMDB", core_step),
]


async def run_demo(as_json: bool) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="peerswarm-demo-") as tmp:
        for name, title, step in STEPS:
            if not as_json:
                click.secho(f"== {title}", bold=True)
            result = await step(Path(tmp))
            results[name] = result
            if not as_json:
                for k, v in result.items():
                    click.echo(f"   {k}: {v}")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        click.secho("demo ok: every check passed", fg="green")
