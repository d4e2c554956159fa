"""The DHT wire codec: requests, responses and reachability probes.

A datagram is one type byte (``0x01``–``0x0F``, the DHT's range of the shared
socket) followed by one msgpack array with a fixed shape. :func:`decode` checks
size, shape, types and ranges and raises :class:`DecodeError` on anything else.
Command values are opaque bytes here; ``dht.records`` decodes them per command.

The message classes are not frozen: a frozen dataclass's ``__init__`` costs about
four times as much, and every datagram builds one. Treat them as values all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from dht import wire
from dht.node_id import ID_SIZE
from dht.transport import Address
from storage.errors import DecodeError

REQUEST = 0x01
RESPONSE = 0x02
PROBE = 0x03
FIRST_BYTE = 0x01
LAST_BYTE = 0x0F

MAX_DATAGRAM = 4096
"""Largest DHT datagram we decode (values ≤ 1000 bytes, forwarded payloads ≤ 1200)."""
MAX_NODES = 32
"""Decoder cap on a node list; we send at most k (default 20)."""
MAX_VALUE = 3072
TOKEN_SIZE = 32
NONCE_SIZE = 16
MAX_TID = 2**32 - 1


class Command(IntEnum):
    PING = 1
    FIND_NODE = 2
    NAT_CHECK = 3
    ANNOUNCE = 4
    UNANNOUNCE = 5
    LOOKUP = 6
    IMMUTABLE_PUT = 7
    IMMUTABLE_GET = 8
    MUTABLE_PUT = 9
    MUTABLE_GET = 10
    FORWARD = 11
    FORWARDED = 12


class ErrorCode(IntEnum):
    OK = 0
    UNKNOWN_COMMAND = 1
    BAD_REQUEST = 2
    TOKEN_REQUIRED = 3
    INVALID_SIGNATURE = 4
    SEQ_TOO_LOW = 5
    CAS_MISMATCH = 6
    UNKNOWN_TARGET = 7
    NO_HANDLER = 8
    FORWARD_FAILED = 9
    TOO_LARGE = 10
    STALE = 11
    BUSY = 12
    PENDING = 13
    """Not an answer: the node is alive and still working on it (a FORWARD its peer
    has not answered yet, a FORWARDED its app is thinking about); ask again later."""


@dataclass(slots=True)
class Request:
    """``id`` is present only when the sender claims a routing-table slot (persistent)."""

    tid: int
    command: int
    id: bytes | None = None
    token: bytes | None = None
    target: bytes | None = None
    value: bytes | None = None


@dataclass(slots=True)
class Response:
    """``to`` is the requester's address as the responder saw it (NAT sampling)."""

    tid: int
    to: Address
    id: bytes | None = None
    token: bytes | None = None
    nodes: list[Address] = field(default_factory=list)
    error: int = ErrorCode.OK
    value: bytes | None = None


@dataclass(slots=True)
class Probe:
    """An unsolicited ping back from a fresh port: proof that we are reachable."""

    nonce: bytes


Message = Request | Response | Probe


def encode(msg: Message) -> bytes:
    body: list[Any]
    if isinstance(msg, Request):
        kind = REQUEST
        body = [msg.tid, msg.command, msg.id, msg.token, msg.target, msg.value]
    elif isinstance(msg, Response):
        kind = RESPONSE
        body = [
            msg.tid,
            wire.pack_address(msg.to),
            msg.id,
            msg.token,
            [wire.pack_address(a) for a in msg.nodes],
            int(msg.error),
            msg.value,
        ]
    else:
        kind = PROBE
        body = [msg.nonce]
    return bytes([kind]) + wire.pack(body)


def decode(data: bytes) -> Message:
    """Parse one DHT datagram or raise :class:`DecodeError`."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < 2:
        raise DecodeError("datagram too short")
    kind = data[0]
    if kind not in (REQUEST, RESPONSE, PROBE):
        raise DecodeError(f"unknown DHT message type {kind:#x}")
    obj = wire.unpack(memoryview(data)[1:], MAX_DATAGRAM)
    if kind == REQUEST:
        if type(obj) is not list or len(obj) != 6:
            raise DecodeError("a request is an array of 6")
        tid, command, id_, token, target, value = obj
        return Request(
            wire.integer(tid, 0, MAX_TID),
            wire.integer(command, 1, 255),
            None if id_ is None else wire.binary(id_, ID_SIZE),
            None if token is None else wire.binary(token, TOKEN_SIZE),
            None if target is None else wire.binary(target, ID_SIZE),
            None if value is None else wire.binary(value, max_size=MAX_VALUE),
        )
    if kind == RESPONSE:
        if type(obj) is not list or len(obj) != 7:
            raise DecodeError("a response is an array of 7")
        tid, to, id_, token, nodes, error, value = obj
        return Response(
            wire.integer(tid, 0, MAX_TID),
            wire.unpack_address(to),
            None if id_ is None else wire.binary(id_, ID_SIZE),
            None if token is None else wire.binary(token, TOKEN_SIZE),
            wire.unpack_addresses(nodes, MAX_NODES),
            wire.integer(error, 0, 255),
            None if value is None else wire.binary(value, max_size=MAX_VALUE),
        )
    (nonce,) = wire.array(obj, 1)
    return Probe(wire.binary(nonce, NONCE_SIZE))
