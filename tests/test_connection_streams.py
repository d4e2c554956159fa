"""Streams over real QUIC on 127.0.0.1: many streams, big transfers, flow control, resets."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from dht.transport import Address
from swarm.connection import CloseCode, Connection
from swarm.errors import ConnectionClosedError, StreamResetError
from swarm.quic_endpoint import QuicEndpoint, Send
from swarm.quic_options import QuicOptions
from swarm.standalone_endpoint import StandaloneEndpoint
from swarm.stream import Stream

Pair = tuple[Connection, Connection]


async def connect_pair(
    options: QuicOptions | None = None, client_class: type[Connection] = Connection
) -> AsyncIterator[Pair]:
    options = options or QuicOptions(handshake_timeout=3)
    async with (
        StandaloneEndpoint(options=options) as server,
        StandaloneEndpoint(options=options) as client,
    ):
        accepted: asyncio.Queue[Connection] = asyncio.Queue()
        server.endpoint.on_connection = accepted.put_nowait
        client.endpoint.connection_class = client_class
        conn = await client.connect(server.address, server.public_key)
        yield conn, await accepted.get()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async for p in connect_pair():
        yield p


async def test_many_concurrent_streams_each_echo(pair: Pair) -> None:
    client, server = pair

    async def serve() -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(100):
                s = await server.accept_stream()

                async def echo(s: Stream = s) -> None:
                    async for chunk in s:
                        s.write(chunk)
                        await s.drain()
                    s.write_eof()

                tg.create_task(echo())

    async def one(i: int) -> None:
        payload = os.urandom(1000 + 97 * i)
        s = await client.open_stream()
        s.write(payload)
        s.write_eof()
        assert await s.read() == payload
        await s.wait_closed()

    serving = asyncio.ensure_future(serve())
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 30)
    await serving
    assert client._streams == {} and server._streams == {}  # finished streams are forgotten


async def test_stream_ids_are_recycled_over_many_sequential_streams(pair: Pair) -> None:
    client, server = pair

    async def serve() -> None:
        for _ in range(300):
            s = await server.accept_stream()
            s.write(await s.read())
            s.write_eof()
            await s.wait_closed()

    serving = asyncio.ensure_future(serve())
    for i in range(300):  # more than QUIC's initial 128-stream limit
        s = await client.open_stream()
        s.write(i.to_bytes(2, "big"))
        s.write_eof()
        assert await asyncio.wait_for(s.read(), 5) == i.to_bytes(2, "big")
    await serving


async def test_large_transfer_keeps_integrity(pair: Pair) -> None:
    client, server = pair
    size, chunk = 32 * 1024 * 1024, os.urandom(64 * 1024)
    sent = hashlib.sha256()

    async def receive() -> None:
        s = await server.accept_stream()
        got, n = hashlib.sha256(), 0
        async for data in s:
            got.update(data)
            n += len(data)
        s.write(n.to_bytes(8, "big") + got.digest())
        s.write_eof()

    receiving = asyncio.ensure_future(receive())
    s = await client.open_stream()
    for i in range(size // len(chunk)):
        block = i.to_bytes(4, "big") + chunk[4:]
        sent.update(block)
        s.write(block)
        await s.drain()
    s.write_eof()
    reply = await asyncio.wait_for(s.readexactly(40), 60)
    await receiving
    assert int.from_bytes(reply[:8], "big") == size
    assert reply[8:] == sent.digest()


@pytest.mark.parametrize("datagram_size", [1350, 64000])
async def test_packets_fill_the_datagram_size_of_the_path(datagram_size: int) -> None:
    """Loopback packets go beyond aioquic's 16 KiB frame limit (several frames each)."""
    options = QuicOptions(handshake_timeout=3, loopback_datagram_size=datagram_size)
    payload = os.urandom(2 * 1024 * 1024)
    async for client, server in connect_pair(options):
        sizes: list[int] = []
        endpoint = client._host
        assert isinstance(endpoint, QuicEndpoint)
        send = endpoint._send

        def recording_send(
            data: bytes, addr: Address, sizes: list[int] = sizes, send: Send = send
        ) -> None:
            sizes.append(len(data))
            send(data, addr)

        endpoint._send = recording_send
        s = await client.open_stream()
        s.write(payload)
        s.write_eof()
        incoming = await server.accept_stream()
        assert await asyncio.wait_for(incoming.read(), 10) == payload
        assert max(sizes) <= datagram_size
        if datagram_size > 16 * 1024:
            assert max(sizes) > 16 * 1024
            assert len(sizes) < len(payload) // (16 * 1024)


async def test_slow_reader_holds_back_the_writer() -> None:
    window = 64 * 1024
    options = QuicOptions(stream_window=window, write_high_water=16 * 1024, handshake_timeout=3)
    async for client, server in connect_pair(options):
        data = os.urandom(1024 * 1024)
        s = await client.open_stream()
        s.write(data)
        incoming = await server.accept_stream()
        drain = asyncio.ensure_future(s.drain())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(drain), 0.3)
        # the reader holds at most one window; the rest waits at the writer
        assert incoming._in_len <= window
        assert s._sent <= window
        s.write_eof()
        assert await asyncio.wait_for(incoming.read(), 10) == data
        await drain


async def test_reader_closing_stops_the_writer(pair: Pair) -> None:
    client, server = pair
    s = await client.open_stream()
    s.write(b"first" + os.urandom(200 * 1024))  # more than we read: some is still in flight
    incoming = await server.accept_stream()
    assert await incoming.readexactly(5) == b"first"
    incoming.close()  # no more reading: the peer gets STOP_SENDING
    with pytest.raises(ConnectionClosedError):
        await incoming.read()
    # the writer learns it (STOP_SENDING) and sees the reader's FIN: its stream is over
    await asyncio.wait_for(s.wait_closed(), 3)
    assert await s.read() == b""
    with pytest.raises(StreamResetError):
        s.write(b"more")
    with pytest.raises(StreamResetError):
        await s.drain()
    await asyncio.wait_for(incoming.wait_closed(), 2)
    # data that was in flight on the stopped stream never shows up as a new stream
    fresh = await client.open_stream()
    fresh.write(b"next")
    fresh.write_eof()
    nxt = await asyncio.wait_for(server.accept_stream(), 3)
    assert nxt.stream_id == fresh.stream_id
    assert await nxt.read() == b"next"


async def test_abort_resets_the_peer_reader(pair: Pair) -> None:
    client, server = pair
    s = await client.open_stream()
    s.write(b"partial")
    incoming = await server.accept_stream()
    assert await incoming.readexactly(7) == b"partial"
    s.abort()
    with pytest.raises(StreamResetError):
        await asyncio.wait_for(incoming.read(), 3)
    with pytest.raises(ConnectionClosedError):
        s.write(b"x")


async def test_concurrent_acceptors_each_get_a_stream(pair: Pair) -> None:
    client, server = pair
    acceptors = [asyncio.ensure_future(server.accept_stream()) for _ in range(3)]
    acceptors[0].cancel()  # one gives up; the others keep waiting
    for i in range(2):
        s = await client.open_stream()
        s.write(bytes([i]))
    streams = await asyncio.wait_for(asyncio.gather(*acceptors[1:]), 3)
    assert sorted([await s.readexactly(1) for s in streams]) == [b"\x00", b"\x01"]


async def test_protocol_labels_route_streams_to_their_acceptor(pair: Pair) -> None:
    client, server = pair
    app = await client.open_stream()
    app.write(b"for the app")
    app.write_eof()
    rep = await client.open_stream("replication")
    rep.write(b"for replication")
    rep.write_eof()
    # accepted in the other order, each by its own protocol
    got_rep = await asyncio.wait_for(server.accept_stream(b"replication"), 3)
    got_app = await asyncio.wait_for(server.accept_stream(), 3)
    assert (got_rep.protocol, got_app.protocol) == (b"replication", b"")
    assert await got_rep.read() == b"for replication"
    assert await got_app.read() == b"for the app"
    with pytest.raises(ValueError):
        await client.open_stream(b"x" * 256)


async def test_early_eof_gives_incomplete_read(pair: Pair) -> None:
    client, server = pair
    s = await client.open_stream()
    s.write(b"abc")
    s.write_eof()
    incoming = await server.accept_stream()
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await incoming.readexactly(10)
    assert info.value.partial == b"abc"
    with pytest.raises(ConnectionClosedError):
        s.write(b"after eof")


class GreedyConnection(Connection):
    """A peer that ignores the credit it was given."""

    def _flush_stream(self, stream: Stream) -> None:
        stream._send_limit = 1 << 60
        super()._flush_stream(stream)


async def test_peer_ignoring_flow_control_is_disconnected() -> None:
    options = QuicOptions(stream_window=64 * 1024, handshake_timeout=3)
    async for client, server in connect_pair(options, GreedyConnection):
        s = await client.open_stream()
        s.write(os.urandom(512 * 1024))
        await asyncio.wait_for(server.wait_closed(), 5)
        assert server.close_error is not None
        assert server.close_error.error_code == CloseCode.PROTOCOL_ERROR
        await asyncio.wait_for(client.wait_closed(), 5)
        assert client.close_error is not None
        assert "flow-control" in client.close_error.reason
