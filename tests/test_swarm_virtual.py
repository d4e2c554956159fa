"""Swarm on the virtual network: round trips counted in virtual time, where only the
wire's latency moves the clock."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from helpers import until

from nat.simulation import Simulation
from nat.virtual_time import virtual_time
from storage.keypair import KeyPair
from swarm import Swarm
from swarm.swarm import key_topic

ONE_WAY = 0.025


@virtual_time
async def test_a_dial_from_a_lookup_result_takes_one_relayed_round_trip() -> None:
    loop = asyncio.get_running_loop()
    async with Simulation(latency=ONE_WAY, jitter=0.0) as sim:
        await sim.start(5)
        options = {"clock": loop.wall_time}
        server = Swarm(sim.bootstrap, host=sim.net.add_host(), network=sim.net, dht_options=options)
        client = Swarm(sim.bootstrap, host=sim.net.add_host(), network=sim.net, dht_options=options)
        async with server, client:
            await server.listen()
            await client.dht.ready()
            found = await client.dht.find_peer(key_topic(server.public_key), server.public_key)
            assert found is not None
            start = loop.time()
            conn = await client._dial_once(server.public_key, found[0])
            elapsed = loop.time() - start
            # client -> relay -> server -> relay -> client, the QUIC handshake's first
            # flights inside: no QUIC round trip after it, and no token round trip
            # between relay and server
            assert elapsed == pytest.approx(4 * ONE_WAY, abs=0.005)
            assert conn.remote_public_key == server.public_key
            stream = await conn.open_stream()
            stream.write(b"hello")
            stream.write_eof()
            await until(lambda: server.get_connection(client.public_key) is not None)
            accepted = server.get_connection(client.public_key)
            assert accepted is not None
            assert await (await accepted.accept_stream()).read() == b"hello"


def record_hand_overs(swarm: Swarm) -> list[float]:
    """When each lookup record is handed to the swarm's dialer (virtual time)."""
    times: list[float] = []
    dial_once = swarm._dial_once
    loop = asyncio.get_running_loop()

    def spy(key: bytes, record: Any, holder: Any = None) -> Any:
        times.append(loop.time())
        return dial_once(key, record, holder)

    swarm._dial_once = spy  # type: ignore[method-assign]
    return times


@virtual_time
async def test_a_join_connects_one_relayed_round_trip_after_its_first_record() -> None:
    # On 100 nodes a fresh client's first record often comes from a node other than
    # the three relays it names, before the lookup reached those: asked first, one of
    # them would want a token (another round trip); the node that answered forwards.
    loop = asyncio.get_running_loop()
    options = {"clock": loop.wall_time}
    topic = bytes(range(32))
    async with Simulation(latency=ONE_WAY, jitter=0.0, seed=7) as sim:
        await sim.start(100)
        server = Swarm(
            sim.bootstrap,
            KeyPair.from_seed(bytes(32)),
            host=sim.net.add_host(),
            network=sim.net,
            dht_options=options,
        )
        async with server:
            await server.join(topic, server=True, client=False).flushed()
            for i in range(1, 11):
                client = Swarm(
                    sim.bootstrap,
                    KeyPair.from_seed(bytes([i]) * 32),
                    host=sim.net.add_host(),
                    network=sim.net,
                    dht_options={**options, "ephemeral": True},
                )
                async with client:
                    await client.dht.ready()
                    handed = record_hand_overs(client)
                    client.join(topic, server=False, client=True)
                    async with contextlib.aclosing(client.connections()) as conns:
                        conn = await anext(conns)
                    assert conn.remote_public_key == server.public_key
                    assert loop.time() - handed[0] == pytest.approx(4 * ONE_WAY, abs=0.005)
