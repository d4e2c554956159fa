"""Graceful close over real QUIC on 127.0.0.1: written data arrives before the goodbye."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from helpers import until

from swarm.connection import CloseCode, Connection
from swarm.errors import ConnectionClosedError
from swarm.quic_options import QuicOptions
from swarm.standalone_endpoint import StandaloneEndpoint
from swarm.stream import Stream

OPTIONS = QuicOptions(handshake_timeout=3)
SIZE = 3 * 1024 * 1024  # well over the initial stream window: part waits for credit


@dataclass
class Pair:
    server: StandaloneEndpoint
    client: StandaloneEndpoint
    conn: Connection  # the client's
    accepted: Connection  # the server's


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with (
        StandaloneEndpoint(options=OPTIONS) as server,
        StandaloneEndpoint(options=OPTIONS) as client,
    ):
        accepted: asyncio.Queue[Connection] = asyncio.Queue()
        server.endpoint.on_connection = accepted.put_nowait
        conn = await client.connect(server.address, server.public_key)
        yield Pair(server, client, conn, await accepted.get())


async def read_all(stream: Stream) -> tuple[bytes, int]:
    digest, size = hashlib.sha256(), 0
    async for chunk in stream:
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size


@pytest.mark.parametrize("how", ["connection", "endpoint"])
async def test_close_right_after_a_large_write_delivers_everything(pair: Pair, how: str) -> None:
    payload = os.urandom(SIZE)
    stream = await pair.conn.open_stream()
    stream.write(payload)
    stream.write_eof()
    # the peer's app reads only after the close began: credit still flows while closing
    closing = asyncio.ensure_future(
        pair.conn.close("done") if how == "connection" else pair.client.close()
    )
    incoming = await pair.accepted.accept_stream()
    digest, size = await asyncio.wait_for(read_all(incoming), 10)
    await asyncio.wait_for(closing, 5)

    assert size == SIZE
    assert digest == hashlib.sha256(payload).digest()
    assert pair.conn.is_closed
    await asyncio.wait_for(pair.accepted.wait_closed(), 3)
    error = pair.accepted.close_error
    assert error is not None and error.error_code == CloseCode.NO_ERROR


async def test_close_without_eof_still_delivers_the_bytes(pair: Pair) -> None:
    payload = os.urandom(SIZE)
    stream = await pair.conn.open_stream()
    stream.write(payload)
    closing = asyncio.ensure_future(pair.conn.close())
    incoming = await pair.accepted.accept_stream()
    received = await asyncio.wait_for(incoming.readexactly(SIZE), 10)
    await asyncio.wait_for(closing, 5)
    assert received == payload
    with pytest.raises(ConnectionClosedError):  # no FIN was written: then the close shows
        await asyncio.wait_for(incoming.read(1), 3)


async def test_abort_is_immediate_and_drops_data_in_flight(pair: Pair) -> None:
    stream = await pair.conn.open_stream()
    stream.write(os.urandom(SIZE))
    stream.write_eof()
    pair.conn.abort("gone")
    assert pair.conn.is_closed

    async def receive() -> tuple[bytes, int]:
        return await read_all(await pair.accepted.accept_stream())

    with pytest.raises(ConnectionClosedError, match="gone"):
        await asyncio.wait_for(receive(), 5)


async def test_close_gives_up_after_linger_when_the_peer_never_reads(pair: Pair) -> None:
    stream = await pair.conn.open_stream()
    stream.write(os.urandom(SIZE))  # the peer reads nothing, so most of it never gets credit
    stream.write_eof()
    loop = asyncio.get_running_loop()
    started = loop.time()
    closing = asyncio.ensure_future(pair.conn.close(linger=0.3))
    await asyncio.sleep(0)
    with pytest.raises(ConnectionClosedError, match="closing"):
        await pair.conn.open_stream()
    await asyncio.wait_for(closing, 3)
    assert 0.25 < loop.time() - started < 2
    assert pair.conn.is_closed
    await asyncio.wait_for(pair.accepted.wait_closed(), 3)


async def test_cancelling_close_closes_at_once(pair: Pair) -> None:
    stream = await pair.conn.open_stream()
    stream.write(os.urandom(SIZE))
    closing = asyncio.ensure_future(pair.conn.close(linger=30))
    await asyncio.sleep(0)
    assert not pair.conn.is_closed
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert pair.conn.is_closed


async def test_the_peer_learns_of_a_close_at_once_not_after_draining(pair: Pair) -> None:
    """aioquic reports a peer's CONNECTION_CLOSE only after three probe timeouts of
    draining; the connection tells its users when the frame arrives."""
    stream = await pair.conn.open_stream()
    stream.write(b"last words")
    stream.write_eof()
    incoming = await pair.accepted.accept_stream()
    await pair.conn.close("bye")
    await asyncio.wait_for(pair.accepted.wait_closed(), 1)
    assert pair.accepted in pair.server.endpoint._cids  # aioquic still drains it
    error = pair.accepted.close_error
    assert error is not None and error.reason == "bye"
    assert await incoming.read() == b"last words"  # what came before the close is kept
    await until(lambda: pair.accepted not in pair.server.endpoint._cids)  # then released
