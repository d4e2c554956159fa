"""What the network cannot do to a node: forge, replay, spoof, amplify, flood, crash."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

import pytest

from dht import DHTNode
from dht.messages import Command, ErrorCode, Request, Response, decode, encode
from dht.node_id import hash32, node_id
from dht.records import (
    PeerRecord,
    Removal,
    decode_lookup_reply,
    encode_forwarded,
    encode_lookup_reply,
)
from dht.request_server import MAX_RECORDS_PER_REPLY
from dht.testnet import testnet
from dht.transport import Address, DatagramTransport, UDPNetwork
from storage.errors import InvalidArgumentError
from storage.keypair import KeyPair

FAST: dict[str, Any] = {"request_timeout": 0.2}
TOPIC = hash32(b"topic")
OTHER = hash32(b"another topic")


class RawPeer:
    """A bare UDP socket speaking the DHT codec by hand (to lie, forge and replay)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.transport: DatagramTransport | None = None

    async def open(self, host: str = "127.0.0.1") -> RawPeer:
        self.transport = await UDPNetwork().open(
            host, 0, lambda d, a: self.inbox.put_nowait((d, a))
        )
        return self

    @property
    def address(self) -> Address:
        assert self.transport is not None
        return self.transport.local_address

    async def request(self, to: Address, req: Request) -> Response:
        assert self.transport is not None
        self.transport.sendto(encode(req), to)
        async with asyncio.timeout(2.0):
            while True:
                data, _ = await self.inbox.get()
                msg = decode(data)
                if isinstance(msg, Response) and msg.tid == req.tid:
                    return msg

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def now_ms() -> int:
    return int(time.time() * 1000)


async def token_for(raw: RawPeer, node: Address) -> bytes:
    resp = await raw.request(node, Request(os.getpid() & 0xFFFF, Command.PING))
    assert resp.token is not None
    return resp.token


async def announce_raw(raw: RawPeer, node: Address, topic: bytes, value: bytes, tid: int) -> int:
    token = await token_for(raw, node)
    req = Request(tid, Command.ANNOUNCE, token=token, target=topic, value=value)
    return (await raw.request(node, req)).error


async def test_forged_replayed_and_stale_records_are_rejected() -> None:
    async with testnet(size=2, **FAST) as net:
        node = net.nodes[1].address
        kp = KeyPair.generate()
        raw = await RawPeer().open()
        try:
            ts = now_ms()
            good = PeerRecord.sign(TOPIC, kp, [("127.0.0.1", 9)], ts)
            # signed for another topic, replayed here
            elsewhere = PeerRecord.sign(OTHER, kp, [], ts)
            assert await announce_raw(raw, node, TOPIC, elsewhere.encode(), 1) == (
                ErrorCode.INVALID_SIGNATURE
            )
            # tampered relay address
            forged = PeerRecord(kp.public_key, (("6.6.6.6", 6),), ts, good.signature)
            assert await announce_raw(raw, node, TOPIC, forged.encode(), 2) == (
                ErrorCode.INVALID_SIGNATURE
            )
            assert await announce_raw(raw, node, TOPIC, good.encode(), 3) == ErrorCode.OK
            # an older record never replaces a newer one
            older = PeerRecord.sign(TOPIC, kp, [], ts - 1000)
            assert await announce_raw(raw, node, TOPIC, older.encode(), 4) == ErrorCode.STALE
            # a removal, then a replay of the record it removed
            removal = Removal.sign(TOPIC, kp, ts + 1)
            req = Request(5, Command.UNANNOUNCE, target=TOPIC, value=removal.encode())
            assert (await raw.request(node, req)).error == ErrorCode.OK
            assert await announce_raw(raw, node, TOPIC, good.encode(), 6) == ErrorCode.STALE
            # a record from long ago (past the TTL) cannot be replayed either
            ancient = PeerRecord.sign(OTHER, kp, [], ts - 3600 * 1000)
            assert await announce_raw(raw, node, OTHER, ancient.encode(), 7) == ErrorCode.STALE
            assert net.nodes[1].records.lookup(TOPIC, asyncio.get_running_loop().time()) == []
        finally:
            raw.close()


async def test_writes_need_a_token_for_the_senders_own_ip() -> None:
    async with testnet(size=2, **FAST) as net:
        node = net.nodes[1].address
        here, there = await RawPeer().open("127.0.0.1"), await RawPeer().open("127.0.0.2")
        try:
            record = PeerRecord.sign(TOPIC, KeyPair.generate(), [], now_ms())
            foreign = await token_for(there, node)  # a token issued to 127.0.0.2
            for token in (None, foreign, bytes(32)):
                req = Request(1, Command.ANNOUNCE, token=token, target=TOPIC, value=record.encode())
                assert (await here.request(node, req)).error == ErrorCode.TOKEN_REQUIRED
            value = b"immutable"
            req = Request(
                2, Command.IMMUTABLE_PUT, token=foreign, target=hash32(value), value=value
            )
            assert (await here.request(node, req)).error == ErrorCode.TOKEN_REQUIRED
        finally:
            here.close()
            there.close()


async def test_replies_to_unproven_senders_stay_small() -> None:
    async with testnet(size=3, **FAST) as net:
        holder = net.nodes[1]
        for _ in range(10):
            await net.nodes[2].announce(TOPIC, KeyPair.generate())
        raw = await RawPeer().open()
        try:
            req = Request(1, Command.LOOKUP, target=TOPIC)
            request_size = len(encode(req))
            assert raw.transport is not None
            raw.transport.sendto(encode(req), holder.address)
            data, _ = await asyncio.wait_for(raw.inbox.get(), 2)
            resp = decode(data)
            assert isinstance(resp, Response) and resp.error == ErrorCode.TOKEN_REQUIRED
            assert len(data) <= 600 and resp.value is None
            ratio = len(data) / request_size
            assert ratio < 10
            # with the token, the full answer (capped at 10 records)
            full = await raw.request(
                holder.address, Request(2, Command.LOOKUP, token=resp.token, target=TOPIC)
            )
            assert full.error == ErrorCode.OK and full.value is not None
            # forwarding without a token is refused before anything is sent on
            fwd = Request(3, Command.FORWARD, target=holder.key_pair.public_key, value=b"x" * 1000)
            answer = await raw.request(holder.address, fwd)
            assert answer.error == ErrorCode.TOKEN_REQUIRED and answer.value is None
        finally:
            raw.close()


async def test_a_forwarded_message_needs_no_token_but_cannot_amplify() -> None:
    async with testnet(size=2, **FAST) as net:
        peer = net.nodes[1]
        answers = {b"small": b"ok", b"big": b"y" * 1400}

        async def handler(payload: bytes, sender: Address) -> bytes:
            return answers[payload]

        peer.on_forward(handler)
        raw = await RawPeer().open()
        try:
            client = ("127.0.0.9", 4000)
            small = Request(
                1,
                Command.FORWARDED,
                target=peer.key_pair.public_key,
                value=encode_forwarded(client, b"small"),
            )
            # a relay seldom holds the peer's token: a reply as small as this is served
            resp = await raw.request(peer.address, small)
            assert resp.error == ErrorCode.OK and resp.value == b"ok"
            # one far bigger than the request is not: the relay learns a token instead
            big = dataclasses.replace(small, tid=2, value=encode_forwarded(client, b"big"))
            resp = await raw.request(peer.address, big)
            assert resp.error == ErrorCode.TOKEN_REQUIRED and resp.value is None
            with_token = dataclasses.replace(big, tid=3, token=resp.token)
            resp = await raw.request(peer.address, with_token)
            assert resp.error == ErrorCode.OK and resp.value == answers[b"big"]
        finally:
            raw.close()


async def test_lookup_drops_forged_records_from_a_malicious_node() -> None:
    genuine_kp, victim_kp = KeyPair.generate(), KeyPair.generate()
    genuine = PeerRecord.sign(TOPIC, genuine_kp, [], now_ms())
    replayed = PeerRecord.sign(OTHER, victim_kp, [], now_ms())  # valid, but for another topic
    bogus = PeerRecord(victim_kp.public_key, (), now_ms(), bytes(64))
    evil = await RawPeer().open()

    async def serve() -> None:
        while True:
            data, addr = await evil.inbox.get()
            msg = decode(data)
            if isinstance(msg, Request) and evil.transport is not None:
                value = None
                if msg.command == Command.LOOKUP:
                    value = encode_lookup_reply([replayed, bogus, genuine])
                reply = Response(msg.tid, addr, id=node_id(evil.address), value=value)
                evil.transport.sendto(encode(reply), addr)

    server = asyncio.get_running_loop().create_task(serve())
    try:
        async with DHTNode(bootstrap=[evil.address], host="127.0.0.1", **FAST) as node:
            found = [r async for r in node.lookup(TOPIC)]
            assert found == [genuine]
    finally:
        server.cancel()
        evil.close()


async def test_a_lookup_page_holds_the_records_after_a_key_in_key_order() -> None:
    async with testnet(size=2, **FAST) as net:
        node = net.nodes[1]
        raw = await RawPeer().open()
        try:
            keys = []
            for i in range(MAX_RECORDS_PER_REPLY + 4):
                record = PeerRecord.sign(TOPIC, KeyPair.generate(), [], now_ms())
                assert await announce_raw(raw, node.address, TOPIC, record.encode(), 10 + i) == 0
                keys.append(record.public_key)
            keys.sort()
            token = await token_for(raw, node.address)

            async def page(after: bytes | None, tid: int) -> tuple[int, list[bytes]]:
                req = Request(tid, Command.LOOKUP, token=token, target=TOPIC, value=after)
                resp = await raw.request(node.address, req)
                value = resp.value or encode_lookup_reply([])
                records = decode_lookup_reply(value, MAX_RECORDS_PER_REPLY)
                return resp.error, [r.public_key for r in records]

            assert await page(b"", 40) == (ErrorCode.OK, keys[:MAX_RECORDS_PER_REPLY])
            assert await page(keys[MAX_RECORDS_PER_REPLY - 1], 41) == (
                ErrorCode.OK,
                keys[MAX_RECORDS_PER_REPLY:],
            )
            assert await page(keys[-1], 42) == (ErrorCode.OK, [])
            error, sample = await page(None, 43)  # no cursor: a random sample, as before
            assert error == ErrorCode.OK and len(sample) == MAX_RECORDS_PER_REPLY
            assert set(sample) <= set(keys)
            assert (await page(bytes(33), 44))[0] == ErrorCode.BAD_REQUEST
        finally:
            raw.close()


async def test_other_keys_cannot_push_a_servers_record_out_of_its_own_topic() -> None:
    # Swarm.listen announces under hash32(public_key); anyone may announce there too
    async with testnet(size=2, max_records_per_topic=12, **FAST) as net:
        node = net.nodes[1]
        owner = KeyPair.generate()
        own_topic = hash32(owner.public_key)
        raw = await RawPeer().open()
        try:
            mine = PeerRecord.sign(own_topic, owner, [("127.0.0.1", 9)], now_ms())
            assert await announce_raw(raw, node.address, own_topic, mine.encode(), 1) == 0
            for i in range(20):  # a flood of other keys: over the topic's cap, and a reply's
                other = PeerRecord.sign(own_topic, KeyPair.generate(), [], now_ms())
                assert await announce_raw(raw, node.address, own_topic, other.encode(), 2 + i) == 0
            held = node.records.lookup(own_topic, asyncio.get_running_loop().time())
            assert held[0] == mine and len(held) == 1 + 12
            token = await token_for(raw, node.address)
            for tid in range(50, 55):  # every sample carries it, first
                req = Request(tid, Command.LOOKUP, token=token, target=own_topic)
                value = (await raw.request(node.address, req)).value
                assert value is not None
                sample = decode_lookup_reply(value, MAX_RECORDS_PER_REPLY)
                assert len(sample) == MAX_RECORDS_PER_REPLY and sample[0] == mine
        finally:
            raw.close()
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", **FAST) as client:
            found = await client.find_peer(own_topic, owner.public_key)
            assert found is not None and found[0] == mine


async def test_storage_per_ip_is_capped() -> None:
    async with testnet(size=2, max_records_per_ip=5, **FAST) as net:
        node = net.nodes[1]
        raw = await RawPeer().open()
        try:
            for i in range(12):
                record = PeerRecord.sign(TOPIC, KeyPair.generate(), [], now_ms())
                assert await announce_raw(raw, node.address, TOPIC, record.encode(), 10 + i) == 0
            now = asyncio.get_running_loop().time()
            assert len(node.records.lookup(TOPIC, now)) == 5  # the 5 newest
        finally:
            raw.close()


async def test_each_peer_on_one_loopback_address_has_its_own_storage_quota() -> None:
    # on a 127.0.0.1 testnet every peer has the same IP: they must not share one quota
    async with testnet(size=2, max_records_per_ip=3, **FAST) as net:
        peers = [DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", **FAST) for _ in range(6)]
        try:
            for peer in peers:
                await peer.start()
            await asyncio.gather(*(peer.ready() for peer in peers))
            keys = [KeyPair.generate() for _ in peers]
            pairs = zip(peers, keys, strict=True)
            await asyncio.gather(*(peer.announce(TOPIC, kp) for peer, kp in pairs))
            now = asyncio.get_running_loop().time()
            for node in net.nodes:
                stored = {r.public_key for r in node.records.lookup(TOPIC, now)}
                assert stored == {kp.public_key for kp in keys}
        finally:
            await asyncio.gather(*(peer.close() for peer in peers))


async def test_garbage_does_not_hurt_a_node() -> None:
    async with testnet(size=2, **FAST) as net:
        target = net.nodes[1]
        raw = await RawPeer().open()
        try:
            assert raw.transport is not None
            for i in range(300):
                first = (1, 2, 3, 15)[i % 4]
                raw.transport.sendto(bytes([first]) + os.urandom(i % 200), target.address)
            raw.transport.sendto(b"\x01" + b"\xdd\xff\xff\xff\xff", target.address)  # huge array
            # a response nobody asked for
            raw.transport.sendto(encode(Response(7, raw.address)), target.address)
            assert await net.nodes[0].ping(target.address) == net.nodes[0].address
        finally:
            raw.close()


async def test_node_lying_about_its_id_is_not_added() -> None:
    async with testnet(size=3, **FAST) as net:
        target = net.nodes[1]
        liar = await RawPeer().open()
        honest = await RawPeer().open()
        try:
            chosen = bytes(32)  # the slot the liar would like: right next to 0
            resp = await liar.request(target.address, Request(1, Command.PING, id=chosen))
            assert resp.to == liar.address and resp.id == target.id
            resp = await honest.request(
                target.address, Request(2, Command.PING, id=node_id(honest.address))
            )
            ids = {c.id for c in target.routing_table}
            assert chosen not in ids and node_id(liar.address) not in ids
            assert node_id(honest.address) in ids
        finally:
            liar.close()
            honest.close()


async def test_responses_with_a_wrong_id_are_ignored() -> None:
    liar = await RawPeer().open()
    loop = asyncio.get_running_loop()

    async def serve() -> None:
        while True:
            data, addr = await liar.inbox.get()
            msg = decode(data)
            if isinstance(msg, Request):
                assert liar.transport is not None
                liar.transport.sendto(encode(Response(msg.tid, addr, id=bytes(32))), addr)

    server = loop.create_task(serve())
    try:
        async with DHTNode(bootstrap=[liar.address], host="127.0.0.1", **FAST) as node:
            assert node.address != liar.address
            assert len(node.routing_table) == 0
    finally:
        server.cancel()
        liar.close()


async def test_unknown_commands_get_an_error_reply() -> None:
    async with testnet(size=2, **FAST) as net:
        raw = await RawPeer().open()
        try:
            resp = await raw.request(net.nodes[0].address, Request(9, 200))
            assert resp.error == ErrorCode.UNKNOWN_COMMAND
        finally:
            raw.close()


async def test_one_public_ip_with_many_ports_cannot_fill_the_routing_table() -> None:
    async with testnet(size=2, max_contacts_per_ip=3, **FAST) as net:
        node = net.nodes[1]
        assert node.routing_table.max_per_ip == 3
        for port in range(1000, 1500):  # as if 500 nodes at one public IP had answered
            node._saw_node(node_id(("8.8.8.8", port)), ("8.8.8.8", port))
        assert node.routing_table.count_ip("8.8.8.8") == 3
        # loopback is exempt (the testnet itself shares one IP)
        assert node.routing_table.count_ip("127.0.0.1") == 1
    with pytest.raises(InvalidArgumentError):
        DHTNode(max_contacts_per_ip=0)
