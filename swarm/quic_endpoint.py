"""Many QUIC connections over one datagram socket, dialed and accepted.

The endpoint owns no socket: it is given a ``send(data, addr)`` callable and fed
``datagram_received(data, addr)``, so it runs on the DHT node's socket (first bytes
0x40–0xFF, see docs/architecture.md) or on any transport in tests. Incoming
datagrams go to a connection by destination connection id; an unknown id in a
full-size Initial packet starts a new server-side connection when the endpoint
accepts, within a cap on handshakes in progress. A client's first datagram may also
come inside a relayed handshake, and the answer go back the same way
(:meth:`QuicEndpoint.dial_early`, :meth:`QuicEndpoint.accept_early`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aioquic._buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)

from dht.transport import Address
from storage.errors import ClosedError
from storage.keypair import PUBLIC_KEY_SIZE, KeyPair
from swarm.admission import Admission, Firewall, Redemption, Tickets, screen
from swarm.certificate import create_certificate
from swarm.connection import CLIENT_PATH, Connection, Verdict
from swarm.local_host import is_this_host
from swarm.peer_quic import PeerQuicConnection
from swarm.quic_options import VERSIONS, QuicOptions, quic_configuration

log = logging.getLogger(__name__)

Send = Callable[[bytes, Address], None]
_CID_LENGTH = 8  # aioquic's default, and what pull_quic_header needs for short headers
PREPARED_TTL = 30.0
"""Seconds a prepared client handshake waits for a dial; an older one is built afresh.

Nothing in a ClientHello ages, but aioquic starts a connection's idle deadline when the
handshake is built, so a prepared one is built as of its last usable moment (its first
flight may idle up to this much longer; the handshake timeout still bounds it)."""
PREPARE_DELAY = 0.1
"""Seconds after a dial before the next one's handshake is prepared, out of its way."""
MAX_EARLY_DATAGRAM = 1280
"""Largest first-flight datagram handed over to travel through a relay (QUIC pads a
handshake's first datagrams to 1200 bytes; ``swarm.handshake.MAX_FLIGHT``)."""


@dataclass(frozen=True)
class EarlyDial:
    """A dial begun before the server's address is known: its first datagram (the
    client's Initial) travels inside the relayed handshake (:meth:`QuicEndpoint.dial_early`)."""

    connection: Connection
    initial: bytes
    local: bool  # built for a peer on this host (loopback-sized datagrams once it runs)


class QuicEndpoint:
    """Dials and accepts key-pinned QUIC connections over a shared socket."""

    connection_class: type[Connection] = Connection

    def __init__(
        self,
        key_pair: KeyPair,
        send: Send,
        *,
        options: QuicOptions | None = None,
        firewall: Firewall | None = None,
        on_connection: Callable[[Connection], object] | None = None,
    ) -> None:
        if not key_pair.can_sign:
            raise ValueError("the endpoint's key pair needs its secret key")
        self.key_pair = key_pair
        self.options = options or QuicOptions()
        self.firewall = firewall
        self.on_connection = on_connection
        self.accepting = False
        self._send = send
        self._certificate, self._private_key = create_certificate(key_pair)
        self._configurations: dict[tuple[bool, bool], QuicConfiguration] = {}
        self._configured = self.options
        self._by_cid: dict[bytes, Connection] = {}
        self._cids: dict[Connection, set[bytes]] = {}
        self._tickets = Tickets()
        self._prepared: dict[bool, tuple[PeerQuicConnection, float]] = {}
        self._preparing: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def connections(self) -> list[Connection]:
        """Established connections that are still open."""
        return [c for c in self._cids if c.is_established]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Feed one datagram from the socket; never raises."""
        found = self._connection_for(data, addr)
        if found is not None:
            self._feed(found[0], data, addr)

    async def connect(
        self,
        addr: Address,
        public_key: bytes,
        *,
        admission: Admission | None = None,
        early: EarlyDial | None = None,
        answer: bytes = b"",
    ) -> Connection:
        """Dial ``addr`` and return the connection once the peer proved ``public_key``
        and accepted us.

        With an ``admission`` (the peer screened us already, in the relayed handshake)
        the connection comes back as soon as the peer's key is pinned, without the
        Accept round trip; should the peer refuse us after all, it closes with the
        refusal as its error. Raises :class:`~swarm.errors.AuthenticationError` when
        the peer is someone else, :class:`~swarm.errors.PeerRejectedError` when it
        refuses us, and :class:`~swarm.errors.HandshakeError` on other failures,
        including no answer within ``options.handshake_timeout`` (wrap in
        ``asyncio.timeout`` for less).

        ``early`` continues a :meth:`dial_early` instead of starting a dial, with
        ``answer``, the server's reply to its Initial that came back through the relay
        (empty: the Initial is sent to ``addr`` now).
        """
        if early is None:
            conn = self._client_connection(public_key, addr, is_this_host(addr), admission)
        else:
            if self._closed:
                raise ClosedError("endpoint is closed")
            conn = early.connection
            conn._resume(addr, admission)
            if answer:
                conn._datagram_received(answer, addr)
            else:  # the server did not take our Initial from the relay: it gets it now
                self._send_datagram(early.initial, addr)
        conn._transmit()
        try:
            await conn.wait_established()
        except BaseException:
            await conn.close("connect abandoned")
            raise
        return conn

    def dial_early(self, public_key: bytes, *, local: bool) -> EarlyDial | None:
        """Begin a dial to ``public_key`` before its address is known: the returned
        Initial goes to the server inside the relayed handshake, and :meth:`connect`
        with ``early`` takes it from there (or :meth:`discard` gives it up). ``local``:
        the server is on this host. None when the first flight is not one datagram a
        relay carries (then dial as usual).
        """
        conn = self._client_connection(public_key, CLIENT_PATH, local, None)
        flight = conn._take_flight(arm=False)  # nowhere to retransmit to yet
        if len(flight) != 1 or len(flight[0]) > MAX_EARLY_DATAGRAM:  # pragma: no cover
            self.discard(EarlyDial(conn, b"", local))
            return None
        return EarlyDial(conn, flight[0], local)

    def discard(self, early: EarlyDial, addr: Address | None = None) -> None:
        """Give up an early dial unless :meth:`connect` took it; with ``addr`` tell the
        server there, which may have begun its half from the relayed Initial."""
        conn = early.connection
        if conn.is_closed or conn.remote_address != CLIENT_PATH:  # closed, or dialing
            return
        if addr is None:
            conn._abandon()
            self._terminated(conn)
            return
        conn._resume(addr, None)
        conn.close_nowait("dial abandoned")

    def accept_early(self, datagram: bytes, addr: Address) -> bytes:
        """Take a client's first datagram that came inside a relayed handshake (``addr``:
        the client as the relay saw it); return the answer to carry back, or nothing
        (not an Initial we take: the client then sends it straight to us).

        A repeated datagram (the client asked through a second relay) gets the same
        answer. An answer too big for a relay goes straight to ``addr`` instead; a lost
        one is retransmitted there, as any flight.
        """
        found = self._connection_for(datagram, addr)
        if found is None:
            return b""
        conn, new = found
        if new:
            if not self._feed(conn, datagram, addr):
                return b""
            flight = conn._take_flight(arm=True)
            if len(flight) == 1 and len(flight[0]) <= MAX_EARLY_DATAGRAM:
                conn._early_answer = flight[0]
            else:
                for data in flight:
                    self._send_datagram(data, addr)
        return b"" if conn.is_initiator else conn._early_answer

    def prepare(self, local: bool) -> None:
        """Build the next dial's client handshake now, while nothing waits for it.

        Setting up a QUIC client (keys for every packet space, the TLS ClientHello and
        its key share) costs about a millisecond of CPU; prepared, it is off the path
        from a lookup result to a connection. ``local``: for peers on this host
        (loopback-sized datagrams). After each dial the next one is prepared for the
        same kind of peer.
        """
        if self._closed or local in self._prepared:
            return
        expires = asyncio.get_running_loop().time() + PREPARED_TTL
        self._prepared[local] = (self._new_client(local, expires), expires)

    def _client(self, local: bool) -> PeerQuicConnection:
        """A client connection for a dial now: the prepared one if still fresh."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._check_options()
        prepared = self._prepared.pop(local, None)
        if not self._closed and self._preparing is None:
            self._preparing = loop.call_later(PREPARE_DELAY, self._prepare_next, local)
        if prepared is not None and now < prepared[1]:
            return prepared[0]
        return self._new_client(local, now)

    def _client_connection(
        self, public_key: bytes, addr: Address, local: bool, admission: Admission | None
    ) -> Connection:
        if self._closed:
            raise ClosedError("endpoint is closed")
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"a public key is {PUBLIC_KEY_SIZE} bytes")
        quic = self._client(local)
        conn = self.connection_class(
            quic,
            self,
            key_pair=self.key_pair,
            options=self.options,
            remote_address=addr,
            is_initiator=True,
            expected_key=public_key,
            admission=admission,
        )
        self._register_cid(quic.host_cid, conn)
        return conn

    def _prepare_next(self, local: bool) -> None:
        self._preparing = None
        self.prepare(local)

    def _new_client(self, local: bool, now: float) -> PeerQuicConnection:
        quic = PeerQuicConnection(configuration=self._configuration(True, local))
        quic.connect(CLIENT_PATH, now=now)  # the connection sends to the dialed address
        return quic

    async def close(self, *, linger: float | None = None) -> None:
        """Stop accepting and close every connection gracefully (see ``Connection.close``).

        The connections close side by side, so this takes at most ``linger``
        (default ``options.close_timeout``) however many there are.
        """
        if self._closed:
            return
        self.accepting = False
        try:
            await asyncio.gather(
                *(conn.close("endpoint closed", linger=linger) for conn in list(self._cids))
            )
        finally:
            self.abort()

    def admit_ahead(self, client_key: bytes) -> Admission:
        """Admit ``client_key`` before its QUIC connection: it was screened already.

        The caller ran the firewall on the key a relayed handshake claimed; the
        client shows the returned ticket in its Hello, which then needs no second
        firewall call, and must prove that very key (``swarm.admission``).
        """
        now = asyncio.get_running_loop().time()
        return Admission(self._tickets.issue(client_key, now), self.options.early_window)

    def abort(self) -> None:
        """Drop every connection without telling the peers, as if the process died."""
        self._closed = True
        self._prepared.clear()
        if self._preparing is not None:
            self._preparing.cancel()
            self._preparing = None
        for conn in list(self._cids):
            conn._abandon()
        self._by_cid.clear()
        self._cids.clear()

    # -- accepting -----------------------------------------------------------------

    def _connection_for(self, data: bytes, addr: Address) -> tuple[Connection, bool] | None:
        """The connection a datagram goes to, and whether it is new (an Initial we
        accept); None when it goes nowhere."""
        if self._closed:
            return None
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=_CID_LENGTH)
        except ValueError:
            return None
        conn = self._by_cid.get(header.destination_cid)
        if conn is not None:
            return conn, False
        conn = self._maybe_accept(
            data,
            addr,
            header.packet_type,
            header.version,
            header.destination_cid,
            header.source_cid,
        )
        return None if conn is None else (conn, True)

    def _feed(self, conn: Connection, data: bytes, addr: Address) -> bool:
        """Hand ``conn`` a datagram; False when that failed and the connection is gone."""
        try:
            conn._datagram_received(data, addr)
        except Exception:  # a bug must not take the receive path down with it
            log.exception("QUIC connection with %s failed", addr)
            conn._abandon()
            self._terminated(conn)
            return False
        return True

    def _maybe_accept(
        self,
        data: bytes,
        addr: Address,
        packet_type: QuicPacketType,
        version: int | None,
        destination_cid: bytes,
        source_cid: bytes,
    ) -> Connection | None:
        if (
            not self.accepting
            or packet_type != QuicPacketType.INITIAL
            or len(data) < SMALLEST_MAX_DATAGRAM_SIZE
        ):
            return None
        if version not in VERSIONS:
            # never answer a Version Negotiation packet (version 0) with another one
            if version:
                self._send(
                    encode_quic_version_negotiation(
                        source_cid=destination_cid,
                        destination_cid=source_cid,
                        supported_versions=list(VERSIONS),
                    ),
                    addr,
                )
            return None
        handshaking = sum(1 for c in self._cids if not c.is_established and not c.is_closed)
        if handshaking >= self.options.max_handshakes:
            log.debug("dropping Initial from %s: %d handshakes in progress", addr, handshaking)
            return None
        quic = PeerQuicConnection(
            configuration=self._configuration(False, is_this_host(addr)),
            original_destination_connection_id=destination_cid,
        )
        conn = self.connection_class(
            quic,
            self,
            key_pair=self.key_pair,
            options=self.options,
            remote_address=addr,
            is_initiator=False,
        )
        self._register_cid(destination_cid, conn)
        self._register_cid(quic.host_cid, conn)
        return conn

    def _configuration(self, is_client: bool, local: bool) -> QuicConfiguration:
        """The aioquic configuration for a connection with a peer on this host
        (``local``) or not: one per role and kind of path, built once (aioquic only
        reads it), so a handshake does not."""
        self._check_options()
        key = (is_client, local)
        configuration = self._configurations.get(key)
        if configuration is None:
            configuration = self._configurations[key] = quic_configuration(
                self.options,
                is_client=is_client,
                local=local,
                certificate=self._certificate,
                private_key=self._private_key,
            )
        return configuration

    def _check_options(self) -> None:
        """Options replaced: drop configurations and handshakes built under the old ones."""
        if self._configured is not self.options:
            self._configurations.clear()
            self._prepared.clear()
            self._configured = self.options

    # -- ConnectionHost ------------------------------------------------------------

    def _send_datagram(self, data: bytes, addr: Address) -> None:
        if not self._closed:
            self._send(data, addr)

    def _register_cid(self, cid: bytes, conn: Connection) -> None:
        self._by_cid[cid] = conn
        self._cids.setdefault(conn, set()).add(cid)

    def _retire_cid(self, cid: bytes) -> None:
        conn = self._by_cid.pop(cid, None)
        if conn is not None:
            self._cids.get(conn, set()).discard(cid)

    def _admit(self, conn: Connection, ticket: bytes | None) -> Verdict | Awaitable[Verdict]:
        if ticket is not None:
            now = asyncio.get_running_loop().time()
            redeemed = self._tickets.redeem(ticket, conn.remote_public_key, now)
            if redeemed is Redemption.WRONG_KEY:
                return "client key differs from the key its handshake claimed"
            if redeemed is Redemption.ADMITTED:  # screened when the ticket was issued
                return self._room()
        if (full := self._room()) is not None:
            return full
        if self.firewall is None:
            return None
        allowed = screen(self.firewall, conn.remote_public_key)
        if inspect.isawaitable(allowed):
            return self._admit_later(allowed)
        return None if allowed else "rejected by firewall"

    async def _admit_later(self, allowed: Awaitable[bool]) -> Verdict:
        """Finish :meth:`_admit` once an async firewall answered."""
        if not await allowed:
            return "rejected by firewall"
        return self._room()  # others may have got in while the firewall thought

    @property
    def full(self) -> bool:
        """True when another connection would be over ``options.max_connections``."""
        return len(self.connections) >= self.options.max_connections

    def _room(self) -> Verdict:
        return "too many connections" if self.full else None

    def _established(self, conn: Connection) -> None:
        if self.on_connection is not None:
            try:
                self.on_connection(conn)
            except Exception:
                log.exception("on_connection callback failed")

    def _terminated(self, conn: Connection) -> None:
        for cid in self._cids.pop(conn, set()):
            if self._by_cid.get(cid) is conn:
                del self._by_cid[cid]
