"""QUIC endpoints on plain UDP sockets (no DHT): identity checks, firewall, liveness."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator

import pytest
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.events import StreamDataReceived as QuicStreamEvent
from aioquic.quic.packet import QuicErrorCode, QuicPacketType, QuicStreamFrame
from aioquic.quic.stream import QuicStreamReceiver
from aioquic.tls import AlertDescription
from helpers import packet_types, until

from storage.errors import PeerswarmError
from storage.keypair import KeyPair
from swarm import control, jumbo_quic, peer_quic, quic_endpoint
from swarm.admission import Admission, Redemption, Tickets
from swarm.certificate import create_certificate
from swarm.connection import Connection
from swarm.errors import (
    AuthenticationError,
    ConnectionClosedError,
    HandshakeError,
    PeerRejectedError,
)
from swarm.peer_quic import PeerQuicConnection
from swarm.quic_endpoint import PREPARE_DELAY, QuicEndpoint
from swarm.quic_options import QuicOptions, quic_configuration
from swarm.standalone_endpoint import StandaloneEndpoint
from swarm.stream import Stream

FAST = QuicOptions(idle_timeout=2.0, keepalive=0.5, handshake_timeout=2.0)


class Peer:
    """A standalone endpoint that queues the connections it accepts."""

    def __init__(self, options: QuicOptions = FAST, **kwargs: object) -> None:
        self.node = StandaloneEndpoint(options=options, **kwargs)  # type: ignore[arg-type]
        self.accepted: asyncio.Queue[Connection] = asyncio.Queue()
        self.node.endpoint.on_connection = self.accepted.put_nowait

    @property
    def endpoint(self) -> QuicEndpoint:
        return self.node.endpoint


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for p in made:
        await p.node.close()


async def start(peers: list[Peer], **kwargs: object) -> Peer:
    peer = Peer(**kwargs)  # type: ignore[arg-type]
    await peer.node.open()
    peers.append(peer)
    return peer


async def test_connect_proves_both_keys_and_carries_data(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()

    assert conn.remote_public_key == server.node.public_key
    assert accepted.remote_public_key == client.node.public_key
    assert conn.is_initiator and not accepted.is_initiator
    assert not conn.relayed and not accepted.relayed
    assert conn.remote_address == server.node.address
    assert accepted.remote_address == client.node.address
    assert 0 < conn.rtt < 1

    stream = await conn.open_stream()
    stream.write(b"ping")
    stream.write_eof()
    incoming = await accepted.accept_stream()
    assert await incoming.read() == b"ping"
    assert incoming.at_eof()
    incoming.write(b"pong")
    incoming.write_eof()
    assert await stream.readexactly(4) == b"pong"
    assert await stream.read() == b""
    await asyncio.wait_for(stream.wait_closed(), 2)
    await asyncio.wait_for(incoming.wait_closed(), 2)
    assert server.endpoint.connections == [accepted]


async def test_wrong_server_key_is_refused_before_any_data(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    impostor_for = KeyPair.generate().public_key  # the key the client looked up
    with pytest.raises(AuthenticationError):
        await client.node.connect(server.node.address, impostor_for)
    assert client.endpoint.connections == []
    assert server.accepted.empty()  # the server never accepted: no Hello came


class ReplayingConnection(Connection):
    """A client that presents someone else's key with a proof from another connection."""

    stolen: control.Hello | None = None

    def _hello(self, binding: bytes) -> control.Hello:
        assert self.stolen is not None
        return self.stolen


def sent_sizes(peer: Peer) -> list[int]:
    """The size of every datagram ``peer``'s endpoint sends from now on."""
    sizes: list[int] = []
    send = peer.node._send

    def record(data: bytes, addr: tuple[str, int]) -> None:
        sizes.append(len(data))
        send(data, addr)

    peer.node.endpoint._send = record
    return sizes


@pytest.mark.parametrize("prepared", [False, True])
async def test_handshake_runs_in_small_datagrams_then_goes_jumbo(
    peers: list[Peer], prepared: bool
) -> None:
    server, client = await start(peers), await start(peers)
    if prepared:
        client.endpoint.prepare(True)
    sizes = sent_sizes(client)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()
    # a client pads every datagram with an Initial packet: to QUIC's minimum, not 64 KiB
    assert sizes and max(sizes) <= SMALLEST_MAX_DATAGRAM_SIZE
    stream = await conn.open_stream()
    stream.write(os.urandom(200_000))
    stream.write_eof()
    incoming = await accepted.accept_stream()
    assert len(await incoming.read()) == 200_000
    assert max(sizes) > 16 * 1024  # once confirmed, loopback datagrams are jumbo again


async def test_a_jumbo_packet_carries_its_stream_data_in_one_frame(
    peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = await start(peers), await start(peers)
    sizes = sent_sizes(client)
    frames: list[int] = []
    handle = QuicStreamReceiver.handle_frame

    def spy(self: QuicStreamReceiver, frame: QuicStreamFrame) -> QuicStreamEvent | None:
        frames.append(len(frame.data))
        return handle(self, frame)

    monkeypatch.setattr(QuicStreamReceiver, "handle_frame", spy)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()
    data = os.urandom(1_000_000)
    stream = await conn.open_stream()
    stream.write(data)
    stream.write_eof()
    incoming = await accepted.accept_stream()
    assert await incoming.read() == data
    data_frames = [n for n in frames if n > 1000]
    assert max(data_frames) > jumbo_quic.SHORT_LENGTH_LIMIT  # a 4-byte length
    assert len(data_frames) <= len([n for n in sizes if n > 1000])  # one per datagram


async def test_replayed_client_proof_is_refused(peers: list[Peer]) -> None:
    server, victim, attacker = await start(peers), await start(peers), await start(peers)
    # a valid proof of the victim's key, but bound to some other connection
    other_binding = os.urandom(48)
    ReplayingConnection.stolen = Connection._hello(
        await victim.node.connect(server.node.address, server.node.public_key),
        other_binding,
    )
    await server.accepted.get()
    attacker.endpoint.connection_class = ReplayingConnection
    with pytest.raises(AuthenticationError):
        await attacker.node.connect(server.node.address, server.node.public_key)
    assert server.accepted.empty()
    assert [c.remote_public_key for c in server.endpoint.connections] == [victim.node.public_key]


async def test_firewall_sees_client_key_and_rejects_cleanly(peers: list[Peer]) -> None:
    seen: list[bytes] = []

    def firewall(key: bytes) -> bool:
        seen.append(key)
        return False

    server = await start(peers, firewall=firewall)
    client = await start(peers)
    with pytest.raises(PeerRejectedError, match="rejected by firewall"):
        await client.node.connect(server.node.address, server.node.public_key)
    assert seen == [client.node.public_key]
    assert server.accepted.empty()
    assert server.endpoint.connections == []


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_firewall_may_be_plain_or_async(peers: list[Peer], kind: str) -> None:
    loop = asyncio.get_running_loop()
    verdicts: dict[bytes, asyncio.Future[bool]] = {}
    both_asked = asyncio.Event()

    async def ask(key: bytes) -> bool:
        verdicts[key] = loop.create_future()
        if len(verdicts) == 2:
            both_asked.set()
        return await verdicts[key]

    def plain(key: bytes) -> bool:
        return key == good.node.public_key

    server = await start(peers, firewall=ask if kind == "async" else plain)
    good, bad = await start(peers), await start(peers)
    target = server.node.address, server.node.public_key
    dial_good = asyncio.ensure_future(good.node.connect(*target))
    dial_bad = asyncio.ensure_future(bad.node.connect(*target))
    if kind == "async":  # both are authenticated, and wait for the verdict
        await asyncio.wait_for(both_asked.wait(), 3)
        assert not dial_good.done() and not dial_bad.done()
        assert server.endpoint.connections == []
        verdicts[bad.node.public_key].set_result(False)
        verdicts[good.node.public_key].set_result(True)
    with pytest.raises(PeerRejectedError, match="rejected by firewall"):
        await asyncio.wait_for(dial_bad, 3)
    conn = await asyncio.wait_for(dial_good, 3)
    accepted = await asyncio.wait_for(server.accepted.get(), 3)
    assert conn.is_established and accepted.remote_public_key == good.node.public_key
    assert conn.is_accepted  # no ticket: connect() waited for the server's Accept
    assert server.endpoint.connections == [accepted]


async def test_failing_async_firewall_rejects(peers: list[Peer]) -> None:
    async def broken(key: bytes) -> bool:
        raise RuntimeError("firewall bug")

    server = await start(peers, firewall=broken)
    client = await start(peers)
    with pytest.raises(PeerRejectedError, match="rejected by firewall"):
        await client.node.connect(server.node.address, server.node.public_key)
    assert server.endpoint.connections == []


async def test_connection_cap_rejects_with_reason(peers: list[Peer]) -> None:
    server = await start(peers, options=QuicOptions(max_connections=1, handshake_timeout=2))
    first, second = await start(peers), await start(peers)
    await first.node.connect(server.node.address, server.node.public_key)
    with pytest.raises(PeerRejectedError, match="too many connections"):
        await second.node.connect(server.node.address, server.node.public_key)


async def test_nobody_listening_times_out_the_handshake(peers: list[Peer]) -> None:
    client = await start(peers, options=QuicOptions(handshake_timeout=0.5))
    silent = await start(peers, accept=False)  # drops every Initial
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(HandshakeError, match="timed out"):
        await client.node.connect(silent.node.address, silent.node.public_key)
    assert loop.time() - started < 1.5


async def test_close_with_reason_reaches_the_peer(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()
    waiting = asyncio.ensure_future(accepted.accept_stream())
    await conn.close(reason="bye now")
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(waiting, 3)
    assert info.value.reason == "bye now"
    assert accepted.is_closed and conn.is_closed
    with pytest.raises(ConnectionClosedError):
        await conn.open_stream()


async def test_vanished_peer_is_detected_within_seconds(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()
    stream = await conn.open_stream()
    stream.write(b"x")
    incoming = await accepted.accept_stream()
    assert await incoming.readexactly(1) == b"x"

    # the server disappears without a word: its socket closes, nothing is sent
    server.node.abort()

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(stream.read(), 5)
    assert loop.time() - started < FAST.idle_timeout + 1.5
    assert conn.is_closed
    assert isinstance(conn.close_error, PeerswarmError)


async def test_keepalive_holds_an_idle_connection_open(peers: list[Peer]) -> None:
    options = QuicOptions(idle_timeout=1.0, keepalive=0.25, handshake_timeout=2.0)
    server, client = await start(peers, options=options), await start(peers, options=options)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    accepted = await server.accepted.get()
    await asyncio.sleep(2.5)  # idle for 2.5 idle timeouts: only the pings flow
    assert not conn.is_closed and not accepted.is_closed
    stream = await conn.open_stream()
    stream.write(b"still here")
    stream.write_eof()
    assert await (await accepted.accept_stream()).read() == b"still here"


async def test_twenty_clients_to_one_server(peers: list[Peer]) -> None:
    server = await start(peers)
    clients = [await start(peers) for _ in range(20)]

    async def echo_server() -> None:
        async def serve(conn: Connection) -> None:
            stream = await conn.accept_stream()
            stream.write(await stream.read())
            stream.write_eof()

        async with asyncio.TaskGroup() as tg:
            for _ in clients:
                tg.create_task(serve(await server.accepted.get()))

    async def one(peer: Peer) -> bytes:
        conn = await peer.node.connect(server.node.address, server.node.public_key)
        stream = await conn.open_stream()
        stream.write(peer.node.public_key)
        stream.write_eof()
        return await stream.read()

    serving = asyncio.ensure_future(echo_server())
    replies = await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), 20)
    await serving
    assert replies == [c.node.public_key for c in clients]
    keys = {c.remote_public_key for c in server.endpoint.connections}
    assert keys == {c.node.public_key for c in clients}


async def test_garbage_datagrams_do_not_hurt_the_endpoint(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    rng = __import__("random").Random(5)
    for size in (1, 5, 30, 1200, 1300, 1500):
        for _ in range(20):
            data = bytes([rng.randrange(0x40, 0x100)]) + rng.randbytes(size - 1)
            server.endpoint.datagram_received(data, ("127.0.0.1", 9))
    conn = await client.node.connect(server.node.address, server.node.public_key)
    assert conn.is_established


# -- admission tickets (the server screened the client in the relayed handshake) -------


class HeldHello(Connection):
    """A server that looks at the client's Hello only once the test says so."""

    release: asyncio.Event | None = None

    def _on_hello(self, hello: control.Hello) -> None:
        async def later() -> None:
            assert self.release is not None
            await self.release.wait()
            if not self.is_closed:
                Connection._on_hello(self, hello)
                self._transmit()

        self._held = asyncio.ensure_future(later())


def server_side(server: Peer) -> Connection:
    (conn,) = server.endpoint._cids
    return conn


async def test_ticket_holder_writes_at_once_and_the_server_holds_it_until_verified(
    peers: list[Peer],
) -> None:
    seen: list[bytes] = []
    server = await start(peers, firewall=lambda key: seen.append(key) or True)
    client = await start(peers)
    HeldHello.release = asyncio.Event()
    server.endpoint.connection_class = HeldHello
    admission = server.endpoint.admit_ahead(client.node.public_key)

    conn = await asyncio.wait_for(
        client.node.connect(server.node.address, server.node.public_key, admission=admission), 3
    )
    assert conn.is_established and not conn.is_accepted  # open before any Accept
    stream = await conn.open_stream("app")
    payload = os.urandom(3 * FAST.early_window)  # more than an unproven peer may send
    stream.write(payload)
    stream.write_eof()

    held = server_side(server)
    # the server buffers one early window (header included), no more, and hands out nothing
    await until(lambda: held._early and held._early[0]._received == FAST.early_window)
    await asyncio.sleep(0.05)
    assert held._early[0]._received == FAST.early_window and stream._out_len > 0
    assert not held.is_established and server.accepted.empty()
    with pytest.raises(AuthenticationError):
        held.remote_public_key  # noqa: B018 - nothing proven yet

    HeldHello.release.set()
    accepted = await asyncio.wait_for(server.accepted.get(), 3)
    assert accepted is held and accepted.remote_public_key == client.node.public_key
    incoming = await asyncio.wait_for(accepted.accept_stream("app"), 3)
    assert await asyncio.wait_for(incoming.read(), 3) == payload
    await until(lambda: conn.is_accepted)
    assert seen == []  # screened when the ticket was issued: no second firewall call


async def test_unproven_client_cannot_make_the_server_buffer_more(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    HeldHello.release = asyncio.Event()  # the proof is not checked before the data comes
    server.endpoint.connection_class = HeldHello
    ticket = server.endpoint.admit_ahead(client.node.public_key).ticket
    greedy = Admission(ticket, FAST.stream_window)  # ignores the early window it was given
    conn = await asyncio.wait_for(
        client.node.connect(server.node.address, server.node.public_key, admission=greedy), 3
    )
    stream = await conn.open_stream()
    stream.write(os.urandom(2 * FAST.early_window))
    await asyncio.wait_for(conn.wait_closed(), 3)
    assert conn.close_error is not None and "flow-control credit" in conn.close_error.reason
    assert server.accepted.empty()


async def test_ticket_for_another_key_is_refused_after_opening(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    claimed = KeyPair.generate().public_key  # the key the client said it had
    admission = server.endpoint.admit_ahead(claimed)

    conn = await asyncio.wait_for(
        client.node.connect(server.node.address, server.node.public_key, admission=admission), 3
    )
    try:
        stream: Stream | None = await conn.open_stream()
    except PeerRejectedError:
        stream = None  # the refusal was read in the same burst as the handshake
    else:
        stream.write(b"never delivered")
    await asyncio.wait_for(conn.wait_closed(), 3)
    assert conn.close_error is not None and "differs" in str(conn.close_error)
    assert conn.close_error.error_code == 0x101  # CloseCode.REJECTED
    with pytest.raises(PeerRejectedError, match="differs from the key its handshake claimed"):
        await conn.open_stream()
    if stream is not None:
        with pytest.raises(ConnectionClosedError, match="differs"):
            await stream.read()
    assert server.accepted.empty() and server.endpoint.connections == []


@pytest.mark.parametrize("allowed", [True, False])
async def test_unknown_ticket_means_screening_again(peers: list[Peer], allowed: bool) -> None:
    seen: list[bytes] = []
    server = await start(peers, firewall=lambda key: seen.append(key) or allowed)
    client = await start(peers)
    forged = Admission(os.urandom(16), FAST.early_window)
    conn = await asyncio.wait_for(
        client.node.connect(server.node.address, server.node.public_key, admission=forged), 3
    )
    if allowed:
        accepted = await asyncio.wait_for(server.accepted.get(), 3)
        assert accepted.remote_public_key == client.node.public_key
        await until(lambda: conn.is_accepted)
    else:
        await asyncio.wait_for(conn.wait_closed(), 3)
        with pytest.raises(PeerRejectedError, match="rejected by firewall"):
            await conn.open_stream()
    assert seen == [client.node.public_key]


def test_tickets_expire_are_bounded_and_only_the_right_key_spends_them() -> None:
    tickets = Tickets(lifetime=10.0, capacity=2)
    alice, bob, carol = (bytes([n]) * 32 for n in (1, 2, 3))
    a = tickets.issue(alice, now=0.0)
    assert tickets.redeem(a, bob, now=1.0) is Redemption.WRONG_KEY
    assert tickets.redeem(a, alice, now=1.0) is Redemption.ADMITTED  # a lie did not spend it
    assert tickets.redeem(a, alice, now=1.0) is Redemption.UNKNOWN  # single use
    b = tickets.issue(bob, now=2.0)
    tickets.issue(carol, now=3.0)
    tickets.issue(alice, now=4.0)  # over capacity: the oldest (bob's) goes
    assert len(tickets) == 2
    assert tickets.redeem(b, bob, now=4.0) is Redemption.UNKNOWN
    late = tickets.issue(bob, now=5.0)
    assert tickets.redeem(late, bob, now=15.5) is Redemption.UNKNOWN  # expired
    assert len(tickets) == 0


async def test_prepared_handshake_serves_the_next_dial_then_is_replaced(
    peers: list[Peer],
) -> None:
    server, client = await start(peers), await start(peers)
    endpoint = client.endpoint
    endpoint.prepare(True)
    prepared = endpoint._prepared[True][0]  # built before any address is known
    prepared_again = asyncio.Event()
    prepare = endpoint.prepare
    loop = asyncio.get_running_loop()
    prepared_at: list[float] = []

    def recording(local: bool) -> None:
        prepared_at.append(loop.time())
        prepare(local)
        prepared_again.set()

    endpoint.prepare = recording  # type: ignore[method-assign]

    dialed_at = loop.time()
    conn = await client.node.connect(server.node.address, server.node.public_key)
    assert conn._quic is prepared
    assert conn.remote_address == server.node.address
    await asyncio.wait_for(prepared_again.wait(), 5)
    # on a timer, out of the dial's way: the time it ran says so (a slow host's dial may
    # outlast the delay; the loop may run a timer up to its clock's resolution early)
    assert prepared_at[0] - dialed_at >= PREPARE_DELAY - 0.01
    following = endpoint._prepared[True][0]
    assert following is not prepared

    again = await client.node.connect(server.node.address, server.node.public_key)
    assert again._quic is following
    for c in (conn, again):
        stream = await c.open_stream()
        stream.write(b"hello")
        stream.write_eof()
        incoming = await (await server.accepted.get()).accept_stream()
        assert await incoming.read() == b"hello"


async def test_stale_or_outdated_prepared_handshake_is_not_used(
    peers: list[Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = await start(peers), await start(peers)
    endpoint = client.endpoint
    monkeypatch.setattr(quic_endpoint, "PREPARED_TTL", 0.05)
    endpoint.prepare(True)
    stale = endpoint._prepared[True][0]
    await asyncio.sleep(0.1)
    conn = await client.node.connect(server.node.address, server.node.public_key)
    assert conn._quic is not stale
    assert conn.is_established

    monkeypatch.setattr(quic_endpoint, "PREPARED_TTL", 30.0)
    endpoint._prepared.clear()
    endpoint.prepare(True)
    outdated = endpoint._prepared[True][0]
    endpoint.options = dataclasses.replace(FAST, keepalive=0.25)  # built under old options
    conn = await client.node.connect(server.node.address, server.node.public_key)
    assert conn._quic is not outdated
    assert conn.is_established


def datagrams_received(peer: Peer) -> list[list[QuicPacketType]]:
    """Record the packet types of every datagram that reaches ``peer``'s socket."""
    seen: list[list[QuicPacketType]] = []
    receive = peer.endpoint.datagram_received

    def spy(data: bytes, addr: tuple[str, int]) -> None:
        types = packet_types(data)
        seen.append(types)
        receive(data, addr)

    peer.endpoint.datagram_received = spy  # type: ignore[method-assign]
    return seen


async def test_early_dial_finishes_with_the_flights_carried_aside(peers: list[Peer]) -> None:
    # what a relayed handshake does: the Initial and its answer travel outside the
    # socket path, and the client's first datagram to the server ends the handshake
    server, client = await start(peers), await start(peers)
    received = datagrams_received(server)
    early = client.endpoint.dial_early(server.node.public_key, local=True)
    assert early is not None and len(early.initial) >= SMALLEST_MAX_DATAGRAM_SIZE
    answer = server.endpoint.accept_early(early.initial, client.node.address)
    assert answer
    # asked again (through a second relay): the same answer, no second connection
    assert server.endpoint.accept_early(early.initial, client.node.address) == answer
    assert len(server.endpoint._cids) == 1

    conn = await client.endpoint.connect(
        server.node.address, server.node.public_key, early=early, answer=answer
    )
    accepted = await asyncio.wait_for(server.accepted.get(), 5)
    assert conn.remote_public_key == server.node.public_key
    assert accepted.remote_public_key == client.node.public_key
    assert conn.remote_address == server.node.address
    # the client's first datagram to the server already ends the handshake (its
    # Finished, a Handshake packet): the ClientHello round trip went through the side
    assert QuicPacketType.HANDSHAKE in received[0]
    stream = await conn.open_stream()
    stream.write(b"early")
    stream.write_eof()
    assert await (await accepted.accept_stream()).read() == b"early"


async def test_early_dial_without_an_answer_sends_its_initial_itself(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    received = datagrams_received(server)
    early = client.endpoint.dial_early(server.node.public_key, local=True)
    assert early is not None
    conn = await client.endpoint.connect(server.node.address, server.node.public_key, early=early)
    assert conn.remote_public_key == server.node.public_key
    assert received[0] == [
        QuicPacketType.INITIAL
    ]  # the ClientHello, sent once the address was known


async def test_accept_early_takes_only_an_initial_while_accepting(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    early = client.endpoint.dial_early(server.node.public_key, local=True)
    assert early is not None
    server.endpoint.accepting = False
    assert server.endpoint.accept_early(early.initial, client.node.address) == b""
    server.endpoint.accepting = True
    assert server.endpoint.accept_early(b"\x00junk", client.node.address) == b""
    assert server.endpoint.accept_early(early.initial[:600], client.node.address) == b""
    assert server.endpoint._cids == {}


async def test_discarded_early_dial_closes_the_servers_half(peers: list[Peer]) -> None:
    server, client = await start(peers), await start(peers)
    early = client.endpoint.dial_early(server.node.public_key, local=True)
    assert early is not None
    assert server.endpoint.accept_early(early.initial, client.node.address)
    half = server_side(server)
    client.endpoint.discard(early, server.node.address)
    await asyncio.wait_for(half.wait_closed(), 1)  # told at once, not at its 2 s timeout
    assert early.connection.is_closed
    await until(lambda: not server.endpoint._cids and not client.endpoint._cids)


def _handshake_in_memory(server_key: KeyPair, signing_key: KeyPair) -> PeerQuicConnection:
    """Run a client/server handshake without sockets; the server's certificate carries
    ``server_key`` and its CertificateVerify is signed with ``signing_key``."""
    client_cert, client_private = create_certificate(KeyPair.generate())
    server_cert, _ = create_certificate(server_key)
    _, server_private = create_certificate(signing_key)
    options = QuicOptions()
    client = PeerQuicConnection(
        configuration=quic_configuration(
            options, is_client=True, local=True, certificate=client_cert, private_key=client_private
        )
    )
    now, client_addr, server_addr = 0.0, ("127.0.0.1", 1), ("127.0.0.1", 2)
    client.connect(server_addr, now=now)
    server = PeerQuicConnection(
        configuration=quic_configuration(
            options,
            is_client=False,
            local=True,
            certificate=server_cert,
            private_key=server_private,
        ),
        original_destination_connection_id=client.original_destination_connection_id,
    )
    for _ in range(3):  # Initial, server flight, client Finished
        for data, _ in client.datagrams_to_send(now=now):
            server.receive_datagram(data, client_addr, now=now)
        for data, _ in server.datagrams_to_send(now=now):
            client.receive_datagram(data, server_addr, now=now)
    return client


def test_certificate_verify_is_checked_with_the_certificates_key() -> None:
    """Pinning trusts the certificate's key, so the server must prove it holds that key:
    a server that shows another key's certificate but signs with its own is refused."""
    key = KeyPair.generate()
    honest = _handshake_in_memory(key, key)
    assert honest._handshake_complete
    assert isinstance(honest.tls, peer_quic._PeerTlsContext)  # libsodium checked it

    forged = _handshake_in_memory(KeyPair.generate(), key)
    assert not forged._handshake_complete
    assert forged._close_event is not None
    decrypt_error = QuicErrorCode.CRYPTO_ERROR + AlertDescription.decrypt_error
    assert forged._close_event.error_code == decrypt_error
