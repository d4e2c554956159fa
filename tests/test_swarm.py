"""Swarm over a local DHT on 127.0.0.1: connect by key, by topic, dedup, firewall, churn."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aioquic.quic.packet import QuicPacketType
from helpers import packet_types, until

from dht import node as dht_node
from dht.errors import RequestTimeoutError
from dht.node import DHTNode
from dht.records import PeerRecord
from dht.testnet import testnet
from dht.transport import Address
from storage.errors import ClosedError, DecodeError, PeerswarmError
from storage.keypair import KeyPair
from swarm import Swarm, handshake, relayed_handshake
from swarm.admission import Admission
from swarm.connection import Connection
from swarm.errors import ConnectionClosedError, PeerNotFoundError, PeerRejectedError
from swarm.handshake import ConnectReply, ConnectRequest, ReplyStatus
from swarm.local_host import is_loopback, is_this_host, local_ips
from swarm.quic_options import QuicOptions
from swarm.relayed_handshake import HEDGE
from swarm.swarm import _dial_order, key_topic

FAST = QuicOptions(idle_timeout=2.0, keepalive=0.5, handshake_timeout=3.0)


@pytest.fixture
async def bootstrap() -> AsyncIterator[list[Address]]:
    async with testnet(size=5) as net:
        yield net.bootstrap


@pytest.fixture
async def make(bootstrap: list[Address]) -> AsyncIterator[Callable[..., Any]]:
    swarms: list[Swarm] = []

    async def factory(**kwargs: Any) -> Swarm:
        kwargs.setdefault("options", FAST)
        swarm = Swarm(bootstrap, host="127.0.0.1", **kwargs)
        await swarm.start()
        swarms.append(swarm)
        return swarm

    yield factory
    for swarm in swarms:
        await swarm.close()


@pytest.fixture
def one_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hedging: a handshake asks one relay, however slow it is on a loaded machine
    (a test that counts screenings or relays must not see a hedge's second one)."""
    monkeypatch.setattr(relayed_handshake, "HEDGE", 30.0)


async def first_connection(swarm: Swarm) -> Connection:
    async with contextlib.aclosing(swarm.connections()) as conns:
        async for conn in conns:
            return conn
    raise AssertionError("swarm closed")


def quic_dials(swarm: Swarm) -> list[Address]:
    """Where ``swarm`` starts QUIC handshakes from now on (recorded, then done as usual)."""
    dials: list[Address] = []
    connect = swarm._endpoint.connect

    async def recording(addr: Address, key: bytes, **kwargs: Any) -> Connection:
        dials.append(addr)
        return await connect(addr, key, **kwargs)

    swarm._endpoint.connect = recording  # type: ignore[method-assign]
    return dials


async def test_connect_by_public_key(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    announced: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    async def on_connection(conn: Connection) -> None:  # async callbacks are awaited
        await asyncio.sleep(0)
        announced.set_result(conn)

    server.on_connection(on_connection)
    await server.listen()
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    accepted = await asyncio.wait_for(first_connection(server), 5)
    assert await asyncio.wait_for(announced, 5) is accepted
    assert conn.remote_public_key == server.public_key
    assert accepted.remote_public_key == client.public_key
    assert conn.is_initiator and not accepted.is_initiator and not conn.relayed
    assert conn.remote_address == server.dht.address  # QUIC on the DHT socket

    stream = await conn.open_stream()
    stream.write(b"over the swarm")
    stream.write_eof()
    incoming = await accepted.accept_stream()
    assert await incoming.read() == b"over the swarm"

    # one connection per peer: connecting again (even concurrently) reuses it
    again = await asyncio.gather(*(client.connect(server.public_key) for _ in range(3)))
    assert all(c is conn for c in again)
    assert [p.public_key for p in client.peers if p.connected] == [server.public_key]


async def test_concurrent_first_connects_share_one_dial(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    conns = await asyncio.wait_for(
        asyncio.gather(*(client.connect(server.public_key) for _ in range(4))), 10
    )
    assert len({id(c) for c in conns}) == 1
    assert len(server._endpoint.connections) == 1


async def test_a_cancelled_connect_leaves_the_shared_dial_to_the_others(
    make: Callable[..., Any],
) -> None:
    server, client = await make(), await make()
    await server.listen()
    first = asyncio.ensure_future(client.connect(server.public_key))
    second = asyncio.ensure_future(client.connect(server.public_key))
    await asyncio.sleep(0)
    first.cancel()
    conn = await asyncio.wait_for(second, 10)
    assert first.cancelled()
    assert conn.is_established and conn.remote_public_key == server.public_key
    assert not client._dial_waiters


async def test_connect_during_close_raises_closed(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    dialing = asyncio.ensure_future(client.connect(server.public_key))
    await asyncio.sleep(0)
    await client.close()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(dialing, 5)


@pytest.mark.usefixtures("one_relay")
async def test_connect_by_key_handshakes_through_the_node_that_answered(
    make: Callable[..., Any],
) -> None:
    server, client = await make(), await make()
    await server.listen()
    asked = asked_relays(client)
    found = await client.dht.find_peer(key_topic(server.public_key), server.public_key)
    assert found is not None and found[1] is not None
    await asyncio.wait_for(client.connect(server.public_key), 10)
    assert len(asked) == 1  # one relay, asked once: it held the announcement
    assert asked[0][1]  # and we held its token when we asked (no round trip for one)


async def test_join_handshakes_through_the_node_that_answered_with_the_record(
    make: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's record names no relay at all: only the node a lookup heard the
    # record from (it holds the announcement, and we its token) can forward to it.
    monkeypatch.setattr(dht_node, "RELAYS_PER_RECORD", 0)
    server, client = await make(), await make()
    topic = os.urandom(32)
    await server.join(topic, server=True, client=False).flushed()
    async with contextlib.aclosing(client.dht.lookup(topic)) as found:
        assert (await anext(found)).relay_addresses == ()
    asked = asked_relays(client)
    client.join(topic, server=False, client=True)
    conn = await asyncio.wait_for(first_connection(client), 10)
    assert conn.remote_public_key == server.public_key
    assert asked and asked[0][1]  # the first relay asked: one whose token we held


async def test_handshake_gets_past_dead_and_unknowing_relays(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    async with contextlib.aclosing(client.dht.lookup(key_topic(server.public_key))) as found:
        record = await anext(found)
    # Relays we hold a token for go first: a dead one (asked alone until the hedge
    # delay runs out), then a live one that holds no announcement (fails at once).
    dead, unknowing = DHTNode(host="127.0.0.1"), DHTNode(host="127.0.0.1")
    for node in (dead, unknowing):
        await node.start()
        await client.dht.ping(node.address)
    await dead.close()
    try:
        relays = [dead.address, unknowing.address, *record.relay_addresses]
        forged = PeerRecord.sign(key_topic(server.public_key), server.key_pair, relays, 1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn = await asyncio.wait_for(client._dial_once(server.public_key, forged), 10)
        assert conn.remote_public_key == server.public_key
        assert HEDGE <= loop.time() - start < 1.0  # no relay timeout was waited out
    finally:
        await unknowing.close()


def quic_sent(swarm: Swarm) -> list[list[QuicPacketType]]:
    """The packet types of each QUIC datagram ``swarm`` sends from now on."""
    sent: list[list[QuicPacketType]] = []
    send = swarm._endpoint._send

    def recording(data: bytes, addr: Address) -> None:
        sent.append(packet_types(data))
        send(data, addr)

    swarm._endpoint._send = recording
    return sent


def asked_relays(swarm: Swarm) -> list[tuple[Address, bool]]:
    """Each relay ``swarm`` asks from now on, and whether it held that relay's token
    at the moment it asked."""
    asked: list[tuple[Address, bool]] = []
    tap_forward(swarm, on_request=lambda via, _: asked.append((via, swarm.dht.has_token(via))))
    return asked


def tap_forward(
    swarm: Swarm,
    on_request: Callable[[Address, bytes], None] | None = None,
    on_reply: Callable[[bytes], None] | None = None,
) -> None:
    """Watch the relayed handshakes ``swarm`` sends: ``on_request(via, payload)`` may
    raise a PeerswarmError to fail that attempt as a relay would; ``on_reply(reply)``."""
    forward_call = swarm.dht.forward_call

    def tapped(via: Address, key: bytes, payload: bytes, callback: Any) -> Any:
        if on_request is not None:
            try:
                on_request(via, payload)
            except PeerswarmError as e:
                asyncio.get_running_loop().call_soon(callback, None, e)
                return lambda: None

        def done(reply: bytes | None, error: PeerswarmError | None) -> None:
            if reply is not None and on_reply is not None:
                on_reply(reply)
            callback(reply, error)

        return forward_call(via, key, payload, done)

    swarm.dht.forward_call = tapped  # type: ignore[method-assign]


async def test_quic_handshake_starts_inside_the_relayed_handshake(
    make: Callable[..., Any],
) -> None:
    server, client = await make(), await make()
    await server.listen()
    sent = quic_sent(client)
    requests: list[ConnectRequest] = []
    replies: list[ConnectReply] = []
    tap_forward(
        client,
        on_request=lambda via, payload: requests.append(handshake.decode_request(payload)),
        on_reply=lambda reply: replies.append(handshake.decode_reply(reply)),
    )
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    assert conn.remote_public_key == server.public_key
    assert len(requests) == 1 and requests[0].quic  # our Initial rode along
    assert len(replies) == 1 and replies[0].quic  # and the server's answer came back
    # so the first datagram sent to the server already finishes the handshake
    assert QuicPacketType.HANDSHAKE in sent[0]


async def test_server_without_an_early_answer_gets_the_initial_directly(
    make: Callable[..., Any],
) -> None:
    server, client = await make(), await make()
    await server.listen()
    server._endpoint.accept_early = lambda datagram, addr: b""  # type: ignore[method-assign]
    sent = quic_sent(client)
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    assert conn.remote_public_key == server.public_key
    assert sent[0] == [QuicPacketType.INITIAL]


async def test_relays_dropping_large_messages_get_the_handshake_without_quic(
    make: Callable[..., Any],
) -> None:
    server, client = await make(), await make()
    await server.listen()
    sizes: list[int] = []

    def small_only(via: Address, payload: bytes) -> None:
        sizes.append(len(payload))
        if len(payload) > 1000:  # as a path with a small MTU would: no answer at all
            raise RequestTimeoutError("no reply")

    tap_forward(client, on_request=small_only)
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    assert conn.remote_public_key == server.public_key
    assert sizes[0] > 1000 and sizes[-1] < 1000
    # the early half was dropped at once, not at its handshake timeout (3 s)
    async with asyncio.timeout(1):
        await until(lambda: len(client._endpoint._cids) == 1)


async def test_unknown_key_is_not_found(make: Callable[..., Any]) -> None:
    client = await make()
    with pytest.raises(PeerNotFoundError):
        await asyncio.wait_for(client.connect(os.urandom(32)), 10)


async def test_a_closed_swarm_withdraws_its_announcement(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    await server.close()
    with pytest.raises(PeerNotFoundError):
        await asyncio.wait_for(client.connect(server.public_key), 10)


async def test_firewall_rejects_in_the_relayed_handshake(make: Callable[..., Any]) -> None:
    seen: list[bytes] = []
    server = await make(firewall=lambda key: seen.append(key) or False)
    client = await make()
    dials = quic_dials(client)
    await server.listen()
    with pytest.raises(PeerRejectedError, match="refused the handshake: rejected by firewall"):
        await asyncio.wait_for(client.connect(server.public_key), 10)
    assert seen == [client.public_key]
    assert dials == []  # refused before any QUIC
    assert client.get_connection(server.public_key) is None


@pytest.mark.usefixtures("one_relay")
async def test_async_firewall_in_the_relayed_handshake(make: Callable[..., Any]) -> None:
    good, bad = await make(), await make()
    seen: list[bytes] = []

    async def firewall(key: bytes) -> bool:
        seen.append(key)
        await asyncio.sleep(0.05)  # a real check would look something up
        return key == good.public_key

    server = await make(firewall=firewall)
    await server.listen()
    bad_dials, good_dials = quic_dials(bad), quic_dials(good)
    with pytest.raises(PeerRejectedError, match="refused the handshake: rejected by firewall"):
        await asyncio.wait_for(bad.connect(server.public_key), 10)
    assert bad_dials == []
    conn = await asyncio.wait_for(good.connect(server.public_key), 10)
    assert conn.remote_public_key == server.public_key and len(good_dials) == 1
    accepted = await asyncio.wait_for(first_connection(server), 5)
    assert accepted.remote_public_key == good.public_key
    assert [c.remote_public_key for c in server._endpoint.connections] == [good.public_key]
    assert seen == [bad.public_key, good.public_key]  # once each: the ticket spared a rerun


async def test_client_lying_about_its_key_is_refused(
    make: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    friend = KeyPair.generate().public_key
    seen: list[bytes] = []
    server = await make(firewall=lambda key: seen.append(key) or key == friend)
    liar = await make()
    await server.listen()
    encode = handshake.encode_request

    def claim_to_be_friend(request: ConnectRequest) -> bytes:
        return encode(dataclasses.replace(request, client_key=friend))

    monkeypatch.setattr(handshake, "encode_request", claim_to_be_friend)
    # the relayed handshake admits the claimed key; QUIC proves another one. The
    # refusal comes right after the handshake: connect() may still be returning
    error: Exception | None = None
    try:
        conn = await asyncio.wait_for(liar.connect(server.public_key), 10)
    except PeerRejectedError as e:
        error = e
    else:  # it came back before the refusal: the refusal closes it
        await asyncio.wait_for(conn.wait_closed(), 5)
        error = conn.close_error
        with pytest.raises(PeerRejectedError):
            await conn.open_stream()
    assert "differs from the key its handshake claimed" in str(error)
    assert seen == [friend]  # the liar's real key never got a firewall call of its own
    assert server._connections == {} and server._endpoint.connections == []
    assert liar.get_connection(server.public_key) is None


async def test_stream_written_right_after_connect_arrives(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    stream = await conn.open_stream()  # the server may not have checked our proof yet
    stream.write(b"first words")
    stream.write_eof()
    accepted = await asyncio.wait_for(first_connection(server), 5)
    assert accepted.remote_public_key == client.public_key
    incoming = await asyncio.wait_for(accepted.accept_stream(), 5)
    assert await incoming.read() == b"first words"
    incoming.write(b"heard you")
    incoming.write_eof()
    assert await asyncio.wait_for(stream.read(), 5) == b"heard you"
    assert conn.is_accepted


async def test_direct_dial_is_screened_and_waits_for_accept(make: Callable[..., Any]) -> None:
    loop = asyncio.get_running_loop()
    verdicts: dict[bytes, asyncio.Future[bool]] = {}
    both_asked = asyncio.Event()

    async def firewall(key: bytes) -> bool:
        verdicts[key] = loop.create_future()
        if len(verdicts) == 2:
            both_asked.set()
        return await verdicts[key]

    server = await make(firewall=firewall)
    await server.listen()
    good, bad = await make(), await make()
    # by address, with no relayed handshake: no ticket, so QUIC asks the firewall
    dial_good = asyncio.ensure_future(good._endpoint.connect(server.dht.address, server.public_key))
    dial_bad = asyncio.ensure_future(bad._endpoint.connect(server.dht.address, server.public_key))
    await asyncio.wait_for(both_asked.wait(), 5)
    await asyncio.sleep(0.05)
    assert not dial_good.done() and not dial_bad.done()  # both wait for the verdict
    verdicts[bad.public_key].set_result(False)
    verdicts[good.public_key].set_result(True)
    with pytest.raises(PeerRejectedError, match="rejected by firewall"):
        await asyncio.wait_for(dial_bad, 5)
    conn = await asyncio.wait_for(dial_good, 5)
    assert conn.is_accepted and conn.remote_public_key == server.public_key


def test_connect_request_and_reply_round_trip() -> None:
    admission = Admission(bytes(range(16)), 256 * 1024)
    for reply in (
        ConnectReply(ReplyStatus.OK, (("127.0.0.1", 5),), admission=admission),
        ConnectReply(ReplyStatus.OK, admission=admission, quic=os.urandom(1200)),
        ConnectReply(ReplyStatus.REJECTED, reason="rejected by firewall"),
    ):
        assert handshake.decode_reply(handshake.encode_reply(reply)) == reply
    keys = os.urandom(32), os.urandom(32)
    request = ConnectRequest(*keys, (("127.0.0.1", 5),), os.urandom(1200))
    assert handshake.decode_request(handshake.encode_request(request)) == request
    too_big = bytes(handshake.MAX_FLIGHT + 1)
    with pytest.raises(DecodeError):
        handshake.decode_request(
            handshake.encode_request(dataclasses.replace(request, quic=too_big))
        )
    with pytest.raises(DecodeError):
        handshake.decode_reply(handshake.encode_reply(ConnectReply(ReplyStatus.OK, quic=too_big)))
    for bad in (Admission(bytes(15), 256 * 1024), Admission(bytes(16), 1)):  # short, tiny
        wire = handshake.encode_reply(ConnectReply(ReplyStatus.OK, admission=bad))
        with pytest.raises(DecodeError):
            handshake.decode_reply(wire)


async def test_topic_connects_every_pair_once(make: Callable[..., Any]) -> None:
    topic = os.urandom(32)
    swarms = [await make() for _ in range(4)]
    seen: dict[bytes, list[bytes]] = {s.public_key: [] for s in swarms}

    for s in swarms:

        def record(conn: Connection, s: Swarm = s) -> None:
            seen[s.public_key].append(conn.remote_public_key)

        s.on_connection(record)

    discoveries = [s.join(topic) for s in swarms]
    for d in discoveries:
        await asyncio.wait_for(d.flushed(), 10)
    # a second lookup round finds the peers that announced after our first one
    await asyncio.wait_for(asyncio.gather(*(d.refresh() for d in discoveries)), 10)
    # once every dial settled, each side has seen both connections of a pair that
    # both dialed, and closed the same duplicate
    await asyncio.wait_for(asyncio.gather(*(s.flush() for s in swarms)), 10)
    for a in swarms:
        for b in swarms:
            if a is b:
                continue
            ab, ba = a.get_connection(b.public_key), b.get_connection(a.public_key)
            assert ab is not None and ba is not None
            assert ab.is_initiator != ba.is_initiator  # the two ends of one QUIC connection
            assert ab.remote_address == b.dht.address or ba.remote_address == a.dht.address
        assert set(seen[a.public_key]) == {s.public_key for s in swarms} - {a.public_key}
        open_keys = {k for k, c in a._connections.items() if not c.is_closed}
        assert open_keys == {s.public_key for s in swarms} - {a.public_key}


async def test_client_only_join_connects_to_servers(make: Callable[..., Any]) -> None:
    topic = os.urandom(32)
    server, client = await make(), await make()
    await asyncio.wait_for(server.join(topic, server=True, client=False).flushed(), 10)
    await asyncio.wait_for(client.join(topic, server=False, client=True).flushed(), 10)
    await asyncio.wait_for(client.flush(), 10)
    conn = client.get_connection(server.public_key)
    assert conn is not None and conn.is_initiator
    await asyncio.wait_for(first_connection(server), 5)

    await server.leave(topic)
    late = await make()
    await asyncio.wait_for(late.join(topic, server=False, client=True).flushed(), 10)
    await late.flush()
    assert late.get_connection(server.public_key) is None


async def test_vanished_peer_is_noticed(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    conn = await asyncio.wait_for(client.connect(server.public_key), 10)
    stream = await conn.open_stream()
    stream.write(b"?")
    server._endpoint.abort()  # the peer's QUIC state is gone, nothing is said
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(stream.read(), 6)
    assert loop.time() - started < FAST.idle_timeout + 1.5
    assert client.get_connection(server.public_key) is None


async def test_join_peer_reconnects(make: Callable[..., Any]) -> None:
    server, client = await make(), await make()
    await server.listen()
    client.join_peer(server.public_key)
    first = await asyncio.wait_for(first_connection(server), 10)
    await first.close(reason="go away once")
    async with contextlib.aclosing(server.connections()) as conns:
        async for conn in conns:
            if conn is not first:
                break
    assert conn.remote_public_key == client.public_key and not conn.is_closed
    client.leave_peer(server.public_key)


async def test_twenty_clients_and_a_large_transfer_by_key(make: Callable[..., Any]) -> None:
    server = await make()
    await server.listen()
    clients = [await make() for _ in range(20)]

    async def serve(conn: Connection) -> None:
        stream = await conn.accept_stream()
        digest, n = hashlib.sha256(), 0
        async for chunk in stream:
            digest.update(chunk)
            n += len(chunk)
        stream.write(n.to_bytes(8, "big") + digest.digest())
        stream.write_eof()

    server.on_connection(serve)

    async def send(client: Swarm, size: int) -> None:
        conn = await client.connect(server.public_key)
        stream = await conn.open_stream()
        block = os.urandom(64 * 1024)
        digest = hashlib.sha256()
        for _ in range(size // len(block)):
            stream.write(block)
            digest.update(block)
            await stream.drain()
        stream.write_eof()
        reply = await stream.readexactly(40)
        assert reply == size.to_bytes(8, "big") + digest.digest()

    # one 24 MB transfer alongside 19 small ones, all to one server
    sizes = [24 * 1024 * 1024] + [128 * 1024] * 19
    await asyncio.wait_for(
        asyncio.gather(*(send(c, n) for c, n in zip(clients, sizes, strict=True))), 60
    )
    assert {c.remote_public_key for c in server._connections.values()} == {
        c.public_key for c in clients
    }


async def test_full_server_says_busy(make: Callable[..., Any]) -> None:
    server = await make(max_peers=1)
    await server.listen()
    first, second = await make(), await make()
    await asyncio.wait_for(first.connect(server.public_key), 10)
    await asyncio.wait_for(first_connection(server), 5)
    dials = quic_dials(second)
    with pytest.raises(PeerRejectedError, match="refused the handshake: too many connections"):
        await asyncio.wait_for(second.connect(server.public_key), 10)
    assert dials == []  # refused before any QUIC


async def test_wildcard_bound_swarms_meet_over_loopback(bootstrap: list[Address]) -> None:
    async with Swarm(bootstrap, options=FAST) as server, Swarm(bootstrap, options=FAST) as client:
        await server.listen()
        conn = await asyncio.wait_for(client.connect(server.public_key), 10)
        assert conn.remote_address == ("127.0.0.1", server.dht.address[1])
        # the client's early handshake was sized for remote peers: it told the server
        # to drop that half (at once, not at its 3 s handshake timeout) and dialed afresh
        async with asyncio.timeout(1):
            await until(lambda: len(server._endpoint._cids) == 1)


def test_dial_order_keeps_loopback_for_peers_on_this_host() -> None:
    here = local_ips()[0]
    assert _dial_order([("127.0.0.1", 5), ("127.0.0.1", 5)]) == [("127.0.0.1", 5)]
    assert _dial_order([("203.0.113.7", 5), (here, 5), ("127.0.0.1", 5)]) == [
        ("127.0.0.1", 5),
        ("203.0.113.7", 5),
        (here, 5),
    ]
    # someone else's loopback is useless to us
    assert _dial_order([("203.0.113.7", 5), ("198.51.100.9", 5), ("127.0.0.1", 5)]) == [
        ("203.0.113.7", 5),
        ("198.51.100.9", 5),
    ]


def test_which_hosts_are_this_machine() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1"):
        assert is_loopback((host, 1)) and is_this_host((host, 1))
    here = local_ips()[0]
    assert is_this_host((here, 1)) and is_loopback((here, 1)) == here.startswith("127.")
    for host in ("203.0.113.7", "2001:db8::1", "not an address", ""):
        assert not is_loopback((host, 1)) and not is_this_host((host, 1))
