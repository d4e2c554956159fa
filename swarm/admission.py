"""Tickets: a server's word, given in the relayed handshake, that it admits a client.

A server screens a client (firewall, bans, connection cap) when the client's
:class:`~swarm.handshake.ConnectRequest` arrives through the DHT, as hyperdht does,
so a refused client learns it before any QUIC. An admitted client gets a ticket in
the reply and shows it in its QUIC Hello; the server then skips a second firewall
call and the client need not wait for the server's Accept before it uses the
connection.

A ticket proves nothing by itself: the Hello's proof must still verify, and for the
key the ticket was issued to, else the connection is refused. Tickets travel in the
clear through a relay, so a ticket the server does not know (spent, expired, never
issued) only means "screen this client again", never "refuse".
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Firewall = Callable[[bytes], bool | Awaitable[bool]]
"""Given a client's public key: True to accept it (may be an async function)."""

TICKET_SIZE = 16
NO_TICKET = bytes(TICKET_SIZE)
"""What a Hello carries when its client holds no ticket."""
TICKET_LIFETIME = 30.0
"""Seconds a ticket stays valid: enough to dial each of the server's addresses in turn."""
MAX_TICKETS = 1024
"""Outstanding tickets per endpoint; a flood of handshakes evicts the oldest first."""


@dataclass(frozen=True)
class Admission:
    """What the client learned from an accepting server before QUIC: its ticket,
    and the stream window the server gives each stream (so the client can write
    before Accept brings it)."""

    ticket: bytes
    window: int


class Redemption(enum.Enum):
    UNKNOWN = enum.auto()  # not issued here, spent or expired: screen the client again
    ADMITTED = enum.auto()  # issued to the key the client proved
    WRONG_KEY = enum.auto()  # issued to another key: the client lied in the handshake


class Tickets:
    """The tickets a server issued and not yet seen redeemed, bounded in count and age."""

    def __init__(self, *, lifetime: float = TICKET_LIFETIME, capacity: int = MAX_TICKETS) -> None:
        self._lifetime = lifetime
        self._capacity = capacity
        self._issued: dict[bytes, tuple[bytes, float]] = {}  # ticket -> (key, expiry), by age

    def __len__(self) -> int:
        return len(self._issued)

    def issue(self, client_key: bytes, now: float) -> bytes:
        """A fresh ticket for ``client_key``, valid until ``now`` + lifetime."""
        self._expire(now)
        while len(self._issued) >= self._capacity:
            del self._issued[next(iter(self._issued))]
        ticket = os.urandom(TICKET_SIZE)
        self._issued[ticket] = (client_key, now + self._lifetime)
        return ticket

    def redeem(self, ticket: bytes, proven_key: bytes, now: float) -> Redemption:
        """Check ``ticket`` against the key a client proved; spend it if it matches.

        A mismatch leaves the ticket in place: whoever read it off the relay cannot
        spend it for the client it was issued to.
        """
        self._expire(now)
        entry = self._issued.get(ticket)
        if entry is None:
            return Redemption.UNKNOWN
        if entry[0] != proven_key:
            return Redemption.WRONG_KEY
        del self._issued[ticket]
        return Redemption.ADMITTED

    def _expire(self, now: float) -> None:
        # oldest first, and every ticket lives as long: stop at the first live one
        while self._issued:
            ticket, (_, expiry) = next(iter(self._issued.items()))
            if expiry > now:
                return
            del self._issued[ticket]


def screen(firewall: Firewall, public_key: bytes) -> bool | Awaitable[bool]:
    """Ask ``firewall`` about ``public_key``: its verdict, or an awaitable of it when the
    firewall is async. A firewall that fails says no (logged), so a bug there never
    lets a client in nor leaves it hanging."""
    try:
        allowed = firewall(public_key)
    except Exception:
        log.exception("firewall callback failed; rejecting")
        return False
    return _awaited(allowed) if inspect.isawaitable(allowed) else bool(allowed)


async def _awaited(verdict: Awaitable[bool]) -> bool:
    try:
        return bool(await verdict)
    except Exception:
        log.exception("firewall callback failed; rejecting")
        return False
