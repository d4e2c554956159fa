"""Swarm: find peers on the DHT by key or topic and hold one QUIC connection to each.

The swarm runs its QUIC endpoint on its DHT node's socket (first bytes 0x40–0xFF),
so QUIC leaves through the NAT mapping the DHT learned. Connecting to a key:

1. look up ``hash32(public_key)`` (where :meth:`Swarm.listen` announces) → records;
   a key seen before (a topic, an earlier connect) skips this: the relays its last
   record names most likely still hold an announcement of it, and are asked first
   (the query follows only if they stay silent for ``QUERY_HEDGE``);
2. send a :class:`~swarm.handshake.ConnectRequest` through one of the record's relay
   nodes (``DHTNode.forward_call``); the peer screens the key we claim there (firewall,
   bans, room) and refuses at once, or answers with the addresses it takes QUIC on
   and an admission ticket (``swarm.admission``);
3. dial them in turn; the connection is handed out once the peer proved the key we
   looked up (the ticket spares us the wait for its Accept; the peer still checks
   our proof, for the key we claimed, before its app sees a byte of ours).

A topic joined as client runs the same steps for every key its lookup yields. One
connection is kept per pair of peers: if both dialed, both keep the one whose
initiator has the larger public key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from typing import Any, Protocol, TypeVar

from dht.errors import RequestTimeoutError
from dht.node import DHTNode
from dht.node_id import hash32
from dht.records import PeerRecord
from dht.transport import Address, Network
from storage.errors import ClosedError, DecodeError, InvalidArgumentError, PeerswarmError
from storage.keypair import PUBLIC_KEY_SIZE, KeyPair
from storage.resource import AsyncResource
from swarm import handshake
from swarm.admission import Admission, Firewall, screen
from swarm.connection import CloseCode, Connection
from swarm.discovery import Discovery
from swarm.errors import (
    AuthenticationError,
    HandshakeError,
    PeerNotFoundError,
    PeerRejectedError,
)
from swarm.handshake import ConnectReply, ConnectRequest, ReplyStatus
from swarm.local_host import is_loopback, is_this_host, local_ips
from swarm.peer_info import PeerInfo
from swarm.quic_endpoint import EarlyDial, QuicEndpoint
from swarm.quic_options import QuicOptions
from swarm.relayed_handshake import HEDGE, RelayedHandshake, relay_order

log = logging.getLogger(__name__)

T = TypeVar("T")
QUIC_FIRST, QUIC_LAST = 0x40, 0xFF
UNANNOUNCE_TIMEOUT = 2.0
ConnectionCallback = Callable[[Connection], Awaitable[None] | None]


class Replication(Protocol):
    async def close(self) -> None: ...


QUERY_HEDGE = 2 * HEDGE
"""Seconds a connect through the relays of a key's last record waits for them before
it also asks the DHT. Their answer takes two round trips, so this covers paths of up
to 250 ms round trip; when they stay silent longer they are most likely gone. (hyperdht
queries alongside from the start; most reconnects find the relays alive, and then we
send no query at all.)"""


def key_topic(public_key: bytes) -> bytes:
    """Where a peer announces itself to be reachable by key alone (as the DHT suggests)."""
    return hash32(public_key)


class Swarm(AsyncResource):
    """A peer: one DHT node, one QUIC endpoint on its socket, connections by key or topic."""

    def __init__(
        self,
        bootstrap: Iterable[Address] = (),
        key_pair: KeyPair | None = None,
        store: Any = None,
        max_peers: int = 64,
        firewall: Firewall | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        network: Network | None = None,
        options: QuicOptions | None = None,
        dht_options: dict[str, Any] | None = None,
        attempt_timeout: float = 5.0,
        lookup_interval: float = 60.0,
    ) -> None:
        if max_peers < 1:
            raise InvalidArgumentError("max_peers must be at least 1")
        self.key_pair = key_pair or KeyPair.generate()
        self.store = store
        self.max_peers = max_peers
        self.firewall = firewall
        self.options = dataclasses.replace(options or QuicOptions(), max_connections=max_peers)
        self.attempt_timeout = attempt_timeout
        self.lookup_interval = lookup_interval
        self.dht = DHTNode(
            bootstrap, host, port, self.key_pair, network=network, **(dht_options or {})
        )
        self._endpoint = QuicEndpoint(
            self.key_pair,
            self._send,
            options=self.options,
            firewall=self._allow,
            on_connection=self._adopt,
        )
        self._connections: dict[bytes, Connection] = {}
        self._connecting: dict[bytes, asyncio.Task[Connection]] = {}
        self._dial_waiters: dict[bytes, list[asyncio.Future[Connection]]] = {}
        self._discoveries: dict[bytes, tuple[Discovery, asyncio.Task[None]]] = {}
        self._kept_peers: dict[bytes, asyncio.Task[None]] = {}
        self._peers: dict[bytes, PeerInfo] = {}
        self._callbacks: list[ConnectionCallback] = []
        self._iterators: set[asyncio.Queue[Connection | None]] = set()
        self._replications: dict[Connection, Replication] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listening = False
        self._started = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start the DHT node and serve QUIC and forwarded handshakes on its socket."""
        if self._started:
            return
        self._started = True
        await self.dht.start()
        self.dht.add_datagram_handler(QUIC_FIRST, QUIC_LAST, self._endpoint.datagram_received)
        self.dht.on_forward(self._on_forward)
        # a socket bound to loopback only ever reaches peers on this host
        self._endpoint.prepare(self._local_peers())

    async def close(self) -> None:
        """Leave everything: cancel our tasks, close connections (peers are told), DHT."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._unannounce_all()
        for replication in list(self._replications.values()):
            with contextlib.suppress(Exception):
                await replication.close()
        self._replications.clear()
        await self._endpoint.close()
        if self._started:
            self.dht.remove_datagram_handler(QUIC_FIRST, QUIC_LAST)
            self.dht.on_forward(None)
        await self.dht.close()
        for queue in self._iterators:
            queue.put_nowait(None)

    async def _unannounce_all(self) -> None:
        """Withdraw our records so nobody dials a peer that is gone (best effort, bounded)."""
        topics = [t for t, (d, _) in self._discoveries.items() if d.server]
        if self._listening:
            topics.append(key_topic(self.public_key))
        self._discoveries.clear()
        if not topics or not self._started:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(UNANNOUNCE_TIMEOUT):
                await asyncio.gather(
                    *(self.dht.unannounce(t, self.key_pair) for t in topics),
                    return_exceptions=True,
                )

    async def _enter(self) -> None:
        await self.start()

    # -- public API --------------------------------------------------------------------

    @property
    def public_key(self) -> bytes:
        return self.key_pair.public_key

    @property
    def peers(self) -> list[PeerInfo]:
        """Every peer key seen so far, with its topics and connection state."""
        return list(self._peers.values())

    @property
    def listening(self) -> bool:
        return self._listening

    def get_connection(self, public_key: bytes) -> Connection | None:
        """The open connection to ``public_key``, if there is one."""
        conn = self._connections.get(public_key)
        return conn if conn is not None and not conn.is_closed else None

    async def listen(self) -> None:
        """Accept connections and announce ourselves under :func:`key_topic`."""
        self._check_open()
        self._endpoint.accepting = True
        if not self._listening:
            await self.dht.announce(key_topic(self.public_key), self.key_pair)
            self._listening = True

    async def connect(self, public_key: bytes) -> Connection:
        """A connection to the peer with ``public_key`` (the existing one, if any).

        Raises :class:`PeerNotFoundError` when the key is not announced,
        :class:`PeerRejectedError` when the peer refuses, and
        :class:`HandshakeError` (or :class:`AuthenticationError`) otherwise.
        """
        self._check_open()
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise InvalidArgumentError(f"a public key is {PUBLIC_KEY_SIZE} bytes")
        if public_key == self.public_key:
            raise InvalidArgumentError("cannot connect to ourselves")
        if (conn := self.get_connection(public_key)) is not None:
            return conn
        # Our own future, not the shared dial task: cancelling this call leaves the dial
        # to whoever else waits for it; the dial resolves it the moment it has the
        # connection (a shield would take two more turns of the event loop).
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        waiters = self._dial_waiters.setdefault(public_key, [])
        waiters.append(waiter)
        try:
            self._dial_once(public_key, None)
            return await waiter
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._dial_waiters.get(public_key) is waiters:
                del self._dial_waiters[public_key]

    def join(self, topic: bytes, server: bool = True, client: bool = True) -> Discovery:
        """Announce ``topic`` (server) and/or connect to everyone announcing it (client)."""
        self._check_open()
        if len(topic) != 32:
            raise InvalidArgumentError("a topic is 32 bytes")
        if not server and not client:
            raise InvalidArgumentError("join as server, client or both")
        if topic in self._discoveries:
            _, task = self._discoveries.pop(topic)
            task.cancel()
        if server:
            self._endpoint.accepting = True
        discovery = Discovery(
            topic,
            server=server,
            client=client,
            announce=self._announce,
            discover=self._discover,
            lookup_interval=self.lookup_interval,
        )
        self._discoveries[topic] = (discovery, self._spawn(discovery.run()))
        return discovery

    async def leave(self, topic: bytes) -> None:
        """Stop announcing and looking up ``topic``; connections stay open."""
        entry = self._discoveries.pop(topic, None)
        if entry is None:
            return
        discovery, task = entry
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if discovery.server and not self._closed:
            with contextlib.suppress(PeerswarmError):
                await self.dht.unannounce(topic, self.key_pair)

    def join_peer(self, public_key: bytes) -> None:
        """Keep a connection to ``public_key``: connect now and again whenever it drops."""
        self._check_open()
        if public_key not in self._kept_peers:
            self._kept_peers[public_key] = self._spawn(self._keep_peer(public_key))

    def leave_peer(self, public_key: bytes) -> None:
        """Stop reconnecting to ``public_key`` (an open connection stays)."""
        task = self._kept_peers.pop(public_key, None)
        if task is not None:
            task.cancel()

    async def flush(self) -> None:
        """Wait until every join is flushed and every queued connection attempt settled."""
        for discovery, _ in list(self._discoveries.values()):
            with contextlib.suppress(PeerswarmError):
                await discovery.flushed()
        while pending := list(self._connecting.values()):
            await asyncio.gather(*pending, return_exceptions=True)

    def on_connection(self, callback: ConnectionCallback) -> None:
        """Call ``callback(conn)`` (plain or async) for every new connection."""
        self._callbacks.append(callback)

    async def connections(self) -> AsyncIterator[Connection]:
        """The open connections, then each new one, until the swarm closes."""
        queue: asyncio.Queue[Connection | None] = asyncio.Queue()
        for conn in self._connections.values():
            if not conn.is_closed:
                queue.put_nowait(conn)
        self._iterators.add(queue)
        try:
            while (item := await queue.get()) is not None:
                if not item.is_closed:
                    yield item
        finally:
            self._iterators.discard(queue)

    # -- dialing -----------------------------------------------------------------------

    def _dial_once(
        self, public_key: bytes, record: PeerRecord | None, holder: Address | None = None
    ) -> asyncio.Task[Connection]:
        """One dial per key at a time: a second caller shares the first one's attempt.

        A dial from a ``record`` sends its relayed handshake now, in the caller's turn
        of the event loop (the burst of lookup replies that brought the record also
        starts the lookup's next round, and a task would only get to it after that),
        through ``holder`` first: the node that gave us the record holds the
        announcement, and we its token (a relay we hold none of asks for one first).
        """
        task = self._connecting.get(public_key)
        if task is None or task.done():  # done: its callbacks have yet to forget it
            self._peer(public_key).attempts += 1
            begun = None if record is None else self._begin(record, holder)
            task = self._spawn(self._attempt(public_key, begun))
            if begun is not None:
                task.add_done_callback(lambda _: begun.stop())  # also when cancelled unstarted
            self._connecting[public_key] = task

            def done(t: asyncio.Task[Connection]) -> None:
                if self._connecting.get(public_key) is t:
                    del self._connecting[public_key]
                if t.cancelled():  # maybe before it ran: tell connect()'s callers now
                    self._tell(public_key, None, ClosedError("swarm closed while connecting"))

            task.add_done_callback(done)
            task.add_done_callback(_log_failure)
        return task

    async def _attempt(self, public_key: bytes, begun: _Begun | None) -> Connection:
        """One dial: by key, or one :meth:`_begin` started from a record. Tells
        :meth:`connect`'s callers as soon as it is over, not a turn of the event loop
        later (cancelled: its task's done callback tells them: only :meth:`close`
        cancels a dial)."""
        try:
            if begun is None:
                conn = await self._connect_key(public_key)
            else:
                conn = await self._connect_begun(begun)
        except Exception as e:
            self._tell(public_key, None, e)
            raise
        self._tell(public_key, conn, None)
        return conn

    def _tell(self, public_key: bytes, conn: Connection | None, error: Exception | None) -> None:
        """Resolve the :meth:`connect` calls waiting for a dial to ``public_key``."""
        for waiter in self._dial_waiters.get(public_key, ()):
            if waiter.done():
                continue
            if conn is not None:
                waiter.set_result(conn)
            else:
                waiter.set_exception(error or ClosedError("dial ended without a connection"))

    async def _connect_key(self, public_key: bytes) -> Connection:
        peer = self._peers.get(public_key)
        record = None if peer is None else peer.record
        if peer is not None and record is not None and self.dht.is_fresh(record):
            return await self._connect_known(peer, record)
        return await self._dial_found(self._ask_found(public_key))

    async def _ask_found(self, public_key: bytes) -> tuple[_Begun, ConnectReply]:
        """Query the DHT for the key's record and send the handshake through the node
        that answered with it (the first record is all a lookup can give: the query
        stops there, and that node holds the announcement and our token)."""
        found = await self.dht.find_peer(key_topic(public_key), public_key)
        if found is None:
            raise PeerNotFoundError(f"no announcement of {public_key.hex()} on the DHT")
        self._saw_record(*found)
        begun = self._begin(*found)
        try:
            return begun, await self._relayed_reply(begun)
        except BaseException:
            begun.stop()
            raise

    async def _connect_known(self, peer: PeerInfo, record: PeerRecord) -> Connection:
        """Connect through the relays of a peer's last record, with no DHT query: they
        most likely still hold its announcement. Should they stay silent for
        :data:`QUERY_HEDGE`, the DHT is asked alongside and the first answer wins; once
        they failed, or one FORWARD's reply timeout passed, the record is forgotten and
        the query decides. The peer's own refusal, through either, is final."""
        known = self._begin(record, peer.holder)
        relayed = asyncio.ensure_future(self._relayed_reply(known))
        query: asyncio.Future[tuple[_Begun, ConnectReply]] | None = None
        loop = asyncio.get_running_loop()
        hedge_at = loop.time() + QUERY_HEDGE
        give_up = loop.time() + self.dht.forward_timeout
        try:
            while not relayed.done():
                if query is not None and query.done() and _decisive(query):
                    return await self._dial_found(query)
                now = loop.time()
                if now >= give_up:
                    break
                if query is None and now >= hedge_at:
                    query = asyncio.ensure_future(self._ask_found(record.public_key))
                waiting = [f for f in (relayed, query) if f is not None and not f.done()]
                wake = hedge_at if query is None else give_up
                await asyncio.wait(waiting, timeout=wake - now, return_when=asyncio.FIRST_COMPLETED)
            if relayed.done() and _decisive(relayed):
                return await self._dial_reply(known, relayed.result())
            log.debug("the relays of %s's last record failed", record.public_key.hex()[:16])
            if peer.record is record:
                peer.record = peer.holder = None
            if query is None:
                query = asyncio.ensure_future(self._ask_found(record.public_key))
            return await self._dial_found(query)
        finally:
            known.stop()
            attempts: list[asyncio.Future[Any]] = [relayed] if query is None else [relayed, query]
            for attempt in attempts:
                attempt.cancel()  # a no-op on one that finished
            await asyncio.gather(*attempts, return_exceptions=True)  # ours: end them here
            if query is not None and not query.cancelled() and query.exception() is None:
                query.result()[0].stop()  # an answer we did not take (or did: a no-op)

    async def _dial_found(self, query: Awaitable[tuple[_Begun, ConnectReply]]) -> Connection:
        """Dial what :meth:`_ask_found` got (or raise what it raised)."""
        begun, reply = await query
        try:
            return await self._dial_reply(begun, reply)
        finally:
            begun.stop()

    def _saw_record(self, record: PeerRecord, holder: Address | None) -> PeerInfo:
        """Keep the newest record of a key (and who gave it) for a later connect."""
        peer = self._peer(record.public_key)
        if peer.record is None or record.timestamp >= peer.record.timestamp:
            peer.record, peer.holder = record, holder
        return peer

    def _begin(self, record: PeerRecord, holder: Address | None = None) -> _Begun:
        """Start a dial from ``record`` now: QUIC starts inside the relayed handshake
        (our Initial goes with the request, the server's answer comes back with the
        reply, swarm.handshake). Never raises: a failure is the handshake's result."""
        early = None
        with contextlib.suppress(PeerswarmError):
            early = self._endpoint.dial_early(record.public_key, local=self._local_peers())
        ask = self._ask(record, holder, early.initial if early else b"")
        return _Begun(self._endpoint, record, holder, early, ask)

    def _ask(
        self, record: PeerRecord, holder: Address | None, quic: bytes = b""
    ) -> RelayedHandshake:
        request = handshake.encode_request(
            ConnectRequest(self.public_key, record.public_key, tuple(self._addresses()), quic)
        )
        relays = relay_order(record.relay_addresses, self.dht.has_token, holder)
        return RelayedHandshake(self.dht, record.public_key, request, relays)

    async def _connect_begun(self, begun: _Begun) -> Connection:
        return await self._dial_reply(begun, await self._relayed_reply(begun))

    async def _relayed_reply(self, begun: _Begun) -> ConnectReply:
        """The peer's answer to the handshake ``begun`` sent through its relays."""
        record = begun.record
        try:
            reply = await begun.ask.result
        except HandshakeError as e:
            if begun.early is None or not isinstance(e.__cause__, RequestTimeoutError):
                raise
            # no relay answered at all: a relayed message with a QUIC datagram inside
            # is ~1.4 KB, and should a path drop what a small one passes, try without
            begun.stop()
            begun.ask = self._ask(record, begun.holder)
            reply = await begun.ask.result
        if reply.status != ReplyStatus.OK:
            raise PeerRejectedError(
                f"peer refused the handshake: {reply.reason or reply.status.name.lower()}"
            )
        return reply

    async def _dial_reply(self, begun: _Begun, reply: ConnectReply) -> Connection:
        """Dial the addresses the peer answered ``begun`` with."""
        return await self._dial(
            begun.record.public_key, reply.addresses, reply.admission, begun.early, reply.quic
        )

    async def _dial(
        self,
        public_key: bytes,
        addresses: Iterable[Address],
        admission: Admission | None = None,
        early: EarlyDial | None = None,
        answer: bytes = b"",
    ) -> Connection:
        """Dial the addresses in turn; the first goes on with ``early`` when it was
        built for that kind of path (the others, or a mismatch, start afresh; an
        ``early`` no address took is the caller's to discard)."""
        own = set(self._addresses())
        last: Exception | None = None
        for addr in _dial_order(addresses):
            if (existing := self.get_connection(public_key)) is not None:
                return existing  # the peer dialed us meanwhile
            if addr in own:
                continue
            resume, early = early, None
            if resume is not None and resume.local != is_this_host(addr):
                self._endpoint.discard(resume, addr)  # the server may hold its half
                resume = None
            try:
                async with asyncio.timeout(self.attempt_timeout):
                    conn = await self._endpoint.connect(
                        addr, public_key, admission=admission, early=resume, answer=answer
                    )
            except PeerRejectedError:
                raise
            except (TimeoutError, HandshakeError) as e:
                last = e  # includes a stale address now used by another key
                continue
            return self._adopt(conn)
        if isinstance(last, AuthenticationError):
            raise last
        raise HandshakeError(f"could not reach {public_key.hex()[:16]} at any address: {last}")

    async def _keep_peer(self, public_key: bytes) -> None:
        backoff = 1.0
        while True:
            try:
                conn = await self.connect(public_key)
            except PeerswarmError as e:
                log.debug("keeping %s: %s", public_key.hex()[:16], e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            await conn.wait_closed()

    # -- topics ------------------------------------------------------------------------

    async def _announce(self, topic: bytes) -> None:
        await self.dht.announce(topic, self.key_pair)

    async def _discover(self, topic: bytes) -> None:
        async with contextlib.aclosing(self.dht.find_peers(topic)) as found:
            async for record, holder in found:
                key = record.public_key
                if key == self.public_key:
                    continue
                peer = self._saw_record(record, holder)
                peer.topics.add(topic)
                if self.get_connection(key) is not None or key in self._connecting:
                    continue
                if len(self._connections) >= self.max_peers or peer.banned:
                    continue
                self._dial_once(key, record, holder)

    # -- serving -----------------------------------------------------------------------

    def _on_forward(self, payload: bytes, sender: Address) -> bytes | Awaitable[bytes]:
        """Answer a handshake a DHT node forwarded to us (``sender``: the client as seen).

        The client is screened here, on the key it claims, so a refused one learns it
        before any QUIC; an admitted one gets a ticket that binds the claim to its
        QUIC connection, where it must prove that key. Answered at once unless the
        firewall is async (a task would cost a turn of the event loop on every connect).
        """
        request = handshake.decode_request(payload)  # DecodeError -> the DHT answers BAD_REQUEST
        if request.server_key != self.public_key:
            reply = ConnectReply(ReplyStatus.WRONG_PEER, reason="not this peer")
        elif not self._endpoint.accepting:
            reply = ConnectReply(ReplyStatus.NOT_LISTENING, reason="not listening")
        elif self._full():
            reply = ConnectReply(ReplyStatus.BUSY, reason="too many connections")
        else:
            verdict = screen(self._allow, request.client_key)
            if inspect.isawaitable(verdict):
                return self._answer_later(request, sender, verdict)
            reply = self._answer(request, sender, verdict)
        return handshake.encode_reply(reply)

    async def _answer_later(
        self, request: ConnectRequest, sender: Address, verdict: Awaitable[bool]
    ) -> bytes:
        return handshake.encode_reply(self._answer(request, sender, await verdict))

    def _answer(self, request: ConnectRequest, sender: Address, allowed: bool) -> ConnectReply:
        if not allowed:
            return ConnectReply(ReplyStatus.REJECTED, reason="rejected by firewall")
        if self._full():  # others got in while an async firewall thought
            return ConnectReply(ReplyStatus.BUSY, reason="too many connections")
        admission = self._endpoint.admit_ahead(request.client_key)
        answer = self._endpoint.accept_early(request.quic, sender) if request.quic else b""
        return ConnectReply(
            ReplyStatus.OK, tuple(self._addresses()), admission=admission, quic=answer
        )

    def _full(self) -> bool:
        # as strict as the endpoint's own check, so a client we admit here is not
        # turned away by it a moment later
        return len(self._connections) >= self.max_peers or self._endpoint.full

    def _addresses(self) -> list[Address]:
        """Where peers can send us QUIC: the public address the DHT saw, then local ones."""
        found: list[Address] = []
        public = self.dht.public_address
        if public is not None:
            found.append(public)
        host, port = self.dht.address
        if host in ("0.0.0.0", "::", ""):
            found += [(ip, port) for ip in local_ips()]
        else:
            found.append((host, port))
        return list(dict.fromkeys(found))

    def _local_peers(self) -> bool:
        """Whether the peers we dial are on this host: a node bound to loopback reaches
        no other (a dial is prepared for them before their address is known)."""
        return is_loopback(self.dht.address)

    def _allow(self, public_key: bytes) -> bool | Awaitable[bool]:
        peer = self._peers.get(public_key)
        if peer is not None and peer.banned:
            return False
        if self.firewall is None:
            return True
        allowed = self.firewall(public_key)
        return allowed if inspect.isawaitable(allowed) else bool(allowed)

    def _send(self, data: bytes, addr: Address) -> None:
        with contextlib.suppress(ClosedError):
            self.dht.send_datagram(data, addr)

    # -- connections -------------------------------------------------------------------

    def _adopt(self, conn: Connection) -> Connection:
        """Take a new authenticated connection; return the one kept for that peer."""
        key = conn.remote_public_key
        existing = self.get_connection(key)
        if existing is not None and existing is not conn:
            keep = self._preferred(existing, conn)
            drop = conn if keep is existing else existing
            drop.close_nowait("duplicate connection", CloseCode.DUPLICATE)
            if keep is existing:
                return existing
        self._connections[key] = conn
        self._peer(key).connected = True
        conn.on_close(self._on_closed)
        if self.store is not None and hasattr(self.store, "replicate"):
            try:
                self._replications[conn] = self.store.replicate(conn)
            except Exception:
                log.exception("could not start replication with %s", conn)
        for callback in self._callbacks:
            try:
                result = callback(conn)
            except Exception:
                log.exception("on_connection callback failed")
                continue
            if inspect.isawaitable(result):
                self._spawn(_await(result)).add_done_callback(_log_failure)
        for queue in self._iterators:
            queue.put_nowait(conn)
        return conn

    def _preferred(self, a: Connection, b: Connection) -> Connection:
        """Of two connections to one peer, the one both ends keep."""
        if a.is_initiator == b.is_initiator:
            return a  # both dialed by the same side: keep the older
        initiator_key = self.public_key if a.is_initiator else a.remote_public_key
        other_key = b.remote_public_key if a.is_initiator else self.public_key
        return a if initiator_key > other_key else b

    def _on_closed(self, conn: Connection) -> None:
        key = conn.remote_public_key
        if self._connections.get(key) is conn:
            del self._connections[key]
            self._peer(key).connected = False
        replication = self._replications.pop(conn, None)
        if replication is not None and not self._closed:
            self._spawn(replication.close()).add_done_callback(_log_failure)

    # -- helpers -----------------------------------------------------------------------

    def _peer(self, public_key: bytes) -> PeerInfo:
        peer = self._peers.get(public_key)
        if peer is None:
            peer = self._peers[public_key] = PeerInfo(public_key)
        return peer

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the swarm is closed")
        if not self._started:
            raise ClosedError("the swarm is not started (use `async with Swarm(...)`)")

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


@dataclasses.dataclass(slots=True)
class _Begun:
    """A dial begun from a record (:meth:`Swarm._begin`): the relayed handshake in
    flight and the QUIC client whose Initial went with it, until a dial takes it."""

    endpoint: QuicEndpoint
    record: PeerRecord
    holder: Address | None
    early: EarlyDial | None
    ask: RelayedHandshake

    def stop(self) -> None:
        """Withdraw the handshake and discard the early client unless a dial took it."""
        self.ask.stop()
        if self.early is not None:
            self.endpoint.discard(self.early)
            self.early = None


async def _await(result: Awaitable[None]) -> None:
    await result


def _decisive(answer: asyncio.Future[Any]) -> bool:
    """Whether a finished attempt settles a connect: it got the peer's answer, or the
    peer's refusal (raised by ``result()``). Any other failure leaves it to the other."""
    error = answer.exception()
    return error is None or isinstance(error, PeerRejectedError)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    if isinstance(exc, PeerswarmError | DecodeError):
        log.debug("swarm task failed: %s", exc)
    else:
        log.error("swarm task failed", exc_info=exc)


def _dial_order(addresses: Iterable[Address]) -> list[Address]:
    """The candidates worth dialing, best first.

    Loopback addresses reach the peer only from its own host: we are on it when all
    its addresses are loopback or one of them is one of our own IPs; then loopback
    goes first (fast path, big packets), else it is dropped.
    """
    unique = list(dict.fromkeys(addresses))
    loopback = [a for a in unique if is_loopback(a)]
    others = [a for a in unique if not is_loopback(a)]
    if not others or any(is_this_host(a) for a in others):
        return loopback + others
    return others
