"""The connect handshake that travels through a DHT node before QUIC starts.

A client that found a peer's announcement asks one of the record's relay nodes to
forward a :class:`ConnectRequest` to that peer (``DHTNode.forward``); the peer
answers with a :class:`ConnectReply`: a refusal with its reason (the server runs
its firewall on the key the client claims here, so a refused client never starts
QUIC), or the addresses where it takes QUIC (its public address as the DHT sees
it, then local ones) with an admission ticket (``swarm.admission``). Nothing here
is trusted: the QUIC handshake that follows proves both keys, and the ticket only
counts for the key it was issued to. The first byte tags the payload so other
forwarded protocols (hole-punch coordination) can share it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from dht import wire
from dht.transport import Address
from storage.errors import DecodeError
from storage.keypair import PUBLIC_KEY_SIZE
from swarm import control
from swarm.admission import TICKET_SIZE, Admission
from swarm.errors import peer_text

REQUEST_TAG = 0x51
REPLY_TAG = 0x52
VERSION = 3
MAX_ADDRESSES = 8
MAX_REASON = 64
"""Longest reason, in bytes of UTF-8 (the wire's cap on any string)."""
MAX_FLIGHT = 1280
"""Largest QUIC flight carried either way: one datagram of QUIC's minimum size (1200),
which is what a client Initial and a server's first answer are padded to."""
MAX_SIZE = 1400


class ReplyStatus(enum.IntEnum):
    OK = 0
    NOT_LISTENING = 1
    BUSY = 2
    WRONG_PEER = 3
    REJECTED = 4  # the firewall said no, or the client is banned


@dataclass(frozen=True)
class ConnectRequest:
    """Client → server: who asks, whom it wants, where the client can be reached."""

    client_key: bytes
    server_key: bytes
    addresses: tuple[Address, ...] = ()
    quic: bytes = b""  # the client's first QUIC datagram, or nothing


@dataclass(frozen=True)
class ConnectReply:
    """Server → client: whether to dial, where, and (when OK) the admission."""

    status: ReplyStatus
    addresses: tuple[Address, ...] = ()
    reason: str = ""
    admission: Admission | None = None
    quic: bytes = b""  # the server's answer to the request's QUIC datagram, or nothing


def encode_request(request: ConnectRequest) -> bytes:
    addresses = [wire.pack_address(a) for a in request.addresses[:MAX_ADDRESSES]]
    body = wire.pack([VERSION, request.client_key, request.server_key, addresses, request.quic])
    return bytes([REQUEST_TAG]) + body


def encode_reply(reply: ConnectReply) -> bytes:
    addresses = [wire.pack_address(a) for a in reply.addresses[:MAX_ADDRESSES]]
    admission = reply.admission
    ticket, window = (admission.ticket, admission.window) if admission else (None, 0)
    # what decode_reply takes: printable, and cut at a character within the byte cap
    reason = peer_text(reply.reason, MAX_REASON).encode()[:MAX_REASON].decode(errors="ignore")
    fields = [VERSION, int(reply.status), addresses, reason, ticket, window, reply.quic]
    return bytes([REPLY_TAG]) + wire.pack(fields)


def _fields(data: bytes, tag: int, count: int) -> list[Any]:
    if not data or data[0] != tag:
        raise DecodeError("not a connect handshake message")
    fields = wire.array(wire.unpack(data[1:], MAX_SIZE), count)
    if wire.integer(fields[0]) != VERSION:
        raise DecodeError(f"unsupported handshake version {fields[0]}")
    return fields


def decode_request(data: bytes) -> ConnectRequest:
    """Parse a request; :class:`DecodeError` on anything malformed."""
    _, client_key, server_key, addresses, quic = _fields(data, REQUEST_TAG, 5)
    return ConnectRequest(
        wire.binary(client_key, PUBLIC_KEY_SIZE),
        wire.binary(server_key, PUBLIC_KEY_SIZE),
        tuple(wire.unpack_addresses(addresses, MAX_ADDRESSES)),
        wire.binary(quic, max_size=MAX_FLIGHT),
    )


def decode_reply(data: bytes) -> ConnectReply:
    """Parse a reply; :class:`DecodeError` on anything malformed."""
    _, status, addresses, reason, ticket, window, quic = _fields(data, REPLY_TAG, 7)
    try:
        parsed_status = ReplyStatus(wire.integer(status, 0, 255))
    except ValueError as e:
        raise DecodeError(f"unknown reply status {status}") from e
    if not isinstance(reason, str) or len(reason.encode()) > MAX_REASON or not reason.isprintable():
        raise DecodeError(f"bad reason: printable text of at most {MAX_REASON} bytes")
    admission = None
    if ticket is not None:
        admission = Admission(
            wire.binary(ticket, TICKET_SIZE),
            control.check_window(wire.integer(window)),
        )
    return ConnectReply(
        parsed_status,
        tuple(wire.unpack_addresses(addresses, MAX_ADDRESSES)),
        reason,
        admission,
        wire.binary(quic, max_size=MAX_FLIGHT),
    )
