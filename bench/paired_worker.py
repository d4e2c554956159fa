"""``python -m bench.paired_worker PARAMS_JSON``: our side of ``python -m bench.paired``.

Builds one network (``kind`` dht, connect, key or join, ``size`` nodes), runs
``warmup`` untimed trials, prints ``ready``, then answers each stdin line ``N`` with a
JSON list of N trial times in ms; ``0`` or end of input closes everything. The trials
are the ones ``python -m bench dht|connect`` times (announce then lookup; lookup
result -> open connection; connect by key; join -> connection), on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bench.workloads import connect, lookup

Trial = Callable[[], Awaitable[float]]


@contextlib.asynccontextmanager
async def _dht(size: int) -> AsyncIterator[Trial]:
    from dht import DHTNode
    from dht.testnet import testnet

    async with testnet(size=size) as net:
        lookup.check_loopback(net.bootstrap)
        async with (
            DHTNode(bootstrap=net.bootstrap, host=connect.HOST, ephemeral=True) as announcer,
            DHTNode(bootstrap=net.bootstrap, host=connect.HOST, ephemeral=True) as looker,
        ):
            await announcer.ready()
            await looker.ready()

            async def trial() -> float:
                ms, _, _ = await lookup.trial(announcer, looker)
                return ms

            yield trial


@contextlib.asynccontextmanager
async def _server(size: int) -> AsyncIterator[tuple[list[tuple[str, int]], bytes, bytes]]:
    """A testnet with a server swarm on a topic: (bootstrap, topic, the server's key)."""
    from dht.testnet import testnet
    from swarm import Swarm

    async with testnet(size=size) as net:
        bootstrap = list(net.bootstrap)
        lookup.check_loopback(bootstrap)
        topic = os.urandom(32)
        async with Swarm(bootstrap=bootstrap, host=connect.HOST) as server:
            await server.listen()
            await server.join(topic, server=True, client=False).flushed()
            yield bootstrap, topic, server.public_key


@contextlib.asynccontextmanager
async def _connect(size: int) -> AsyncIterator[Trial]:
    async with _server(size) as (bootstrap, topic, key):
        yield lambda: connect.connect_trial(bootstrap, topic, key)


@contextlib.asynccontextmanager
async def _key(size: int) -> AsyncIterator[Trial]:
    async with _server(size) as (bootstrap, _, key):
        yield lambda: connect.connect_key_trial(bootstrap, key)


@contextlib.asynccontextmanager
async def _join(size: int) -> AsyncIterator[Trial]:
    async with _server(size) as (bootstrap, topic, _):
        yield lambda: connect.join_trial(bootstrap, topic)


NETWORKS = {"dht": _dht, "connect": _connect, "key": _key, "join": _join}


async def serve(p: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    async with NETWORKS[p["kind"]](p["size"]) as trial:
        for _ in range(p.get("warmup", 0)):
            await trial()
        print("ready", flush=True)
        while count := int((await loop.run_in_executor(None, sys.stdin.readline)) or 0):
            print(json.dumps([await trial() for _ in range(count)]), flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.paired_worker PARAMS_JSON", file=sys.stderr)
        return 2
    from dht import event_loop

    params: dict[str, Any] = json.loads(argv[0])
    event_loop.run(serve(params), params.get("loop"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
