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


async def bee_step(root: Path) -> dict[str, Any]:
    """A B-tree inside a Core: puts, a range, a batch, and an old version still readable."""
    from storage import Bee, Store

    async with Store(root / "bee") as store:
        db = Bee(store.core(name="demo-db"), key_encoding="utf-8", value_encoding="json")
        await db.ready()
        for i in range(200):
            await db.put(f"user/{i:04d}", {"id": i, "name": f"user {i}"})
        before = db.version
        async with db.batch() as b:
            for i in range(0, 200, 2):
                await b.delete(f"user/{i:04d}")
        page = [e.key async for e in db.range(gte="user/0100", lt="user/0110")]
        _check(page == [f"user/{i:04d}" for i in range(101, 110, 2)], "range after batch delete")
        old = await db.checkout(before).get("user/0100")
        _check(old is not None and old.value["id"] == 100, "checkout reads the old version")
        _check(await db.get("user/0100") is None, "the current version lost it")
        return {"version": db.version, "range": page, "version_before_batch": before}


async def dht_step(root: Path) -> dict[str, Any]:
    """A 20-node DHT on 127.0.0.1: announce a topic, find the announcer from another node."""
    from dht import DHTNode
    from dht.testnet import testnet
    from storage import KeyPair
    from swarm.topic import parse_topic

    topic = parse_topic("peerswarm demo")
    announcer = KeyPair.generate()
    async with testnet(size=20) as net:
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1") as a, DHTNode(
            bootstrap=net.bootstrap, host="127.0.0.1"
        ) as b:
            await a.announce(topic, announcer)
            t0 = time.perf_counter()
            found = None
            async for record in b.lookup(topic):
                if record.public_key == announcer.public_key:
                    found = record
                    break
            elapsed = time.perf_counter() - t0
        _check(found is not None, "lookup finds the announcer")
    return {
        "nodes": 20,
        "topic": topic.hex(),
        "found": announcer.public_key.hex(),
        "lookup_ms": round(elapsed * 1000, 1),
    }


async def connect_step(root: Path) -> dict[str, Any]:
    """Two swarms: one listens, the other dials it by public key over key-pinned QUIC."""
    from dht.testnet import testnet
    from swarm import Swarm

    async with testnet(size=10) as net, Swarm(bootstrap=net.bootstrap) as server, Swarm(
        bootstrap=net.bootstrap
    ) as client:
        async def echo(conn: Any) -> None:
            stream = await conn.accept_stream()
            data = await stream.read()
            stream.write(data[::-1])
            stream.write_eof()
            await stream.drain()

        server.on_connection(echo)
        await server.listen()
        t0 = time.perf_counter()
        conn = await client.connect(server.public_key)
        connect_ms = (time.perf_counter() - t0) * 1000
        _check(conn.remote_public_key == server.public_key, "the key we dialed answered")
        stream = await conn.open_stream()
        stream.write(b"hello over QUIC")
        stream.write_eof()
        reply = await stream.read()
        _check(reply == b"CIUQ revo olleh", "echo over the stream")
        return {
            "server": server.public_key.hex(),
            "connect_ms": round(connect_ms, 1),
            "rtt_ms": round(conn.rtt * 1000, 2),
            "reply": reply.decode(),
        }


STEPS: list[tuple[str, str, Step]] = [
    ("core", "Core: a signed, Merkle-tree append-only log in LMDB", core_step),
    ("bee", "Bee: a B-tree key-value database inside a Core", bee_step),
    ("dht", "DHT: announce a topic and look it up on a local network", dht_step),
    ("connect", "Connect: dial a peer by public key, key-pinned QUIC", connect_step),
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
