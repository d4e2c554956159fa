"""Swarm on the virtual network: round trips counted in virtual time, where only the
wire's latency moves the clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import until

from dht.transport import Address
from nat.simulation import Simulation
from nat.virtual_time import virtual_time
from storage.errors import ClosedError
from storage.keypair import KeyPair
from swarm import HandshakeError, PeerRejectedError, Swarm
from swarm.peer_info import PeerInfo
from swarm.swarm import QUERY_HEDGE, key_topic

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


def finds(swarm: Swarm) -> list[bytes]:
    """The keys ``swarm`` asks the DHT for, from now on (each a query toward the key)."""
    keys: list[bytes] = []
    find_peer = swarm.dht.find_peer

    async def spy(topic: bytes, public_key: bytes) -> Any:
        keys.append(public_key)
        return await find_peer(topic, public_key)

    swarm.dht.find_peer = spy  # type: ignore[method-assign]
    return keys


@contextlib.asynccontextmanager
async def listening_pair(**server_options: Any) -> AsyncIterator[tuple[Simulation, Swarm, Swarm]]:
    """Five DHT nodes at ``ONE_WAY``, then a listening server and a client on hosts of
    their own."""
    options = {"clock": asyncio.get_running_loop().wall_time}
    async with Simulation(latency=ONE_WAY, jitter=0.0) as sim:
        await sim.start(5)
        server = Swarm(
            sim.bootstrap,
            host=sim.net.add_host(),
            network=sim.net,
            dht_options=options,
            **server_options,
        )
        client = Swarm(sim.bootstrap, host=sim.net.add_host(), network=sim.net, dht_options=options)
        async with server, client:
            await server.listen()
            await client.dht.ready()
            yield sim, server, client


async def reconnect(server: Swarm, client: Swarm) -> float:
    """Close the client's connection, wait till the server saw it go, connect again:
    the seconds (virtual) the second connect took."""
    conn = client.get_connection(server.public_key)
    assert conn is not None
    await conn.close()
    await until(lambda: server.get_connection(client.public_key) is None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    conn = await client.connect(server.public_key)
    assert conn.remote_public_key == server.public_key
    return loop.time() - start


async def met_through(
    server: Swarm, client: Swarm, relay: Address | None = None
) -> tuple[PeerInfo, Address]:
    """Connect once; then the client's record of the server names one relay only:
    ``relay``, or the first one it named. Returns the client's PeerInfo and that relay."""
    await client.connect(server.public_key)
    peer = next(p for p in client.peers if p.public_key == server.public_key)
    assert peer.record is not None
    relay = relay or peer.record.relay_addresses[0]
    peer.record = dataclasses.replace(peer.record, relay_addresses=(relay,))
    peer.holder = None
    return peer, relay


@virtual_time
async def test_a_peer_seen_before_is_dialed_through_its_last_relays_with_no_query() -> None:
    loop = asyncio.get_running_loop()
    async with listening_pair() as (_sim, server, client):
        asked = finds(client)
        start = loop.time()
        await client.connect(server.public_key)
        # the query's round trip to a node near the key, then the relayed one
        assert loop.time() - start == pytest.approx(6 * ONE_WAY, abs=0.005)
        assert asked == [server.public_key]
        # the record it found names the relays: client -> relay -> server -> relay ->
        # client, and nothing asked of the DHT
        assert await reconnect(server, client) == pytest.approx(4 * ONE_WAY, abs=0.005)
        assert asked == [server.public_key]


@pytest.mark.parametrize("relay", ["dead", "not holding it"])
@virtual_time
async def test_when_the_last_relays_cannot_forward_a_connect_asks_the_dht(relay: str) -> None:
    async with listening_pair() as (sim, server, client):
        if relay == "dead":
            gone = (sim.net.add_host(), 4000)  # nothing answers there
            budget = QUERY_HEDGE  # silent for that long: the DHT is asked alongside
        else:
            gone = (await sim.add_node()).address  # joined after the announcement
            budget = 4 * ONE_WAY  # asks for a token, then hears "unknown target"
        peer, _ = await met_through(server, client, gone)
        asked = finds(client)
        took = await reconnect(server, client)
        assert asked == [server.public_key]
        assert took == pytest.approx(budget + 6 * ONE_WAY, abs=0.005)
        # the record the query found replaces the stale one
        assert peer.record is not None and gone not in peer.record.relay_addresses


@virtual_time
async def test_a_reconnect_through_a_slow_relay_takes_the_dht_s_answer_if_it_comes_first() -> None:
    slow = 0.5  # one way, between the client and the relay of its last record
    async with listening_pair() as (sim, server, client):
        _, relay = await met_through(server, client)  # alive, holds the announcement
        sim.net.set_link(client.dht.address[0], relay[0], latency=slow)
        asked = finds(client)
        took = await reconnect(server, client)
        # the relay would answer after 2 * slow + 2 * ONE_WAY; the query began
        # alongside after QUERY_HEDGE, and its answer, through a near node, won
        assert asked == [server.public_key]
        assert took == pytest.approx(QUERY_HEDGE + 6 * ONE_WAY, abs=0.005)
        assert took < 2 * slow + 2 * ONE_WAY


@pytest.mark.parametrize("after", [QUERY_HEDGE / 2, QUERY_HEDGE + ONE_WAY])
@virtual_time
async def test_closing_the_swarm_during_a_reconnect_ends_it_cleanly(after: float) -> None:
    """Before the query starts and while it runs beside the relays: the connect raises
    ClosedError, and no task is left behind with an error nobody saw."""
    loop = asyncio.get_running_loop()
    stray: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: stray.append(context))
    async with listening_pair() as (sim, server, client):
        await met_through(server, client, (sim.net.add_host(), 4000))  # a dead relay
        conn = client.get_connection(server.public_key)
        assert conn is not None
        await conn.close()
        connecting = asyncio.ensure_future(client.connect(server.public_key))
        await asyncio.sleep(after)
        assert not connecting.done()
        await client.close()
        with pytest.raises(ClosedError, match="closed while connecting"):
            await connecting
    assert stray == []


@virtual_time
async def test_a_peer_that_refuses_through_its_last_relays_is_not_looked_up_again() -> None:
    async with listening_pair(firewall=lambda key: False) as (_sim, server, client):
        asked = finds(client)
        for _ in range(2):
            with pytest.raises(PeerRejectedError, match="rejected by firewall"):
                await client.connect(server.public_key)
        assert asked == [server.public_key]


@virtual_time
async def test_a_connect_to_a_crashed_peer_fails_after_a_few_round_trip_timeouts() -> None:
    loop = asyncio.get_running_loop()
    async with listening_pair() as (sim, server, client):
        sim.net.remove_host(server.dht.address[0])  # gone; its announcement stays
        start = loop.time()
        with pytest.raises(HandshakeError, match="no relay could reach the peer"):
            await client.connect(server.public_key)
        # Each relay gives the peer a few timeouts fitted to its round trips (0.25 s
        # at least), where a fixed second each took 5.4 s.
        assert loop.time() - start < 2.0


@virtual_time
async def test_a_peer_whose_firewall_thinks_for_seconds_is_still_reached() -> None:
    """The relay retransmits as for any peer, and the peer, alive, answers PENDING until
    its app decided: slow is not taken for dead."""
    loop = asyncio.get_running_loop()

    async def firewall(key: bytes) -> bool:
        await asyncio.sleep(3.0)
        return True

    async with listening_pair(firewall=firewall) as (_sim, server, client):
        start = loop.time()
        conn = await client.connect(server.public_key)
        assert conn.remote_public_key == server.public_key
        assert 3.0 < loop.time() - start < 3.5
