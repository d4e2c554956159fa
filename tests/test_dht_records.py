"""Topics, values and forwarding across a real UDP testnet on 127.0.0.1."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from helpers import until

from dht import DHTNode, LookupTrace, PeerRecord
from dht.errors import CASMismatchError, ForwardError, SeqTooLowError, UnknownTargetError
from dht.messages import Command, Request, Response, decode
from dht.node import FIRST_FIND_ALPHA
from dht.node_id import hash32
from dht.request_server import MAX_FORWARD_PAYLOAD, MAX_RECORDS_PER_REPLY
from dht.testnet import testnet
from dht.transport import Address, DatagramTransport, Receiver, UDPNetwork
from storage.errors import DecodeError, InvalidArgumentError
from storage.keypair import KeyPair

FAST: dict[str, Any] = {"request_timeout": 0.2}
TOPIC = hash32(b"chat")


async def collect(node: DHTNode, topic: bytes) -> list[PeerRecord]:
    return [r async for r in node.lookup(topic)]


async def test_announce_lookup_unannounce() -> None:
    async with testnet(size=30, **FAST) as net:
        peers = [KeyPair.generate() for _ in range(3)]
        for i, kp in enumerate(peers):
            record = await net.nodes[5 + i].announce(TOPIC, kp)
            assert record.public_key == kp.public_key and record.relay_addresses
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            found = await collect(client, TOPIC)
            assert sorted(r.public_key for r in found) == sorted(kp.public_key for kp in peers)
            for r in found:
                r.verify(TOPIC)
            await net.nodes[5].unannounce(TOPIC, peers[0])
            assert (TOPIC, peers[0].public_key) not in net.nodes[5]._announced
            left = {r.public_key for r in await collect(client, TOPIC)}
            assert left == {peers[1].public_key, peers[2].public_key}
            assert await collect(client, hash32(b"nobody here")) == []


async def test_a_lookup_finds_every_peer_of_a_topic_bigger_than_a_reply() -> None:
    # 3 nodes each hold 35 records; a reply carries a sample of 10, so three samples
    # cannot cover the topic: the lookup reads one node's records page by page
    count = 3 * MAX_RECORDS_PER_REPLY + 5
    async with testnet(size=3, max_records_per_ip=count, **FAST) as net:
        peers = [KeyPair.generate() for _ in range(count)]
        await asyncio.gather(*(net.nodes[1].announce(TOPIC, kp) for kp in peers))
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            trace = LookupTrace()
            found = [r.public_key async for r in client.lookup(TOPIC, trace)]
            assert sorted(found) == sorted(kp.public_key for kp in peers)
            assert trace.requests <= 3 + 4  # the walk's 3, and 4 pages of 10, 10, 10, 5


async def test_a_lookup_trace_counts_hops_and_requests() -> None:
    async with testnet(size=30, **FAST) as net:
        kp = KeyPair.generate()
        await net.nodes[7].announce(TOPIC, kp)
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            trace = LookupTrace()
            found = [r.public_key async for r in client.lookup(TOPIC, trace)]
            assert found == [kp.public_key]
            # heard from a node the query reached, at a hop no deeper than it queried
            assert 1 <= trace.hops[kp.public_key] <= 4
            assert 0 < trace.responses <= trace.requests
        # a node that stores the record itself finds it at hop 0
        holder = next(n for n in net.nodes if n.records.lookup(TOPIC, n._now()))
        local = LookupTrace()
        assert kp.public_key in [r.public_key async for r in holder.lookup(TOPIC, local)]
        assert local.hops[kp.public_key] == 0


async def test_lookup_streams_and_stops_when_the_consumer_does() -> None:
    async with testnet(size=10, **FAST) as net:
        for i in range(4):
            await net.nodes[i + 1].announce(TOPIC, KeyPair.generate())
        client = net.nodes[9]
        async with aclosing(client.lookup(TOPIC)) as records:
            async for _ in records:
                break  # the first record arrives before the query is over
        assert not client._tasks  # closing the iterator stopped its query


async def test_find_peer_stops_at_the_key_and_names_the_node_holding_it() -> None:
    async with testnet(size=30, **FAST) as net:
        wanted, other = KeyPair.generate(), KeyPair.generate()
        await net.nodes[3].announce(TOPIC, other)
        await net.nodes[4].announce(TOPIC, wanted)
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            sent = client._rpc.sent
            found = await client.find_peer(TOPIC, wanted.public_key)
            asked = client._rpc.sent - sent
            assert found is not None
            record, holder = found
            assert record.public_key == wanted.public_key
            record.verify(TOPIC)
            by_address = {n.address: n for n in net.nodes}
            assert holder is not None and holder in by_address  # a node that stores it
            assert by_address[holder].records.lookup(TOPIC, by_address[holder]._now())
            sent = client._rpc.sent
            full = [r async for r in client.lookup(TOPIC)]
            assert len(full) == 2
            assert 0 < asked < client._rpc.sent - sent  # it stopped at the record
            assert await client.find_peer(TOPIC, KeyPair.generate().public_key) is None
            # the queries leave nothing running: what may remain is the routing table's
            # own upkeep (pinging a full bucket's oldest node), finished or not
            upkeep = {"_ping_head", "_refresh_self", "_first_check", "_check_reachability"}
            assert all(t.get_coro().__name__ in upkeep for t in client._tasks)
        # a node that stores the record answers from its own store, without a query
        node = by_address[holder]
        sent = node._rpc.sent
        assert await node.find_peer(TOPIC, wanted.public_key) == (record, None)
        assert node._rpc.sent == sent
        with pytest.raises(InvalidArgumentError):
            await node.find_peer(TOPIC, b"short")


async def test_find_peer_asks_a_few_nodes_when_they_hold_the_record() -> None:
    """On 10 nodes every node stores the record: the first round (Kademlia's alpha of
    3, not the node's alpha of 10) is all it takes."""
    async with testnet(size=10, **FAST) as net:
        wanted = KeyPair.generate()
        await net.nodes[4].announce(TOPIC, wanted)
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            assert [r.public_key async for r in client.lookup(TOPIC)] == [wanted.public_key]
            assert client.alpha == 10  # the lookup asked all 10, and holds their tokens
            sent = client._rpc.sent
            assert await client.find_peer(TOPIC, wanted.public_key) is not None
            assert client._rpc.sent - sent <= FIRST_FIND_ALPHA
            sent = client._rpc.sent
            assert await client.find_peer(TOPIC, KeyPair.generate().public_key) is None
            assert client._rpc.sent - sent == 10  # not found: it widened to all of them


async def test_find_peers_names_the_node_that_answered_with_each_record() -> None:
    async with testnet(size=30, **FAST) as net:
        peers = [KeyPair.generate() for _ in range(3)]
        for i, kp in enumerate(peers):
            await net.nodes[3 + i].announce(TOPIC, kp)
        by_address = {n.address: n for n in net.nodes}
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as client:
            async with aclosing(client.find_peers(TOPIC)) as found:
                pairs = [pair async for pair in found]
            assert sorted(r.public_key for r, _ in pairs) == sorted(kp.public_key for kp in peers)
            for record, holder in pairs:
                assert holder is not None and client.has_token(holder)  # it answered us
                stored = by_address[holder].records.lookup(TOPIC, by_address[holder]._now())
                assert record in stored  # and holds the announcement, so it can forward
        # from a node's own store: no holder to name
        node = next(n for n in net.nodes if n.records.lookup(TOPIC, n._now()))
        async with aclosing(node.find_peers(TOPIC)) as found:
            assert (await anext(found))[1] is None


async def test_records_expire_without_refresh() -> None:
    async with (
        testnet(size=6, record_ttl=0.6, **FAST) as net,
        DHTNode(
            bootstrap=net.bootstrap, host="127.0.0.1", announce_interval=60, **FAST
        ) as announcer,
    ):
        await announcer.announce(TOPIC)
        assert [r.public_key for r in await collect(net.nodes[3], TOPIC)] == [
            announcer.key_pair.public_key
        ]
        await asyncio.sleep(0.8)  # the TTL is what we test: time has to pass
        assert await collect(net.nodes[3], TOPIC) == []


async def test_records_are_refreshed_before_they_expire_until_close() -> None:
    async with testnet(size=6, record_ttl=0.6, **FAST) as net:
        announcer = await net.add_node(record_ttl=0.6, **FAST)  # refreshes every 0.3 s
        first = await announcer.announce(TOPIC)
        await asyncio.sleep(1.5)  # 2.5 TTLs
        found = await collect(net.nodes[2], TOPIC)
        assert len(found) == 1 and found[0].timestamp > first.timestamp
        await announcer.close()
        await asyncio.sleep(0.8)
        assert await collect(net.nodes[2], TOPIC) == []


async def test_immutable_values() -> None:
    async with testnet(size=10, **FAST) as net:
        key = await net.nodes[1].immutable_put(b"hello world")
        assert key == hash32(b"hello world")
        assert await net.nodes[8].immutable_get(key) == b"hello world"
        assert await net.nodes[8].immutable_get(hash32(b"missing")) is None
        with pytest.raises(InvalidArgumentError):
            await net.nodes[1].immutable_put(b"x" * 1001)
        assert await net.nodes[7].immutable_get(await net.nodes[2].immutable_put(b"y" * 1000))


async def test_mutable_values_seq_and_cas() -> None:
    async with testnet(size=10, **FAST) as net:
        kp = KeyPair.generate()
        writer, reader = net.nodes[2], net.nodes[7]
        v0 = await writer.mutable_put(kp, b"zero")
        assert v0.seq == 0
        got = await reader.mutable_get(kp.public_key)
        assert got is not None and (got.seq, got.value) == (0, b"zero")
        v1 = await writer.mutable_put(kp, b"one")  # seq defaults to highest + 1
        assert v1.seq == 1
        with pytest.raises(SeqTooLowError):
            await reader.mutable_put(kp, b"stale", seq=0)
        with pytest.raises(SeqTooLowError):
            await reader.mutable_put(kp, b"conflict", seq=1)
        with pytest.raises(CASMismatchError):
            await reader.mutable_put(kp, b"two", seq=2, cas=0)
        v2 = await reader.mutable_put(kp, b"two", seq=2, cas=1)
        got = await writer.mutable_get(kp.public_key)
        assert got == v2
        # salts give one key many independent values
        await writer.mutable_put(kp, b"salted", salt=b"profile")
        salted = await reader.mutable_get(kp.public_key, salt=b"profile")
        assert salted is not None and salted.value == b"salted" and salted.seq == 0
        assert await reader.mutable_get(KeyPair.generate().public_key) is None


async def test_forward_round_trip_through_the_node_holding_the_announcement() -> None:
    async with testnet(size=10, **FAST) as net:
        server, client = net.nodes[4], net.nodes[8]
        seen: list[Address] = []

        async def handler(payload: bytes, sender: Address) -> bytes:
            seen.append(sender)
            return b"hello " + payload

        server.on_forward(handler)
        # reachable by public key alone: announce under BLAKE2b(public key)
        by_key = hash32(server.key_pair.public_key)
        await server.announce(by_key)
        records = await collect(client, by_key)
        assert [r.public_key for r in records] == [server.key_pair.public_key]
        via = records[0].relay_addresses[0]
        reply = await client.forward(via, server.key_pair.public_key, b"client")
        assert reply == b"hello client" and seen == [client.address]

        with pytest.raises(UnknownTargetError):
            await client.forward(via, KeyPair.generate().public_key, b"nobody")
        with pytest.raises(InvalidArgumentError):
            await client.forward(via, server.key_pair.public_key, b"x" * (MAX_FORWARD_PAYLOAD + 1))

        async def failing(payload: bytes, sender: Address) -> bytes:
            raise RuntimeError("the app failed")

        server.on_forward(failing)
        with pytest.raises(ForwardError):
            await client.forward(via, server.key_pair.public_key, b"client")
        server.on_forward(None)
        with pytest.raises(ForwardError):
            await client.forward(via, server.key_pair.public_key, b"client")

        # a plain function answers as well (at once: no task between request and reply)
        server.on_forward(lambda payload, sender: b"plain " + payload)
        assert await client.forward(via, server.key_pair.public_key, b"client") == b"plain client"

        # the callback form: reply or error, once; a cancelled one never calls back
        outcomes: list[tuple[bytes | None, type | None]] = []

        def outcome(reply: bytes | None, error: Exception | None) -> None:
            outcomes.append((reply, None if error is None else type(error)))

        # the cancelled one goes first: its reply (relay, server, relay) is back before
        # the one that takes the same path after it
        client.forward_call(via, server.key_pair.public_key, b"never", outcome)()
        client.forward_call(via, server.key_pair.public_key, b"cb", outcome)
        client.forward_call(via, KeyPair.generate().public_key, b"cb", outcome)
        await until(lambda: len(outcomes) == 2)
        assert sorted(outcomes, key=str) == sorted(
            [(b"plain cb", None), (None, UnknownTargetError)], key=str
        )

        def failing_plain(payload: bytes, sender: Address) -> bytes:
            raise RuntimeError("the app failed")

        for bad in (failing_plain, lambda payload, sender: b"x" * (MAX_FORWARD_PAYLOAD + 1)):
            server.on_forward(bad)
            with pytest.raises(ForwardError):
                await client.forward(via, server.key_pair.public_key, b"client")


class _TappedTransport:
    def __init__(self, inner: DatagramTransport, net: LoseReplies) -> None:
        self._inner = inner
        self._net = net

    @property
    def local_address(self) -> Address:
        return self._inner.local_address

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._net.passes(data, self.local_address, addr):
            self._inner.sendto(data, addr)

    def close(self) -> None:
        self._inner.close()


class LoseReplies:
    """Real UDP that loses the first reply carrying ``value`` sent from ``sender``, and
    counts the FORWARDED requests sent (retransmissions included) after that loss."""

    def __init__(self) -> None:
        self.value = b""
        self.sender: Address | None = None
        self.lost = 0
        self.forwarded_after_loss = 0

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        return _TappedTransport(await UDPNetwork().open(host, port, receiver), self)

    def passes(self, data: bytes, src: Address, dst: Address) -> bool:
        try:
            msg = decode(data)
        except DecodeError:
            return True
        if isinstance(msg, Request) and msg.command == Command.FORWARDED:
            self.forwarded_after_loss += self.lost
        lose = isinstance(msg, Response) and msg.value == self.value and src == self.sender
        if lose and self.lost == 0:
            self.lost += 1
            return False
        return True


async def _forward_losing_one_reply(lose_at: str) -> tuple[bytes, list[bytes], LoseReplies]:
    """Forward once while the first reply from the target (``lose_at="target"``) or the
    relay (``"relay"``) is lost; (reply, payloads the handler saw, the network)."""
    net_tap = LoseReplies()
    async with testnet(size=6, network=net_tap, **FAST) as net:
        server, client = net.nodes[2], net.nodes[5]
        calls: list[bytes] = []

        async def handler(payload: bytes, sender: Address) -> bytes:
            calls.append(payload)
            return b"reply %d" % len(calls)

        server.on_forward(handler)
        by_key = hash32(server.key_pair.public_key)
        record = await server.announce(by_key)
        via = next(a for a in record.relay_addresses if a not in (server.address, client.address))
        net_tap.value = b"reply 1"
        net_tap.sender = server.address if lose_at == "target" else via
        reply = await client.forward(via, server.key_pair.public_key, b"once")
        assert net_tap.lost == 1
        return reply, calls, net_tap


async def test_a_lost_reply_from_the_target_does_not_run_its_handler_twice() -> None:
    reply, calls, net_tap = await _forward_losing_one_reply("target")
    assert reply == b"reply 1" and calls == [b"once"]
    assert net_tap.forwarded_after_loss == 1  # the relay retransmitted; answered from cache


async def test_a_lost_reply_from_the_relay_is_resent_without_forwarding_again() -> None:
    reply, calls, net_tap = await _forward_losing_one_reply("relay")
    assert reply == b"reply 1" and calls == [b"once"]
    assert net_tap.forwarded_after_loss == 0  # the client retransmitted; answered from cache
