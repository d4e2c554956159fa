"""aioquic's QuicConnection, able to fill datagrams larger than 16 KiB with one STREAM frame.

aioquic writes one STREAM frame per stream per packet, and writes the frame's data
length as a 2-byte varint, so a frame carries at most 16 KiB - 1. On loopback, where a
datagram can be 64 KiB, most of the cost of a bulk transfer is per packet and per
frame (header protection, the AEAD call, loss-recovery bookkeeping and ACKs per
packet; aioquic's frame writer, the receiver's frame handler and the delivery
callback per frame). :meth:`JumboQuicConnection._write_stream_frame` writes the length
as a 4-byte varint when the room in the packet calls for it, so one frame fills a
jumbo packet: a 100 MB stream over loopback costs about a fifth less CPU than with
four 16 KiB frames per packet. The wire format is plain
QUIC (RFC 9000 varints), which any peer reads; in a packet with less than 16 KiB of
room the frame is byte for byte aioquic's. If aioquic's private writer ever changes
shape, :data:`SUPPORTED` turns false and connections fall back to aioquic's own
behaviour and to datagrams under 16 KiB.

Big datagrams only pay once the handshake is over: a datagram that carries an Initial
packet is padded to the full datagram size, and the receiver walks that padding byte
by byte in Python (over a millisecond per 64 KiB datagram, on both sides of every
handshake). So the handshake runs at :data:`HANDSHAKE_DATAGRAM_SIZE` and the configured
size applies once the handshake is confirmed (no Initial or Handshake packet follows).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from aioquic.buffer import size_uint_var
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream, QuicStreamSender

SHORT_LENGTH_LIMIT = 0x3FFF
"""The largest length a 2-byte varint says (aioquic always writes 2 bytes)."""
SMALL_DATAGRAM_LIMIT = 16 * 1024  # without our writer: one 16 KiB frame per packet
HANDSHAKE_DATAGRAM_SIZE = SMALLEST_MAX_DATAGRAM_SIZE
"""Datagram size until the handshake is confirmed: QUIC's minimum, which any path carries."""

_WITH_LENGTH, _WITH_OFFSET, _FIN = 0x02, 0x04, 0x01  # STREAM frame type bits


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


SUPPORTED = (
    _parameters(QuicConnection._write_stream_frame)
    == ["self", "builder", "space", "stream", "max_offset"]
    and _parameters(QuicStreamSender.get_frame) == ["self", "max_size", "max_offset"]
    and _parameters(QuicPacketBuilder.start_frame)[:5]
    == ["self", "frame_type", "capacity", "handler", "handler_args"]
    and hasattr(QuicPacketBuilder, "remaining_flight_space")
    and all(hasattr(QuicStreamSender, a) for a in ("next_offset", "on_data_delivery"))
)
_SMALL_HANDSHAKE = hasattr(QuicConnection, "_confirm_handshake")


class JumboQuicConnection(QuicConnection):
    """Fills a jumbo packet with one STREAM frame of a stream; handshakes small."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._full_datagram_size = self._max_datagram_size
        if _SMALL_HANDSHAKE:
            self._max_datagram_size = min(self._full_datagram_size, HANDSHAKE_DATAGRAM_SIZE)

    def _confirm_handshake(self) -> None:
        super()._confirm_handshake()
        self._max_datagram_size = self._full_datagram_size

    def _write_stream_frame(
        self,
        builder: QuicPacketBuilder,
        space: QuicPacketSpace,
        stream: QuicStream,
        max_offset: int,
    ) -> int:
        """Write as much of ``stream`` as the packet has room for, in one frame; returns
        how far the stream's highest offset sent moved (new bytes, for flow control)."""
        if not SUPPORTED or self._quic_logger is not None:  # pragma: no cover
            return super()._write_stream_frame(builder, space, stream, max_offset)
        sender, stream_id = stream.sender, stream.stream_id
        assert stream_id is not None  # only a stream with an id has data to send
        offset = sender.next_offset
        header = 1 + size_uint_var(stream_id) + (size_uint_var(offset) if offset else 0)
        room = builder.remaining_flight_space - header
        length_size = 2 if room <= 2 + SHORT_LENGTH_LIMIT else 4
        header += length_size
        before = sender.highest_offset
        frame = sender.get_frame(room - length_size, max_offset)
        if frame is None:
            return 0
        size = len(frame.data)
        kind = QuicFrameType.STREAM_BASE | _WITH_LENGTH
        if frame.offset:
            kind |= _WITH_OFFSET
        if frame.fin:
            kind |= _FIN
        buf = builder.start_frame(
            kind,
            capacity=header,
            handler=sender.on_data_delivery,
            handler_args=(frame.offset, frame.offset + size, frame.fin),
        )
        buf.push_uint_var(stream_id)
        if frame.offset:
            buf.push_uint_var(frame.offset)
        if length_size == 2:
            buf.push_uint16(0x4000 | size)
        else:
            buf.push_uint32(0x80000000 | size)
        buf.push_bytes(frame.data)
        return sender.highest_offset - before
