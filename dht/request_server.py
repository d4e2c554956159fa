"""RequestServer: how a DHT node answers the requests other nodes send it.

The serving half of :class:`dht.node.DHTNode` (which inherits it): reads answered
from the record store and routing table, writes accepted only with a valid token,
NAT-check probes sent from a fresh socket, and FORWARD/FORWARDED relayed to the app's
handler, with their replies cached so a retransmitted request is answered again
rather than run again. The node provides the socket, the clock, its tables and
outgoing RPC (the attributes declared below); this half adds the serving state.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from dht import records as rec
from dht.messages import NONCE_SIZE, Command, ErrorCode, Probe, Request, Response, encode
from dht.node_id import ID_SIZE, hash32, node_id
from dht.rate_limit import TokenBucket
from dht.record_store import RecordStore
from dht.records import PeerRecord, Removal
from dht.routing_table import RoutingTable
from dht.rpc import ReplyCallback
from dht.tokens import Tokens
from dht.transport import Address, DatagramTransport, Network
from storage.errors import DecodeError, PeerswarmError, VerificationError

log = logging.getLogger(__name__)

T = TypeVar("T")
ForwardHandler = Callable[[bytes, Address], bytes | Awaitable[bytes]]
"""Given a forwarded payload and its client's address: the reply, or an awaitable of it."""

MAX_FORWARD_PAYLOAD = 1400
"""Largest forwarded payload (and reply). A connect handshake carries one QUIC datagram
of the minimum size (1200 bytes) each way (``swarm.handshake``); with the DHT's headers
a relayed message stays under 1472 bytes, what one datagram carries on a 1500-byte MTU."""
MAX_RECORDS_PER_REPLY = 10
"""A lookup reply carries at most this many records (a random sample when more, unless
the request asks for a page: ``dht.pages``)."""
UNAUTHENTICATED_REPLY_BUDGET = 600
"""Without a valid token a reply may be this large, or 3x the request if larger;
a reply that would be bigger carries TOKEN_REQUIRED and a token instead."""
MAX_CLOCK_SKEW = 300.0
"""Seconds an announcement's timestamp may be ahead of our clock."""
MAX_CONCURRENT_FORWARDS = 64
FORWARD_REPLY_TTL = 15.0
"""Seconds a FORWARD/FORWARDED reply is kept to answer retransmissions of its request
(a client with default settings gives up after 9.5 s) without running it again."""
MAX_FORWARD_REPLIES = 256
MAX_CONCURRENT_PROBES = 16
_COMMANDS = frozenset(int(c) for c in Command)


class RequestServer:
    """Serves DHT requests; a base of :class:`dht.node.DHTNode`, which sets the
    attributes annotated here and implements the methods stubbed for type checking."""

    k: int
    record_ttl: float
    request_timeout: float
    records: RecordStore
    routing_table: RoutingTable
    _id: bytes | None
    _transport: DatagramTransport | None
    _network: Network
    _host: str
    _clock: Callable[[], float]
    _rng: random.Random
    _closed: bool

    if TYPE_CHECKING:

        def _now(self) -> float: ...

        def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]: ...

        def _saw_node(self, contact_id: bytes, addr: Address) -> None: ...

        def _call(
            self,
            addr: Address,
            command: int,
            callback: ReplyCallback,
            *,
            target: bytes | None = None,
            value: bytes | None = None,
            token: bytes | None = None,
            reply_timeout: float | None = None,
        ) -> object: ...

    def __init__(self) -> None:
        self._tokens = Tokens()
        self._forward_handler: ForwardHandler | None = None
        self._probe_budget = TokenBucket(rate=20.0, burst=40.0)
        self._probes_sending = 0
        self._serving: set[tuple[Address, int]] = set()
        self._forward_replies: OrderedDict[tuple[Address, int], tuple[float, bytes, bytes]] = (
            OrderedDict()
        )
        """(requester, tid) -> (expiry, request digest, reply datagram), oldest first."""

    def _on_request(self, req: Request, addr: Address, size: int) -> None:
        if req.id is not None and req.id == node_id(addr):
            self._saw_node(req.id, addr)
        authenticated = self._tokens.check(addr[0], req.token)
        if req.command in (Command.FORWARD, Command.FORWARDED):
            self._serve_forward(req, addr, authenticated, size)
            return
        try:
            error, nodes, value = self._serve(req, addr, authenticated)
        except DecodeError:
            error, nodes, value = ErrorCode.BAD_REQUEST, [], None
        except VerificationError:
            error, nodes, value = ErrorCode.INVALID_SIGNATURE, [], None
        self._reply(req, addr, error, nodes, value, authenticated, size)

    def _reply(
        self,
        req: Request,
        addr: Address,
        error: int,
        nodes: list[Address],
        value: bytes | None,
        authenticated: bool,
        request_size: int,
    ) -> bytes | None:
        """Send the reply; returns the datagram sent (``None`` when closed)."""
        if self._transport is None or self._closed:
            return None
        token = self._tokens.issue(addr[0])
        resp = Response(req.tid, addr, self._id, token, nodes, error, value)
        data = encode(resp)
        budget = max(UNAUTHENTICATED_REPLY_BUDGET, 3 * request_size)
        if not authenticated and len(data) > budget:
            data = encode(Response(req.tid, addr, self._id, token, nodes, ErrorCode.TOKEN_REQUIRED))
            if len(data) > budget:
                data = encode(
                    Response(req.tid, addr, self._id, token, [], ErrorCode.TOKEN_REQUIRED)
                )
        self._transport.sendto(data, addr)
        return data

    def _closer(self, target: bytes | None, exclude: Address) -> list[Address]:
        if target is None:
            return []
        return [
            c.address
            for c in self.routing_table.closest(target, self.k + 1, ordered=False)
            if c.address != exclude
        ][: self.k]

    def _serve(
        self, req: Request, addr: Address, authenticated: bool
    ) -> tuple[int, list[Address], bytes | None]:
        """Answer one request synchronously: (error, closer nodes, value)."""
        cmd, target, now = req.command, req.target, self._now()
        if cmd not in _COMMANDS:
            return ErrorCode.UNKNOWN_COMMAND, [], None
        nodes = self._closer(target, addr)
        if cmd == Command.PING:
            return ErrorCode.OK, [], None
        if cmd == Command.FIND_NODE:
            return ErrorCode.OK, nodes, None
        if cmd == Command.NAT_CHECK:
            if req.value is None or len(req.value) != NONCE_SIZE:
                return ErrorCode.BAD_REQUEST, [], None
            if self._probes_sending >= MAX_CONCURRENT_PROBES or not self._probe_budget.take(now):
                return ErrorCode.BUSY, [], None  # no probe coming: do not count on us
            self._spawn(self._send_probe(addr, req.value))
            return ErrorCode.OK, [], None
        if target is None:
            return ErrorCode.BAD_REQUEST, [], None
        if cmd == Command.LOOKUP:
            after = req.value
            if after is None:
                found = self.records.sample(target, now, MAX_RECORDS_PER_REPLY, self._rng)
            elif len(after) <= ID_SIZE:  # a page (dht.pages): the records after a key
                found = self.records.page(target, now, after, MAX_RECORDS_PER_REPLY)
            else:
                return ErrorCode.BAD_REQUEST, nodes, None
            return ErrorCode.OK, nodes, rec.encode_lookup_reply(found) if found else None
        if cmd == Command.IMMUTABLE_GET:
            return ErrorCode.OK, nodes, self.records.get_immutable(target, now)
        if cmd == Command.MUTABLE_GET:
            mutable = self.records.get_mutable(target, now)
            return ErrorCode.OK, nodes, None if mutable is None else mutable.encode()
        if cmd == Command.UNANNOUNCE:
            removal = Removal.decode(req.value or b"")
            removal.verify(target)
            code = self.records.announce(
                target, None, removal.public_key, removal.timestamp, addr, now
            )
            return code, nodes, None
        # Writes: only from a requester proven to receive at its IP.
        if not authenticated:
            return ErrorCode.TOKEN_REQUIRED, nodes, None
        if cmd == Command.ANNOUNCE:
            record = PeerRecord.decode(req.value or b"")
            record.verify(target)
            if not self._fresh(record.timestamp):
                return ErrorCode.STALE, nodes, None
            code = self.records.announce(
                target, record, record.public_key, record.timestamp, addr, now
            )
            return code, nodes, None
        if cmd == Command.IMMUTABLE_PUT:
            value = req.value or b""
            if len(value) > rec.MAX_IMMUTABLE_VALUE:
                return ErrorCode.TOO_LARGE, nodes, None
            if hash32(value) != target:
                return ErrorCode.BAD_REQUEST, nodes, None
            self.records.put_immutable(target, value, addr, now)
            return ErrorCode.OK, nodes, None
        mutable, cas = rec.decode_mutable_put(req.value or b"")
        mutable.verify()
        if mutable.target != target:
            return ErrorCode.BAD_REQUEST, nodes, None
        return self.records.put_mutable(mutable, cas, addr, now), nodes, None

    def _fresh(self, timestamp_ms: int) -> bool:
        now_ms = self._clock() * 1000
        return now_ms - self.record_ttl * 1000 <= timestamp_ms <= now_ms + MAX_CLOCK_SKEW * 1000

    def _serve_forward(self, req: Request, addr: Address, authenticated: bool, size: int) -> None:
        key = (addr, req.tid)
        if key in self._serving:  # a retransmission of a request we are still serving:
            # we are alive, so its sender keeps waiting (and can tell us from the dead)
            self._reply(req, addr, ErrorCode.PENDING, [], None, authenticated, 0)
            return
        if self._resend_forward_reply(key, req):
            return  # a retransmission of one we served: its reply was lost
        if len(self._serving) >= MAX_CONCURRENT_FORWARDS:
            self._reply(req, addr, ErrorCode.FORWARD_FAILED, [], None, authenticated, 0)
            return
        if req.command == Command.FORWARD:
            if not authenticated:  # we would work for it: it must prove its address
                self._reply(req, addr, ErrorCode.TOKEN_REQUIRED, [], None, authenticated, 0)
                return
            target = req.target
            source = None if target is None else self.records.source_of(target, self._now())
            if target is None or source is None:
                self._reply(req, addr, ErrorCode.UNKNOWN_TARGET, [], None, authenticated, 0)
                return
            if req.value is None or len(req.value) > MAX_FORWARD_PAYLOAD:
                self._reply(req, addr, ErrorCode.TOO_LARGE, [], None, authenticated, 0)
                return
            self._serving.add(key)
            self._relay_forward(req, addr, source, target, req.value)
        else:
            # A relay seldom holds a token of the peer it forwards to (peers announce
            # to relays, relays do not query them), and asking for one would cost a
            # round trip per connect. The reply's size budget (3x the request) keeps
            # an unauthenticated one from amplifying; over it, TOKEN_REQUIRED comes back.
            self._serving.add(key)
            self._handle_forwarded(req, addr, authenticated, size)

    # Forwarding runs in callbacks, with no task in between: a connect passes a relay
    # and the peer, and each hop through a task would cost a turn of the event loop.

    def _relay_forward(
        self, req: Request, client: Address, source: Address, target: bytes, payload: bytes
    ) -> None:
        """Pass a client's payload to the peer whose announcement we hold; relay its reply."""

        def relayed(resp: Response | None, failure: BaseException | None) -> None:
            error: int = ErrorCode.FORWARD_FAILED
            value: bytes | None = None
            if resp is not None:
                error, value = resp.error, resp.value
                if error == ErrorCode.OK and value is not None and len(value) > MAX_FORWARD_PAYLOAD:
                    error, value = ErrorCode.TOO_LARGE, None
            self._forward_done(req, client, error, value, True, 0)

        self._call(
            source,
            Command.FORWARDED,
            relayed,
            target=target,
            value=rec.encode_forwarded(client, payload),
        )

    def _handle_forwarded(
        self, req: Request, relay: Address, authenticated: bool, size: int
    ) -> None:
        """Hand a forwarded payload to the app's handler (answered at once unless it
        returns an awaitable)."""
        handler = self._forward_handler
        if handler is None:
            self._forward_done(req, relay, ErrorCode.NO_HANDLER, None, authenticated, size)
            return
        try:
            client, payload = rec.decode_forwarded(req.value or b"", MAX_FORWARD_PAYLOAD)
            result = handler(payload, client)
        except DecodeError:
            self._forward_done(req, relay, ErrorCode.BAD_REQUEST, None, authenticated, size)
            return
        except Exception as e:  # the app's handler failed: tell the client, stay up
            log.debug("forward handler failed: %r", e)
            self._forward_done(req, relay, ErrorCode.FORWARD_FAILED, None, authenticated, size)
            return
        if inspect.isawaitable(result):
            self._spawn(self._await_handler(req, relay, result, authenticated, size))
        else:
            self._forwarded(req, relay, result, authenticated, size)

    async def _await_handler(
        self, req: Request, relay: Address, result: Awaitable[bytes], authenticated: bool, size: int
    ) -> None:
        try:
            async with asyncio.timeout(4 * self.request_timeout):
                value = await result
        except asyncio.CancelledError:
            self._serving.discard((relay, req.tid))
            raise
        except DecodeError:
            self._forward_done(req, relay, ErrorCode.BAD_REQUEST, None, authenticated, size)
        except Exception as e:
            log.debug("forward handler failed: %r", e)
            self._forward_done(req, relay, ErrorCode.FORWARD_FAILED, None, authenticated, size)
        else:
            self._forwarded(req, relay, value, authenticated, size)

    def _forwarded(
        self, req: Request, relay: Address, value: object, authenticated: bool, size: int
    ) -> None:
        if isinstance(value, bytes) and len(value) <= MAX_FORWARD_PAYLOAD:
            self._forward_done(req, relay, ErrorCode.OK, value, authenticated, size)
        else:
            self._forward_done(req, relay, ErrorCode.TOO_LARGE, None, authenticated, size)

    def _forward_done(
        self,
        req: Request,
        addr: Address,
        error: int,
        value: bytes | None,
        authenticated: bool,
        size: int,
    ) -> None:
        """Answer a FORWARD/FORWARDED and keep the reply for its retransmissions."""
        self._serving.discard((addr, req.tid))
        self._remember_forward_reply(
            req, addr, self._reply(req, addr, error, [], value, authenticated, size)
        )

    @staticmethod
    def _digest(req: Request) -> bytes:
        """What identifies a request's content (not its tid, id claim or token)."""
        return hash32(encode(Request(0, req.command, None, None, req.target, req.value)))

    def _remember_forward_reply(self, req: Request, addr: Address, data: bytes | None) -> None:
        if data is None:
            return
        now, cache = self._now(), self._forward_replies
        while cache and (next(iter(cache.values()))[0] <= now or len(cache) >= MAX_FORWARD_REPLIES):
            cache.popitem(last=False)
        cache[(addr, req.tid)] = (now + FORWARD_REPLY_TTL, self._digest(req), data)

    def _resend_forward_reply(self, key: tuple[Address, int], req: Request) -> bool:
        """Answer a retransmitted FORWARD/FORWARDED from the reply cache, so the app's
        handler (or the relaying) does not run twice; ``False`` if it is not one."""
        entry = self._forward_replies.get(key)
        if entry is None:
            return False
        expiry, digest, data = entry
        if expiry <= self._now() or digest != self._digest(req):
            del self._forward_replies[key]  # expired, or a new request reusing the tid
            return False
        if self._transport is not None:
            self._transport.sendto(data, key[0])
        return True

    def on_forward(self, handler: ForwardHandler | None) -> None:
        """Serve forwarded payloads: ``handler(payload, sender) -> reply`` (or an
        awaitable of the reply; a plain function answers without a turn of the loop)."""
        self._forward_handler = handler

    async def _send_probe(self, addr: Address, nonce: bytes) -> None:
        """Ping ``addr`` back from a fresh socket, which it has never sent anything to."""
        self._probes_sending += 1
        try:
            transport = await self._network.open(self._host, 0, lambda data, a: None)
            try:
                transport.sendto(encode(Probe(nonce)), addr)
            finally:
                transport.close()
        except (OSError, PeerswarmError) as e:
            log.debug("cannot open a probe socket: %s", e)
        finally:
            self._probes_sending -= 1
