"""Swarm on the virtual network: round trips counted in virtual time, where only the
wire's latency moves the clock."""

from __future__ import annotations

import asyncio

import pytest
from helpers import until

from nat.simulation import Simulation
from nat.virtual_time import virtual_time
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
