"""aioquic's QuicConnection, able to fill datagrams larger than 16 KiB with stream data.

aioquic writes one STREAM frame per stream per packet and encodes the frame's data
length in 2 bytes, so a frame carries at most 16 KiB - 1. On loopback, where a
datagram can be 64 KiB, most of the cost of a bulk transfer is per packet (header
protection, the AEAD call, loss-recovery bookkeeping, ACKs): packing several frames
into one packet cuts that cost by about a third.

We do not rewrite aioquic's frame writer: we call it repeatedly, each time through a
view of the packet builder that shows at most one frame's worth of room, so every
frame it writes stays within its 2-byte length. The wire format is plain QUIC
(several STREAM frames in one packet), which any peer reads. If aioquic's private
writer ever changes shape, :data:`SUPPORTED` turns false and connections fall back to
aioquic's own behaviour and to datagrams under 16 KiB.

Big datagrams only pay once the handshake is over: a datagram that carries an Initial
packet is padded to the full datagram size, and the receiver walks that padding byte
by byte in Python (over a millisecond per 64 KiB datagram, on both sides of every
handshake). So the handshake runs at :data:`HANDSHAKE_DATAGRAM_SIZE` and the configured
size applies once the handshake is confirmed (no Initial or Handshake packet follows).
"""

from __future__ import annotations

import inspect
from typing import Any

from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream

MAX_FRAME_DATA = 0x3FFF  # the largest length aioquic's 2-byte frame length can say
SMALL_DATAGRAM_LIMIT = 16 * 1024  # without the override: one frame per packet
_MIN_FRAME_HEADER = 3  # type byte + 2-byte length; stream id and offset come on top
_MIN_ROOM = 64  # a frame smaller than this is not worth its header
HANDSHAKE_DATAGRAM_SIZE = SMALLEST_MAX_DATAGRAM_SIZE
"""Datagram size until the handshake is confirmed: QUIC's minimum, which any path carries."""

_EXPECTED = ["self", "builder", "space", "stream", "max_offset"]
SUPPORTED = (
    list(inspect.signature(QuicConnection._write_stream_frame).parameters) == _EXPECTED
    and hasattr(QuicPacketBuilder, "remaining_flight_space")
)
_SMALL_HANDSHAKE = hasattr(QuicConnection, "_confirm_handshake")


class _OneFrameOfRoom:
    """A packet builder that reports no more free space than one frame can use."""

    def __init__(self, builder: QuicPacketBuilder) -> None:
        self._builder = builder

    @property
    def remaining_flight_space(self) -> int:
        cap = MAX_FRAME_DATA + _MIN_FRAME_HEADER  # data <= cap - overhead <= MAX_FRAME_DATA
        return min(self._builder.remaining_flight_space, cap)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._builder, name)


class JumboQuicConnection(QuicConnection):
    """Writes as many STREAM frames of one stream into a packet as fit; handshakes small."""

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
        if not SUPPORTED:  # pragma: no cover - another aioquic
            return super()._write_stream_frame(builder, space, stream, max_offset)
        view: Any = _OneFrameOfRoom(builder)
        written = 0
        while True:
            n = super()._write_stream_frame(view, space, stream, max_offset)
            written += n
            if n == 0 or builder.remaining_flight_space < _MIN_ROOM:
                return written
