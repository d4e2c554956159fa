"""Messages of the control stream: the first bidirectional stream of every connection.

The client opens it right after the TLS handshake with a :class:`Hello` (its key,
its proof, see ``swarm.proof``, and the ticket the relayed handshake gave it, see
``swarm.admission``); the server answers :class:`Accept` or closes the connection
with a reason. After that both sides send :class:`Credit` on it:
our own per-stream flow control, because aioquic grants QUIC flow-control credit
as data *arrives*, not as the application *reads* it, which would let a fast
sender fill a slow reader's memory.

Every message has a fixed size set by its first byte, so the decoder never buffers
more than one message and rejects anything else with :class:`DecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from storage.errors import DecodeError
from storage.keypair import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from swarm.admission import NO_TICKET, TICKET_SIZE

VERSION = 2
MIN_WINDOW = 16 * 1024
MAX_WINDOW = 64 * 1024 * 1024
_MAX_VARINT = (1 << 62) - 1

_HELLO = 0x01
_ACCEPT = 0x02
_CREDIT = 0x03

_HELLO_FORMAT = struct.Struct(f">BB{PUBLIC_KEY_SIZE}s{SIGNATURE_SIZE}sI{TICKET_SIZE}s")
_ACCEPT_FORMAT = struct.Struct(">BI")
_CREDIT_FORMAT = struct.Struct(">BQQ")
_SIZES = {_HELLO: _HELLO_FORMAT.size, _ACCEPT: _ACCEPT_FORMAT.size, _CREDIT: _CREDIT_FORMAT.size}


@dataclass(frozen=True)
class Hello:
    """Client → server: who I am, proof bound to this connection, my stream window,
    and my admission ticket (:data:`~swarm.admission.NO_TICKET` when I hold none)."""

    public_key: bytes
    signature: bytes
    window: int
    ticket: bytes = NO_TICKET


@dataclass(frozen=True)
class Accept:
    """Server → client: you are in; my stream window."""

    window: int


@dataclass(frozen=True)
class Credit:
    """The sender may now send up to ``limit`` bytes (absolute offset) on ``stream_id``."""

    stream_id: int
    limit: int


Message = Hello | Accept | Credit


def check_window(window: int) -> int:
    """``window`` if it is a stream window we accept, else :class:`DecodeError`."""
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise DecodeError(f"stream window {window} outside [{MIN_WINDOW}, {MAX_WINDOW}]")
    return window


def encode(message: Message) -> bytes:
    """The wire form of one control message."""
    if isinstance(message, Hello):
        return _HELLO_FORMAT.pack(
            _HELLO, VERSION, message.public_key, message.signature, message.window, message.ticket
        )
    if isinstance(message, Accept):
        return _ACCEPT_FORMAT.pack(_ACCEPT, message.window)
    return _CREDIT_FORMAT.pack(_CREDIT, message.stream_id, message.limit)


def _decode_one(data: bytes) -> Message:
    kind = data[0]
    if kind == _HELLO:
        _, version, public_key, signature, window, ticket = _HELLO_FORMAT.unpack(data)
        if version != VERSION:
            raise DecodeError(f"unsupported control protocol version {version}")
        return Hello(public_key, signature, check_window(window), ticket)
    if kind == _ACCEPT:
        _, window = _ACCEPT_FORMAT.unpack(data)
        return Accept(check_window(window))
    _, stream_id, limit = _CREDIT_FORMAT.unpack(data)
    if stream_id > _MAX_VARINT or limit > _MAX_VARINT:
        raise DecodeError("credit stream id or limit out of range")
    return Credit(stream_id, limit)


class ControlDecoder:
    """Turns the control stream's bytes, in any chunking, into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Decode every complete message in ``data`` (plus what was left over)."""
        self._buffer += data
        messages: list[Message] = []
        while self._buffer:
            size = _SIZES.get(self._buffer[0])
            if size is None:
                raise DecodeError(f"unknown control message type 0x{self._buffer[0]:02x}")
            if len(self._buffer) < size:
                break
            messages.append(_decode_one(bytes(self._buffer[:size])))
            del self._buffer[:size]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held back (0 at a message boundary)."""
        return len(self._buffer)
