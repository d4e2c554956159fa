"""The jumbo STREAM frame writer against aioquic's own, on the bytes it writes (sans-IO)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from aioquic.buffer import Buffer
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from hypothesis import example, given, settings
from hypothesis import strategies as st

from swarm.jumbo_quic import SHORT_LENGTH_LIMIT, SUPPORTED, JumboQuicConnection

CONNECTION: Any = SimpleNamespace(_quic_logger=None)  # all either writer reads of it
CRYPTO = CryptoPair()
CRYPTO.setup_initial(cid=bytes(8), is_client=True, version=1)


def _write(writer: Any, datagram_size: int, stream: QuicStream, max_offset: int) -> bytes:
    """The frame ``writer`` puts in a fresh 1-RTT packet (what follows the header)."""
    builder = QuicPacketBuilder(
        host_cid=bytes(8),
        peer_cid=bytes(8),
        version=1,
        is_client=True,
        max_datagram_size=datagram_size,
    )
    builder.start_packet(QuicPacketType.ONE_RTT, CRYPTO)
    start = builder._buffer.tell()
    writer(CONNECTION, builder, QuicPacketSpace(), stream, max_offset)
    assert builder.remaining_flight_space >= 0
    return builder._buffer.data[start:]


def _stream(data: bytes, sent: int, fin: bool) -> QuicStream:
    """A stream with ``data`` written and its first ``sent`` bytes already sent."""
    stream = QuicStream(stream_id=4, max_stream_data_remote=len(data) + 1)
    stream.sender.write(data, end_stream=fin)
    if sent:
        stream.sender.get_frame(sent)
    return stream


DATA = os.urandom(200_000)
frames = st.tuples(
    st.builds(
        lambda start, n: DATA[start : start + n], st.integers(0, 50_000), st.integers(0, 150_000)
    ),
    st.one_of(  # datagram size: any, and around where the length takes 4 bytes
        st.integers(min_value=1200, max_value=65_000),
        st.integers(min_value=16_350, max_value=16_450),
    ),
    st.integers(min_value=0, max_value=70_000),  # bytes already sent
    st.integers(min_value=0, max_value=200_000),  # flow control limit
    st.booleans(),  # fin
)


@settings(max_examples=150, deadline=None)
@given(frames)
@example((DATA[:100_000], 16_420, 0, 200_000, False))  # just past where the length
@example((DATA[:100_000], 16_440, 70_000, 200_000, True))  # takes 4 bytes
def test_the_frame_carries_the_stream_data_that_fits(
    case: tuple[bytes, int, int, int, bool],
) -> None:
    data, size, sent, limit, fin = case
    sent = min(sent, len(data))
    limit = max(limit, sent)
    frame = _write(JumboQuicConnection._write_stream_frame, size, _stream(data, sent, fin), limit)
    left = len(data) - sent
    if not frame:  # nothing to send, or nothing flow control lets out
        assert (left == 0 and not (fin and sent == 0)) or (left > 0 and limit == sent)
        return
    buf = Buffer(data=frame)
    kind = buf.pull_uint_var()
    assert kind & ~0x07 == 0x08 and kind & 0x02  # STREAM, with a length
    assert buf.pull_uint_var() == 4
    offset = buf.pull_uint_var() if kind & 0x04 else 0
    length = buf.pull_uint_var()
    assert offset == sent
    assert buf.pull_bytes(length) == data[sent : sent + length]
    assert buf.eof()
    assert bool(kind & 0x01) == (fin and sent + length == len(data))
    allowed = min(limit, len(data)) - sent
    assert length <= allowed
    if size > 2 * (SHORT_LENGTH_LIMIT + 1) and allowed > SHORT_LENGTH_LIMIT:
        assert length > SHORT_LENGTH_LIMIT  # a jumbo packet takes more than 16 KiB at once


@settings(max_examples=150, deadline=None)
@given(frames)
def test_a_frame_under_16_kib_is_aioquics_byte_for_byte(
    case: tuple[bytes, int, int, int, bool],
) -> None:
    data, size, sent, limit, fin = case
    size = min(size, SHORT_LENGTH_LIMIT)  # a packet with less than 16 KiB of room
    sent = min(sent, len(data))
    limit = max(limit, sent)
    ours = _write(JumboQuicConnection._write_stream_frame, size, _stream(data, sent, fin), limit)
    theirs = _write(QuicConnection._write_stream_frame, size, _stream(data, sent, fin), limit)
    assert ours == theirs


def test_the_installed_aioquic_takes_the_jumbo_writer() -> None:
    assert SUPPORTED  # else every connection above falls back to 16 KiB frames
