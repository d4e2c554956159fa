"""One authenticated QUIC connection to a peer, and the thin asyncio driver under it.

aioquic's ``QuicConnection`` is sans-IO; this class feeds it datagrams and timer
ticks, sends what it returns, and turns its events into streams. It also runs the
identity check of the issue before the app sees anything:

* the client pins the server: the TLS certificate's Ed25519 key must be the key it
  dialed (TLS itself proved the server holds that key for this handshake);
* the client proves its own key with a signature over this connection's channel
  binding (``swarm.proof``), sent as a :class:`~swarm.control.Hello` on the control
  stream; the server checks it, asks its firewall (or redeems the ticket of a client
  it already screened in the relayed handshake, ``swarm.admission``), and answers
  :class:`~swarm.control.Accept` or closes with a reason.

The server hands out no stream before it verified the proof and admitted the
client: streams the client opened early wait, buffered within the small window the
server allows before admission (``QuicOptions.early_stream_window``; Accept raises
it to the full one). A client without a ticket waits for Accept; a client with one
opens as soon as it pinned the server and sent its Hello (saving the Accept round
trip), and if the server then refuses after all, its connection closes with the
refusal as the error.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from aioquic.quic import events
from aioquic.quic.connection import QuicConnection

from dht import event_loop
from dht.transport import Address
from storage.errors import DecodeError, InvalidArgumentError
from storage.keypair import PUBLIC_KEY_SIZE, KeyPair
from storage.resource import AsyncResource
from swarm import control
from swarm.admission import NO_TICKET, Admission
from swarm.certificate import certificate_public_key, peer_certificate
from swarm.errors import (
    AuthenticationError,
    ConnectionClosedError,
    HandshakeError,
    PeerRejectedError,
    peer_text,
)
from swarm.proof import channel_binding, check_proof, sign_proof
from swarm.quic_options import QuicOptions
from swarm.stream import Stream

log = logging.getLogger(__name__)

CONTROL_STREAM_ID = 0  # the client's first bidirectional stream
CLIENT_PATH: Address = ("0.0.0.0", 0)
"""The one network path a client's aioquic connection knows; the connection sends to the
address it dialed. A client's handshake can thus be built before that address is known
(``QuicEndpoint.prepare``), and the path the packets take stays ours to choose."""
_MAX_PINGS = 8
_MAX_REFUSED_STREAMS = 1024


class CloseCode(enum.IntEnum):
    """Application error codes in CONNECTION_CLOSE / RESET_STREAM frames."""

    NO_ERROR = 0x0
    REJECTED = 0x101
    AUTH_FAILED = 0x102
    PROTOCOL_ERROR = 0x103
    HANDSHAKE_TIMEOUT = 0x104
    DUPLICATE = 0x105
    STREAM_REFUSED = 0x106


Verdict = str | None
"""An admission decision: ``None`` to accept, else the reason for refusing."""


class ConnectionHost(Protocol):
    """What a connection needs from the endpoint that owns its socket."""

    def _send_datagram(self, data: bytes, addr: Address) -> None: ...

    def _register_cid(self, cid: bytes, conn: Connection) -> None: ...

    def _retire_cid(self, cid: bytes) -> None: ...

    def _admit(self, conn: Connection, ticket: bytes | None) -> Verdict | Awaitable[Verdict]: ...

    def _established(self, conn: Connection) -> None: ...

    def _terminated(self, conn: Connection) -> None: ...


CloseCallback = Callable[["Connection"], None]


class Connection(AsyncResource):
    """An encrypted, mutually authenticated connection carrying many streams."""

    def __init__(
        self,
        quic: QuicConnection,
        host: ConnectionHost,
        *,
        key_pair: KeyPair,
        options: QuicOptions,
        remote_address: Address,
        is_initiator: bool,
        expected_key: bytes | None = None,
        admission: Admission | None = None,
    ) -> None:
        if is_initiator and expected_key is None:
            raise ValueError("a client connection needs the key it expects")
        if admission is not None and not is_initiator:
            raise ValueError("only a client holds an admission")
        self._quic = quic
        self._host = host
        self._key_pair = key_pair
        self._options = options
        self._remote_address = remote_address
        self._is_initiator = is_initiator
        self._remote_key = expected_key
        self._loop = asyncio.get_running_loop()
        self._now = event_loop.precise_clock(self._loop)  # aioquic's RTT needs < 1 ms
        self._started_at = self._now()

        self._binding: bytes | None = None
        self._control = control.ControlDecoder()
        self._ticket = admission.ticket if admission is not None else None
        self._peer_window: int | None = admission.window if admission is not None else None
        self._streams: dict[int, Stream] = {}
        self._refused: set[int] = set()
        self._unlabeled: dict[int, bytearray] = {}  # remote streams still sending their header
        self._early: list[Stream] = []  # remote streams seen before the handshake ended
        self._incoming: dict[bytes, deque[Stream]] = {}
        self._incoming_waiter: asyncio.Future[None] | None = None

        self._ready = asyncio.Event()  # streams may be used (both keys proven, or ticket)
        self._accepted = False  # the server admitted the client (sent / got Accept)
        self._handshake_error: HandshakeError | None = None
        self._closed = asyncio.Event()
        self._close_error: ConnectionClosedError | None = None
        self._terminated = False
        self._closing = False  # a graceful close() is waiting for our data to be acknowledged
        self._acked_waiter: asyncio.Future[None] | None = None
        self._admission: asyncio.Task[None] | None = None
        self._close_callbacks: list[CloseCallback] = []

        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transmit_handle: asyncio.Handle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = self._loop.call_later(
            options.handshake_timeout, self._on_handshake_timeout
        )
        self._ping_ids = itertools.count(1)
        self._pings: dict[int, float] = {}
        self._rtt: float | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self._early_answer = b""  # a server's first flight, sent back through a relay

    # -- public API ------------------------------------------------------------

    @property
    def remote_public_key(self) -> bytes:
        """The peer's Ed25519 public key, as proven in the handshake."""
        if self._remote_key is None:
            raise AuthenticationError("the peer has not proven its key yet")
        return self._remote_key

    @property
    def remote_address(self) -> Address:
        """The peer's address: the one a client dialed; on the server's side, the one
        the client's packets come from (it follows QUIC address changes)."""
        return self._remote_address

    @property
    def is_initiator(self) -> bool:
        """True on the side that dialed."""
        return self._is_initiator

    @property
    def relayed(self) -> bool:
        """True when packets go through a relay; direct paths only for now."""
        return False

    @property
    def rtt(self) -> float:
        """Smoothed round-trip time in seconds (from the handshake, then pings)."""
        return self._rtt if self._rtt is not None else 0.0

    @property
    def is_established(self) -> bool:
        """True once streams may be used (and still open): both keys proven and the
        server accepted, or on a client holding a ticket, the server's key pinned."""
        return self._ready.is_set() and self._handshake_error is None and not self.is_closed

    @property
    def is_accepted(self) -> bool:
        """True once the server admitted the client (a ticket holder's Accept may lag)."""
        return self._accepted and not self.is_closed

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_error(self) -> ConnectionClosedError | None:
        """Why the connection closed (``error_code``/``reason``), once it has."""
        return self._close_error

    async def open_stream(self, protocol: bytes | str = b"") -> Stream:
        """A new bidirectional stream, for the peer's ``accept_stream(protocol)``.

        ``protocol`` (at most 255 bytes) lets several users share a connection, e.g.
        replication and an app: each accepts only the streams opened for it.
        """
        label = _label(protocol)
        await self.wait_established()
        if self._close_error is not None:
            raise self._close_error
        if self._closing:
            raise ConnectionClosedError("connection is closing")
        stream_id = self._quic.get_next_available_stream_id()
        assert self._peer_window is not None
        stream = self._new_stream(stream_id, self._peer_window, label)
        stream.write(bytes([len(label)]) + label)  # the header also reserves the id now
        return stream

    async def accept_stream(self, protocol: bytes | str = b"") -> Stream:
        """The next stream the peer opened for ``protocol``; raises once closed."""
        label = _label(protocol)
        while not (queue := self._incoming.get(label)):
            if self._close_error is not None:
                raise self._close_error
            waiter = self._incoming_waiter
            if waiter is None or waiter.done():
                waiter = self._incoming_waiter = self._loop.create_future()
            await asyncio.wait((waiter,))  # shared by all acceptors; never cancelled by one
        stream = queue.popleft()
        if not queue:
            del self._incoming[label]
        return stream

    async def close(
        self,
        reason: str = "",
        error_code: int = CloseCode.NO_ERROR,
        *,
        linger: float | None = None,
    ) -> None:
        """Close gracefully: deliver what was written, then tell the peer ``reason``.

        Waits (at most ``linger`` seconds, default ``options.close_timeout``) until the
        peer acknowledged every byte and FIN written to our streams, including data
        still waiting for the peer's credit; then sends CONNECTION_CLOSE. Whatever is
        still unacknowledged then is dropped. No new stream can be opened meanwhile.
        :meth:`abort` (or ``linger=0``) closes at once; so does cancelling the call.
        """
        if self._closed.is_set():
            return
        wait = self._options.close_timeout if linger is None else linger
        if wait > 0 and self.is_established and not self._terminated:
            self._closing = True
            if not self._sent_data_acknowledged():
                waiter = self._acked_waiter
                if waiter is None or waiter.done():
                    waiter = self._acked_waiter = self._loop.create_future()
                try:
                    await asyncio.wait((waiter,), timeout=wait)
                finally:
                    self.close_nowait(reason, error_code)  # also when cancelled
                return
        self.close_nowait(reason, error_code)

    def close_nowait(self, reason: str = "", error_code: int = CloseCode.NO_ERROR) -> None:
        """Close now: the peer gets ``reason``; streams fail; unacknowledged data is lost."""
        message = f"connection closed locally{': ' + reason if reason else ''}"
        error = ConnectionClosedError(message, error_code=error_code, reason=reason)
        self._close(error_code, reason, error)

    def abort(self, reason: str = "", error_code: int = CloseCode.NO_ERROR) -> None:
        """Close at once without waiting for data in flight (same as :meth:`close_nowait`)."""
        self.close_nowait(reason, error_code)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, by either side or by a timeout (a peer's
        close as soon as its CONNECTION_CLOSE arrives, not after QUIC's draining period)."""
        await self._closed.wait()

    def on_close(self, callback: CloseCallback) -> None:
        """Call ``callback(conn)`` once the connection closes (at once if it has)."""
        if self._closed.is_set():
            self._run_callback(callback)
        else:
            self._close_callbacks.append(callback)

    async def wait_established(self) -> None:
        """Wait until streams may be used (see :attr:`is_established`); raise why the
        authentication exchange failed, if it did."""
        await self._ready.wait()
        if self._handshake_error is not None:
            raise self._handshake_error

    def __repr__(self) -> str:
        key = self._remote_key.hex()[:16] if self._remote_key else "?"
        role = "initiator" if self._is_initiator else "responder"
        return f"<Connection {role} peer={key} addr={self._remote_address}>"

    # -- driver ----------------------------------------------------------------

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self._terminated:
            return
        self.bytes_received += len(data)
        path = CLIENT_PATH if self._is_initiator else addr
        self._quic.receive_datagram(data, path, now=self._now())
        self._process_events()
        if not self._closed.is_set():
            # The peer closed: aioquic drains for three probe timeouts before it says
            # so (stray packets must still find us), but nothing more will be
            # delivered, so whoever waits on this connection learns it now.
            close = getattr(self._quic, "_close_event", None)
            if isinstance(close, events.ConnectionTerminated):
                self._peer_closed(close)
        # the socket hands over a burst of datagrams in one callback: answer (ACKs,
        # more data) once after all of them, not once per datagram
        self._transmit_soon()

    def _take_flight(self, *, arm: bool) -> list[bytes]:
        """What aioquic would send now, handed to the caller instead: it travels inside
        a relayed handshake. ``arm``: run the loss timer as if it had been sent, so a
        flight lost on the way is repaired by retransmission straight to the peer."""
        if self._transmit_handle is not None:
            self._transmit_handle.cancel()
            self._transmit_handle = None
        flight = [data for data, _ in self._quic.datagrams_to_send(now=self._now())]
        self.bytes_sent += sum(map(len, flight))
        if arm:
            self._arm_timer()
        return flight

    def _resume(self, addr: Address, admission: Admission | None) -> None:
        """An early dial (``QuicEndpoint.dial_early``) learned where the server is and,
        from the relayed handshake, its admission: from here on it is any dial."""
        self._remote_address = addr
        if admission is not None:
            self._ticket = admission.ticket
            self._peer_window = admission.window

    def _transmit_soon(self) -> None:
        if self._transmit_handle is None and not self._terminated:
            self._transmit_handle = self._loop.call_soon(self._transmit)

    def _transmit(self) -> None:
        if self._transmit_handle is not None:
            self._transmit_handle.cancel()
            self._transmit_handle = None
        if self._terminated:
            return
        for data, addr in self._quic.datagrams_to_send(now=self._now()):
            self.bytes_sent += len(data)
            if not self._is_initiator:
                # aioquic sends on the validated path: the client's current address
                self._remote_address = (str(addr[0]), int(addr[1]))
            self._host._send_datagram(data, self._remote_address)
        self._arm_timer()
        if self._acked_waiter is not None and self._sent_data_acknowledged():
            if not self._acked_waiter.done():
                self._acked_waiter.set_result(None)
            self._acked_waiter = None

    def _sent_data_acknowledged(self) -> bool:
        """True when the peer acknowledged every byte (and FIN) our streams were given.

        The control stream does not count: it carries only credit, which a closing
        connection no longer needs.
        """
        for stream in self._streams.values():
            if not stream._all_sent():
                return False
        for stream_id, quic_stream in self._quic._streams.items():
            if stream_id == CONTROL_STREAM_ID:
                continue
            sender = quic_stream.sender
            if sender._reset_error_code is not None:
                continue  # reset: the data was given up on purpose
            if sender._buffer_start < sender._buffer_stop:
                return False
            if sender._buffer_fin is not None and not sender._acked_fin:
                return False
        return True

    def _arm_timer(self) -> None:
        at = self._quic.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._terminated:
            return
        self._quic.handle_timer(now=self._now())
        self._process_events()
        self._transmit()

    def _process_events(self) -> None:
        while (event := self._quic.next_event()) is not None:
            if isinstance(event, events.StreamDataReceived):
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
            elif isinstance(event, events.HandshakeCompleted):
                self._on_handshake_completed()
            elif isinstance(event, events.StreamReset):
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream._reset_by_peer(event.error_code)
            elif isinstance(event, events.StopSendingReceived):
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream._stopped_by_peer(event.error_code)
            elif isinstance(event, events.PingAcknowledged):
                self._on_pong(event.uid)
            elif isinstance(event, events.ConnectionIdIssued):
                self._host._register_cid(event.connection_id, self)
            elif isinstance(event, events.ConnectionIdRetired):
                self._host._retire_cid(event.connection_id)
            elif isinstance(event, events.ConnectionTerminated):
                self._on_terminated(event)

    # -- handshake and control stream -------------------------------------------

    def _on_handshake_completed(self) -> None:
        self._sample_rtt(self._now() - self._started_at)
        self._early_answer = b""
        try:
            self._binding = channel_binding(self._quic)
            if self._is_initiator:
                key = certificate_public_key(peer_certificate(self._quic.tls))
                if key != self._remote_key:
                    expected = self._remote_key.hex() if self._remote_key else "?"
                    raise AuthenticationError(
                        f"peer presented key {key.hex()[:16]}..., expected {expected[:16]}..."
                    )
        except AuthenticationError as e:
            self._fail_handshake(e, CloseCode.AUTH_FAILED, "authentication failed")
            return
        if self._is_initiator:
            stream_id = self._quic.get_next_available_stream_id()
            if stream_id != CONTROL_STREAM_ID:  # pragma: no cover - aioquic invariant
                raise AssertionError(f"control stream got id {stream_id}")
            self._send_control(self._hello(self._binding))
            if self._ticket is not None:  # admitted in the relayed handshake: go now
                self._open()

    def _hello(self, binding: bytes) -> control.Hello:
        """The client's first control message: its key and proof for ``binding``."""
        return control.Hello(
            self._key_pair.public_key,
            sign_proof(self._key_pair, binding),
            self._options.stream_window,
            self._ticket or NO_TICKET,
        )

    def _send_control(self, message: control.Message) -> None:
        self._quic.send_stream_data(CONTROL_STREAM_ID, control.encode(message))
        self._transmit_soon()

    def _on_control(self, data: bytes, fin: bool) -> None:
        try:
            messages = self._control.feed(data)
        except DecodeError as e:
            self._protocol_error(f"bad control message: {e}")
            return
        if fin:
            self._protocol_error("control stream ended")
            return
        for message in messages:
            if self._closed.is_set():
                return
            if isinstance(message, control.Credit):
                stream = self._streams.get(message.stream_id)
                if stream is not None and stream._credit(message.limit):
                    self._flush_stream(stream)
            elif isinstance(message, control.Hello) and not self._is_initiator:
                self._on_hello(message)
            elif isinstance(message, control.Accept) and self._is_initiator:
                self._on_accept(message)
            else:
                self._protocol_error(f"unexpected control message {type(message).__name__}")

    def _on_hello(self, hello: control.Hello) -> None:
        if self._ready.is_set() or self._binding is None:
            self._protocol_error("unexpected Hello")
            return
        try:
            if len(hello.public_key) != PUBLIC_KEY_SIZE:
                raise AuthenticationError("bad public key size")
            check_proof(hello.public_key, self._binding, hello.signature)
        except AuthenticationError as e:
            self._fail_handshake(e, CloseCode.AUTH_FAILED, "client proof invalid")
            return
        self._remote_key = hello.public_key
        self._peer_window = hello.window
        ticket = hello.ticket if hello.ticket != NO_TICKET else None
        verdict = self._host._admit(self, ticket)
        if inspect.isawaitable(verdict):  # an async firewall: decide later, meanwhile wait
            self._admission = self._loop.create_task(self._admit_later(verdict))
            return
        self._admitted(verdict)

    async def _admit_later(self, verdict: Awaitable[Verdict]) -> None:
        try:
            refusal = await verdict
        except Exception:  # a host's bug must not leave the peer hanging
            log.exception("admission check failed; rejecting")
            refusal = "admission check failed"
        self._admission = None
        if not self._closed.is_set():
            self._admitted(refusal)
            self._transmit()

    def _admitted(self, refusal: Verdict) -> None:
        if refusal is not None:
            self._fail_handshake(PeerRejectedError(refusal), CloseCode.REJECTED, refusal)
            return
        self._send_control(control.Accept(self._options.stream_window))
        self._accept()
        self._open()
        self._host._established(self)

    def _on_accept(self, accept: control.Accept) -> None:
        if self._accepted or self._binding is None:
            self._protocol_error("unexpected Accept")
            return
        if self._peer_window is None or accept.window > self._peer_window:
            self._peer_window = accept.window
            for stream in list(self._streams.values()):  # opened on the ticket's window
                if stream._credit(accept.window):
                    self._flush_stream(stream)
        self._accept()
        if not self._ready.is_set():
            self._open()

    def _accept(self) -> None:
        """The server admitted the client: the handshake is over for good."""
        self._accepted = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _open(self) -> None:
        """Let the app use streams: hand over those the peer opened meanwhile."""
        assert self._peer_window is not None
        for stream in list(self._streams.values()):  # even those still sending their label
            stream._credit(self._peer_window)
            stream._release()
        for stream in self._early:
            self._incoming.setdefault(stream.protocol, deque()).append(stream)
        self._early.clear()
        self._ready.set()
        self._wake_acceptor()
        self._keepalive = self._loop.call_later(self._options.keepalive, self._on_keepalive)
        self._ping()

    def _fail_handshake(self, error: HandshakeError, code: int, reason: str) -> None:
        log.debug("handshake with %s failed: %s", self._remote_address, error)
        if self._handshake_error is None:
            self._handshake_error = error
        self._close(code, reason, ConnectionClosedError(str(error), error_code=code, reason=reason))

    def _on_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if not self._accepted:
            self._fail_handshake(
                HandshakeError("handshake timed out"),
                CloseCode.HANDSHAKE_TIMEOUT,
                "handshake timed out",
            )

    def _protocol_error(self, reason: str) -> None:
        log.debug("protocol error from %s: %s", self._remote_address, reason)
        if not self._accepted and self._handshake_error is None:
            self._handshake_error = HandshakeError(reason)
        self._close(
            CloseCode.PROTOCOL_ERROR,
            reason,
            ConnectionClosedError(reason, error_code=CloseCode.PROTOCOL_ERROR, reason=reason),
        )

    # -- streams -----------------------------------------------------------------

    def _new_stream(self, stream_id: int, send_limit: int, protocol: bytes = b"") -> Stream:
        stream = Stream(
            self,
            stream_id,
            protocol=protocol,
            window=self._options.stream_window,
            max_window=self._options.max_stream_window,
            send_limit=send_limit,
            high_water=self._options.write_high_water,
        )
        self._streams[stream_id] = stream
        return stream

    def _on_stream_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        if stream_id == CONTROL_STREAM_ID:
            self._on_control(data, fin)
            return
        if self._closed.is_set():
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._open_remote_stream(stream_id)
            if stream is None:
                return
        if stream_id in self._unlabeled:
            data = self._read_header(stream, data, fin)
            if stream_id in self._unlabeled:
                return
        if not stream._feed(data, fin):
            self._protocol_error(f"peer exceeded flow-control credit on stream {stream_id}")

    def _open_remote_stream(self, stream_id: int) -> Stream | None:
        remote_initiated = bool(stream_id & 1) == self._is_initiator
        bidirectional = not stream_id & 2
        if not remote_initiated or not bidirectional or stream_id in self._refused:
            return None  # a stream we already finished and forgot, or one we do not use
        pending = len(self._unlabeled) + len(self._early) + sum(map(len, self._incoming.values()))
        if pending >= self._options.max_pending_streams:
            self._refuse(stream_id)
            return None
        stream = self._new_stream(stream_id, self._peer_window or 0)
        if not self._is_initiator and not self._accepted:  # an unproven peer: buffer little
            stream._hold_back(self._options.early_window)
        self._unlabeled[stream_id] = bytearray()
        return stream

    def _read_header(self, stream: Stream, data: bytes, fin: bool) -> bytes:
        """Collect a new stream's protocol label; route the stream once it is complete."""
        header = self._unlabeled[stream.stream_id]
        header += data
        if not header or len(header) < 1 + header[0]:
            if fin:  # ended before saying what it is for
                del self._unlabeled[stream.stream_id]
                self._forget_stream(stream)
            return b""
        size = 1 + header[0]
        del self._unlabeled[stream.stream_id]
        stream._set_protocol(bytes(header[1:size]), size)
        if self._ready.is_set():
            self._incoming.setdefault(stream.protocol, deque()).append(stream)
            self._wake_acceptor()
        else:
            self._early.append(stream)
        return bytes(header[size:])

    def _refuse(self, stream_id: int) -> None:
        if len(self._refused) >= _MAX_REFUSED_STREAMS:
            self._protocol_error("too many refused streams")
            return
        self._refused.add(stream_id)
        self._quic.stop_stream(stream_id, CloseCode.STREAM_REFUSED)
        self._quic.reset_stream(stream_id, CloseCode.STREAM_REFUSED)
        self._transmit_soon()

    def _wake_acceptor(self) -> None:
        if self._incoming_waiter is not None and not self._incoming_waiter.done():
            self._incoming_waiter.set_result(None)

    # StreamHost

    def _flush_stream(self, stream: Stream) -> None:
        if self._closed.is_set():
            return
        data, fin = stream._next_chunk()
        if data or fin:
            self._quic.send_stream_data(stream.stream_id, data, end_stream=fin)
            self._transmit_soon()

    def _grant_credit(self, stream_id: int, limit: int) -> None:
        if not self._closed.is_set():
            self._send_control(control.Credit(stream_id, limit))

    def _stop_receiving(self, stream_id: int) -> None:
        if self._closed.is_set():
            return
        try:
            self._quic.stop_stream(stream_id, CloseCode.NO_ERROR)
        except ValueError:
            return  # aioquic already discarded the stream
        self._transmit_soon()

    def _reset_sending(self, stream_id: int) -> None:
        if not self._closed.is_set():
            self._quic.reset_stream(stream_id, CloseCode.NO_ERROR)
            self._transmit_soon()

    def _rtt_estimate(self) -> float:
        return self._rtt if self._rtt is not None else 0.1

    def _forget_stream(self, stream: Stream) -> None:
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]

    # -- liveness ------------------------------------------------------------------

    def _on_keepalive(self) -> None:
        self._keepalive = None
        if self._closed.is_set():
            return
        self._ping()
        self._keepalive = self._loop.call_later(self._options.keepalive, self._on_keepalive)

    def _ping(self) -> None:
        uid = next(self._ping_ids)
        self._pings[uid] = self._now()
        while len(self._pings) > _MAX_PINGS:
            del self._pings[next(iter(self._pings))]
        self._quic.send_ping(uid)
        self._transmit_soon()

    def _on_pong(self, uid: int) -> None:
        sent = self._pings.pop(uid, None)
        if sent is not None:
            self._sample_rtt(self._now() - sent)

    def _sample_rtt(self, sample: float) -> None:
        self._rtt = sample if self._rtt is None else 0.875 * self._rtt + 0.125 * sample

    # -- closing -------------------------------------------------------------------

    def _close(self, code: int, reason: str, error: ConnectionClosedError) -> None:
        if self._closed.is_set():
            return
        if not self._terminated:
            self._quic.close(error_code=code, reason_phrase=reason)
            self._transmit()
        self._mark_closed(error)

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        self._terminated = True
        self._cancel_timers()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._peer_closed(event)
        self._host._terminated(self)

    def _peer_closed(self, event: events.ConnectionTerminated) -> None:
        """The connection is over (closed by the peer, or timed out): tell our side."""
        if self._closed.is_set():
            return
        reason = event.reason_phrase
        if not self._accepted and self._handshake_error is None:
            self._handshake_error = _handshake_error(event.error_code, reason)
        if self._handshake_error is not None:  # e.g. refused after a ticket let us open
            message = str(self._handshake_error)
        else:
            message = (
                f"connection closed by peer or timeout (code 0x{event.error_code:x}"
                f"{', ' + repr(reason) if reason else ''})"
            )
        self._mark_closed(
            ConnectionClosedError(message, error_code=event.error_code, reason=reason)
        )

    def _abandon(self) -> None:
        """Stop driving this connection at once (its endpoint is going away)."""
        self._terminated = True
        self._cancel_timers()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._mark_closed(ConnectionClosedError("endpoint closed"))

    def _cancel_timers(self) -> None:
        for handle in (self._handshake_timer, self._keepalive, self._transmit_handle):
            if handle is not None:
                handle.cancel()
        self._handshake_timer = self._keepalive = self._transmit_handle = None
        self._cancel_admission()

    def _cancel_admission(self) -> None:
        if self._admission is not None:
            self._admission.cancel()
            self._admission = None

    def _mark_closed(self, error: ConnectionClosedError) -> None:
        if self._closed.is_set():
            return
        self._close_error = error
        self._closed.set()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self._cancel_admission()
        if self._acked_waiter is not None and not self._acked_waiter.done():
            self._acked_waiter.set_result(None)
        if not self._ready.is_set():
            if self._handshake_error is None:
                self._handshake_error = HandshakeError(str(error))
            self._ready.set()
        for stream in list(self._streams.values()):
            stream._connection_lost(error)
        self._streams.clear()
        self._wake_acceptor()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            self._run_callback(callback)

    def _run_callback(self, callback: CloseCallback) -> None:
        try:
            callback(self)
        except Exception:
            log.exception("close callback failed")


def _handshake_error(code: int, reason: str) -> HandshakeError:
    """The error a dialer sees when the peer closed before accepting it."""
    detail = f"{peer_text(reason)} (code 0x{code:x})" if reason else f"code 0x{code:x}"
    if code == CloseCode.REJECTED:
        return PeerRejectedError(f"peer rejected the connection: {detail}")
    if code == CloseCode.AUTH_FAILED:
        return AuthenticationError(f"peer refused our authentication: {detail}")
    return HandshakeError(f"connection closed during handshake: {detail}")


def _label(protocol: bytes | str) -> bytes:
    label = protocol.encode() if isinstance(protocol, str) else bytes(protocol)
    if len(label) > 255:
        raise InvalidArgumentError("a stream protocol label is at most 255 bytes")
    return label
