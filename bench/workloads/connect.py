"""Issue #5 on our side: time to a connection, and one stream's throughput, on a testnet.

Mirrors bench/reference/connect.js: a server swarm joins a topic; each trial is
a fresh client swarm (fresh key pair), so no connection or cache is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from bench.stats import percentile
from bench.workloads.common import MB, Result, now, on_loop, rate, trials

CHUNK = 64 * 1024
TIMEOUT = 30.0
HOST = "127.0.0.1"
CLIENT = {"ephemeral": True}  # like hyperdht's testnet.createNode(): clients join no table


class _Sink:
    """The server side: counts every byte of every stream it accepts."""

    def __init__(self) -> None:
        self.received = 0
        self.changed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def on_connection(self, conn: Any) -> None:
        task = asyncio.create_task(self._drain(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain(self, conn: Any) -> None:
        try:
            while True:
                stream = await conn.accept_stream()
                async for chunk in stream:
                    self.received += len(chunk)
                    self.changed.set()
        except Exception:  # a closed connection ends its reader; the figures say the rest
            return

    async def wait_for(self, total: int) -> None:
        while self.received < total:
            self.changed.clear()
            await self.changed.wait()

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _client(bootstrap: list[tuple[str, int]]) -> AsyncIterator[Any]:
    """A fresh client swarm, bootstrapped, as the JS side awaits fullyBootstrapped()."""
    from swarm import Swarm

    async with Swarm(bootstrap=bootstrap, host=HOST, dht_options=CLIENT) as client:
        await client.dht.ready()
        yield client


async def server_record(client: Any, topic: bytes, key: bytes) -> Any:
    """The server's record, from a whole lookup of ``topic`` (the lookup result a dial
    starts from)."""
    found = None
    async for peer in client.dht.lookup(topic):
        if peer.public_key == key:
            found = peer
    if found is None:
        raise RuntimeError("lookup did not find the server")
    return found


async def connect_trial(bootstrap: list[tuple[str, int]], topic: bytes, key: bytes) -> float:
    """From a lookup result (the server's record) to an open connection.

    ``Swarm.connect`` takes a key alone and does its own lookup, so the record is
    handed to the dialer the swarm itself uses for discovered peers (private, the
    one way to start from a lookup result, as hyperdht's ``connect(key,
    { relayAddresses })`` does on the JS side).
    """
    async with _client(bootstrap) as client:
        found = await server_record(client, topic, key)
        start = now()
        async with asyncio.timeout(TIMEOUT):
            await client._dial_once(found.public_key, found)
        return (now() - start) * 1000


async def connect_key_trial(bootstrap: list[tuple[str, int]], key: bytes) -> float:
    """``Swarm.connect(public_key)``: by key alone, its own lookup included."""
    async with _client(bootstrap) as client:
        start = now()
        async with asyncio.timeout(TIMEOUT):
            await client.connect(key)
        return (now() - start) * 1000


async def join_trial(bootstrap: list[tuple[str, int]], topic: bytes) -> float:
    """From ``join`` (a fresh client swarm, bootstrapped) to its first connection."""
    async with _client(bootstrap) as client:
        start = now()
        async with asyncio.timeout(TIMEOUT):
            client.join(topic, server=False, client=True)
            async for _ in client.connections():
                break
        return (now() - start) * 1000


async def _stream_trial(
    bootstrap: list[tuple[str, int]], key: bytes, sink: _Sink, megabytes: int
) -> float:
    from swarm import Swarm

    total = megabytes * MB
    chunk = os.urandom(CHUNK)
    async with Swarm(bootstrap=bootstrap, host=HOST, dht_options=CLIENT) as client:
        conn = await client.connect(key)
        stream = await conn.open_stream()
        base = sink.received
        start = now()
        sent = 0
        while sent < total:
            piece = chunk if sent + CHUNK <= total else chunk[: total - sent]
            stream.write(piece)
            await stream.drain()
            sent += len(piece)
        stream.write_eof()
        await sink.wait_for(base + total)
        mbps = rate(total / MB, now() - start)
        stream.close()
        return mbps


async def _network(size: int, p: dict[str, Any], first: bool, m: dict[str, float]) -> None:
    from dht.testnet import testnet
    from swarm import Swarm

    async with testnet(size=size) as net:
        bootstrap = list(net.bootstrap)
        if any(host != "127.0.0.1" for host, _ in bootstrap):
            raise RuntimeError("refusing a non-loopback bootstrap")
        topic = os.urandom(32)
        sink = _Sink()
        async with Swarm(bootstrap=bootstrap, host=HOST) as server:
            server.on_connection(sink.on_connection)
            await server.listen()
            await server.join(topic, server=True, client=False).flushed()
            key = server.public_key
            connect = await trials(p, lambda: connect_trial(bootstrap, topic, key))
            m[f"connect_p50_ms@{size}"] = percentile(connect, 50)
            m[f"connect_p95_ms@{size}"] = percentile(connect, 95)
            by_key = await trials(p, lambda: connect_key_trial(bootstrap, key))
            m[f"connect_key_p50_ms@{size}"] = percentile(by_key, 50)
            m[f"connect_key_p95_ms@{size}"] = percentile(by_key, 95)
            join = await trials(p, lambda: join_trial(bootstrap, topic))
            m[f"join_p50_ms@{size}"] = percentile(join, 50)
            m[f"join_p95_ms@{size}"] = percentile(join, 95)
            if first:
                m["stream_mbps"] = await _stream_trial(bootstrap, key, sink, p["stream_mb"])
            await sink.close()


async def _run(p: dict[str, Any]) -> Result:
    m: dict[str, float] = {}
    for index, size in enumerate(p["sizes"]):
        await _network(size, p, index == 0, m)
    return {"metrics": m, "info": {}}


def run(p: dict[str, Any]) -> Result:
    return on_loop(_run, p)
