"""DHTNode: the asyncio driver that ties the DHT's pure parts to one datagram socket.

It owns the node's transport and dispatches every datagram on its first byte
(``docs/architecture.md``, "One socket"): ``0x01``–``0x0F`` is DHT RPC, other ranges
go to handlers the layers above register. Protocol decisions live in the pure
modules (codec, routing table, query state, record store, tokens, NAT sampler);
this module does I/O, timers and task ownership. Every background task is owned by
the node and cancelled in :meth:`close`; idle, a node runs one maintenance timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from dht import records as rec
from dht.errors import (
    CASMismatchError,
    DHTError,
    ForwardError,
    QueryError,
    RemoteError,
    RequestTimeoutError,
    SeqTooLowError,
    UnknownTargetError,
)
from dht.messages import (
    FIRST_BYTE,
    LAST_BYTE,
    NONCE_SIZE,
    Command,
    ErrorCode,
    Probe,
    Request,
    Response,
    decode,
    encode,
)
from dht.nat_sampler import NatSampler
from dht.nat_type import NatType
from dht.node_id import ID_SIZE, canonical_host, distance, hash32, node_id, random_id_in_bucket
from dht.query import QueryState
from dht.rate_limit import TokenBucket
from dht.record_store import RecordStore
from dht.records import MutableValue, PeerRecord, Removal
from dht.routing_table import RoutingTable
from dht.rpc import RPC
from dht.state_file import load_nodes, save_nodes
from dht.tokens import Tokens
from dht.transport import Address, DatagramTransport, Network, UDPNetwork
from storage.errors import (
    ClosedError,
    DecodeError,
    InvalidArgumentError,
    PeerswarmError,
    VerificationError,
)
from storage.keypair import KeyPair

log = logging.getLogger(__name__)

T = TypeVar("T")
DatagramHandler = Callable[[bytes, Address], None]
ForwardHandler = Callable[[bytes, Address], Awaitable[bytes]]

MAX_FORWARD_PAYLOAD = 1200
"""Largest forwarded payload (and reply): one datagram, with headers, under 1400 bytes."""
MAX_RECORDS_PER_REPLY = 10
"""A lookup reply carries at most this many records (a random sample when more)."""
UNAUTHENTICATED_REPLY_BUDGET = 600
"""Without a valid token a reply may be this large, or 3x the request if larger;
a reply that would be bigger carries TOKEN_REQUIRED and a token instead."""
MAX_CLOCK_SKEW = 300.0
"""Seconds an announcement's timestamp may be ahead of our clock."""
RELAYS_PER_RECORD = 3
MAX_CONCURRENT_FORWARDS = 64
MAX_CONCURRENT_PINGS = 8
MAX_CONCURRENT_PROBES = 16
MAX_TOKEN_CACHE = 128
MAX_LOOKUP_RESULTS = 4096
STALE_PINGS_PER_ROUND = 1
FILL_CONTACTS = 3
NAT_CHECK_HELPERS = 3
NAT_RECHECK_SOON = 30.0
FIRST_CHECK_ATTEMPTS = 3
_COMMANDS = frozenset(int(c) for c in Command)


def _silence(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class DHTNode:
    """A Kademlia node on one datagram socket; an async context manager.

    ``ephemeral=None`` (default) decides by itself: the node queries from the start
    but claims a routing-table slot only once another node has pinged it back from a
    fresh port (it is reachable). ``ephemeral=False`` claims from the start
    (bootstrap nodes); ``ephemeral=True`` never claims.
    """

    def __init__(
        self,
        bootstrap: Iterable[Address] = (),
        host: str = "0.0.0.0",
        port: int = 0,
        key_pair: KeyPair | None = None,
        ephemeral: bool | None = None,
        *,
        network: Network | None = None,
        clock: Callable[[], float] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        k: int = 20,
        alpha: int = 3,
        request_timeout: float = 1.0,
        retries: int = 2,
        max_inflight: int = 64,
        record_ttl: float = 20 * 60,
        announce_interval: float | None = None,
        keepalive_interval: float = 25.0,
        value_ttl: float = 2 * 3600,
        maintenance_interval: float = 30.0,
        stale_after: float = 15 * 60,
        bucket_refresh_interval: float = 60 * 60,
        token_rotation: float = 5 * 60,
        nat_check_interval: float = 10 * 60,
        nat_probe_timeout: float = 3.0,
        max_records_per_topic: int = 64,
        max_records_per_ip: int = 32,
        max_records: int = 4096,
        max_values: int = 1024,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= k <= 32 or alpha < 1:
            raise InvalidArgumentError("k must be 1..32 and alpha at least 1")
        self.key_pair = key_pair or KeyPair.generate()
        self.k = k
        self.alpha = alpha
        self.request_timeout = request_timeout
        self.record_ttl = record_ttl
        self.announce_interval = announce_interval or record_ttl / 2
        self.keepalive_interval = keepalive_interval
        self.maintenance_interval = maintenance_interval
        self.stale_after = stale_after
        self.bucket_refresh_interval = bucket_refresh_interval
        self.token_rotation = token_rotation
        self.nat_check_interval = nat_check_interval
        self.nat_probe_timeout = nat_probe_timeout
        self._bootstrap_nodes = [(canonical_host(h), int(p)) for h, p in bootstrap]
        self._saved_nodes: list[Address] = []
        self._host = host
        self._port = port
        self._forced_ephemeral = ephemeral
        self._network: Network = network or UDPNetwork()
        self._clock: Callable[[], float] = clock or time.time
        self._state_path = state_path
        self._rng = rng or random.Random()
        self._retries = retries
        self._max_inflight = max_inflight

        self._transport: DatagramTransport | None = None
        self._rpc: RPC | None = None
        self._local: Address = (host, port)
        self._id: bytes | None = None
        self.routing_table = RoutingTable(node_id(self._local), k)
        self.records = RecordStore(
            record_ttl,
            value_ttl,
            max_records_per_topic,
            max_records_per_ip,
            max_records,
            max_values,
        )
        self._tokens = Tokens()
        self._token_cache: OrderedDict[Address, bytes] = OrderedDict()
        self._sampler = NatSampler()
        self._reachable: bool | None = None
        self._nat_type = NatType.UNKNOWN
        self._handlers: list[DatagramHandler | None] = [None] * 256
        self._forward_handler: ForwardHandler | None = None
        self._probes: dict[bytes, tuple[asyncio.Future[Address], set[Address]]] = {}
        self._probe_budget = TokenBucket(rate=20.0, burst=40.0)
        self._probes_sending = 0
        self._pinging: set[bytes] = set()
        self._serving: set[tuple[Address, int]] = set()
        self._announced: dict[tuple[bytes, bytes], asyncio.Task[None]] = {}
        self._last_timestamp = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.TimerHandle | None = None
        self._maintaining = False
        self._nat_checking: asyncio.Task[Any] | None = None
        self._next_nat_check = 0.0
        self._next_rotation = 0.0
        self._ready: asyncio.Event | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> DHTNode:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind, bootstrap, and start the background reachability check and maintenance."""
        if self._started:
            return
        self._started = True
        self._ready = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport = await self._network.open(self._host, self._port, self._on_datagram)
        self._local = self._transport.local_address
        self._rpc = RPC(
            self._transport.sendto,
            timeout=self.request_timeout,
            retries=self._retries,
            max_inflight=self._max_inflight,
            rng=self._rng,
        )
        self.routing_table = RoutingTable(node_id(self._local), self.k)
        now = loop.time()
        self._next_rotation = now + self.token_rotation
        self._next_nat_check = now + self.nat_check_interval
        if self._forced_ephemeral is False:
            self._set_id(node_id(self._local))
        if self._state_path is not None:
            try:
                self._saved_nodes = load_nodes(self._state_path)
            except (DecodeError, OSError) as e:
                log.warning("ignoring routing table file %s: %s", self._state_path, e)
        self._bootstrap_nodes = await self._resolve(self._bootstrap_nodes)
        await self._bootstrap()
        self._nat_checking = self._spawn(self._first_check())
        self._schedule_maintenance()

    async def ready(self) -> None:
        """Wait until the first reachability check finished (``nat_type`` is known, and
        an adaptive node that is reachable has joined routing tables)."""
        if self._ready is None:
            raise ClosedError("the DHT node is not started")
        await self._ready.wait()

    async def close(self) -> None:
        """Stop every task, save the routing table, close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self._rpc is not None:
            self._rpc.close()
        while self._tasks:  # a task may start another while it unwinds
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._announced.clear()
        for future, _ in self._probes.values():
            future.cancel()
        self._save_state()
        if self._transport is not None:
            self._transport.close()
        if self._ready is not None:
            self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> RPC:
        if self._closed or self._rpc is None:
            raise ClosedError("the DHT node is closed" if self._closed else "not started")
        return self._rpc

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, PeerswarmError):
            log.error("DHT background task failed", exc_info=exc)

    # -- identity and reachability ------------------------------------------------------

    @property
    def network(self) -> Network:
        """The network the socket was opened on (so helpers can open more sockets there)."""
        return self._network

    @property
    def address(self) -> Address:
        """The address the socket is bound to."""
        return self._local

    @property
    def public_address(self) -> Address | None:
        """Our address as other nodes see it (majority of recent reports), once known."""
        return self._sampler.public_address(self._local)

    @property
    def nat_type(self) -> NatType:
        return self._nat_type

    @property
    def reachable(self) -> bool | None:
        """Whether the last ping-back check reached us (``None``: not checked yet)."""
        return self._reachable

    @property
    def id(self) -> bytes | None:
        """The id we claim in requests (``None`` while ephemeral)."""
        return self._id

    @property
    def ephemeral(self) -> bool:
        return self._id is None

    def _set_id(self, new: bytes | None) -> None:
        if new == self._id:
            return
        self._id = new
        base = new if new is not None else node_id(self._local)
        if base != self.routing_table.id:
            self.routing_table = self.routing_table.rebased(base, self._now())

    def _update_nat(self) -> bool:
        """Recompute NAT class and public address and claim (or drop) our id accordingly;
        ``True`` when we now claim a new id, which our new neighbours should hear about."""
        self._nat_type = self._sampler.nat_type(self._local, self._reachable)
        public = self.public_address
        if self._forced_ephemeral is True:
            return False
        was = self._id
        if self._forced_ephemeral is False:
            self._set_id(node_id(public or self._local))
        else:
            persistent = self._reachable is True and self._nat_type in (
                NatType.OPEN,
                NatType.CONSISTENT,
            )
            self._set_id(node_id(public) if persistent and public is not None else None)
        return self._id is not None and self._id != was and not self._closed

    async def _refresh_self(self) -> None:
        """Look up our own id (every request carries it, so the nodes around us add us),
        then fill the empty buckets farther out (Kademlia's join): without a contact in
        every part of the keyspace, our answers would lead queries astray."""
        await self._query(Command.FIND_NODE, self.routing_table.id)
        await self._fill_buckets()

    async def _fill_buckets(self) -> None:
        """A short lookup into each empty bucket, stopped once it holds a few contacts
        (enough for queries through us to get there; hourly refreshes do the rest)."""
        table, now = self.routing_table, self._now()
        empty = table.empty_buckets()
        for index in empty:
            table.touch_bucket(index, now)

        async def fill(index: int) -> None:
            target = random_id_in_bucket(table.id, index, self._rng)
            enough = min(FILL_CONTACTS, self.k)
            await self._query(
                Command.FIND_NODE,
                target,
                stop=lambda: self.routing_table.bucket_size(index) >= enough,
            )

        for start in range(0, len(empty), self.alpha):
            await asyncio.gather(*(fill(i) for i in empty[start : start + self.alpha]))

    async def _first_check(self) -> None:
        try:
            for attempt in range(FIRST_CHECK_ATTEMPTS):
                if await self._check_reachability():
                    break
                await asyncio.sleep(self.request_timeout * 2**attempt)
        finally:
            if self._ready is not None:
                self._ready.set()

    async def _check_reachability(self) -> bool:
        """Ask a few nodes to ping us back from a fresh port; reachable if any does.

        ``False`` when no helper took the job (none answered, or all were busy).
        """
        contacts = sorted(self.routing_table, key=lambda c: -c.last_seen)
        helpers = [c.address for c in contacts[:NAT_CHECK_HELPERS]]
        for a in self._bootstrap_nodes + self._saved_nodes:
            if len(helpers) < NAT_CHECK_HELPERS and a not in helpers and a != self._local:
                helpers.append(a)
        if not helpers:
            return True  # nobody to ask yet: we check again when someone shows up
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Address] = loop.create_future()
        nonce = secrets.token_bytes(NONCE_SIZE)
        self._probes[nonce] = (future, set(helpers))
        try:
            replies = await asyncio.gather(
                *(self._request(a, Command.NAT_CHECK, value=nonce) for a in helpers),
                return_exceptions=True,
            )
            if not any(isinstance(r, Response) and r.error == ErrorCode.OK for r in replies):
                retry = min(NAT_RECHECK_SOON, self.nat_check_interval)
                self._next_nat_check = loop.time() + retry
                return False
            try:
                async with asyncio.timeout(self.nat_probe_timeout):
                    await asyncio.shield(future)
                self._reachable = True
            except TimeoutError:
                self._reachable = False
            self._next_nat_check = loop.time() + self.nat_check_interval
        finally:
            self._probes.pop(nonce, None)
        if self._update_nat():
            await self._refresh_self()
        return True

    def _on_probe(self, probe: Probe, addr: Address) -> None:
        entry = self._probes.get(probe.nonce)
        if entry is None:
            return
        future, asked = entry
        # A probe from a node we asked proves nothing: our NAT lets its replies in.
        if addr not in asked and not future.done():
            future.set_result(addr)

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

    # -- datagram dispatch --------------------------------------------------------------

    def add_datagram_handler(self, first: int, last: int, handler: DatagramHandler) -> None:
        """Send datagrams whose first byte is in ``[first, last]`` to ``handler``."""
        if not (LAST_BYTE < first <= last <= 0xFF):
            raise InvalidArgumentError(f"byte range {first:#x}-{last:#x} is not available")
        if any(self._handlers[b] is not None for b in range(first, last + 1)):
            raise InvalidArgumentError(f"byte range {first:#x}-{last:#x} already has a handler")
        for b in range(first, last + 1):
            self._handlers[b] = handler

    def remove_datagram_handler(self, first: int, last: int) -> None:
        for b in range(max(first, LAST_BYTE + 1), min(last, 0xFF) + 1):
            self._handlers[b] = None

    def send_datagram(self, data: bytes, addr: Address) -> None:
        """Send a raw datagram from the node's socket (same NAT mapping as the DHT)."""
        if self._transport is None or self._closed:
            raise ClosedError("the DHT node is closed")
        self._transport.sendto(data, addr)

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if not data or self._closed:
            return
        first = data[0]
        if FIRST_BYTE <= first <= LAST_BYTE:
            try:
                self._on_dht(data, addr)
            except DecodeError:
                pass
            except Exception:  # nothing from the network may take the node down
                log.exception("error handling a DHT datagram from %s", addr)
            return
        handler = self._handlers[first]
        if handler is not None:
            try:
                handler(data, addr)
            except Exception:
                log.exception("datagram handler for %#x failed", first)

    def _on_dht(self, data: bytes, addr: Address) -> None:
        msg = decode(data)
        if isinstance(msg, Request):
            self._on_request(msg, addr, len(data))
        elif isinstance(msg, Response):
            if self._rpc is not None:
                self._rpc.on_response(msg, addr)
        else:
            self._on_probe(msg, addr)

    # -- requests we serve --------------------------------------------------------------

    def _on_request(self, req: Request, addr: Address, size: int) -> None:
        if req.id is not None and req.id == node_id(addr):
            self._saw_node(req.id, addr)
        authenticated = self._tokens.check(addr[0], req.token)
        if req.command in (Command.FORWARD, Command.FORWARDED):
            self._serve_async(req, addr, authenticated)
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
    ) -> None:
        if self._transport is None or self._closed:
            return
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

    def _closer(self, target: bytes | None, exclude: Address) -> list[Address]:
        if target is None:
            return []
        return [
            c.address
            for c in self.routing_table.closest(target, self.k + 1)
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
            found = self.records.lookup(target, now)
            if len(found) > MAX_RECORDS_PER_REPLY:
                found = self._rng.sample(found, MAX_RECORDS_PER_REPLY)
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

    def _serve_async(self, req: Request, addr: Address, authenticated: bool) -> None:
        key = (addr, req.tid)
        if key in self._serving:
            return  # a retransmission of a request we are still serving
        if len(self._serving) >= MAX_CONCURRENT_FORWARDS:
            self._reply(req, addr, ErrorCode.FORWARD_FAILED, [], None, authenticated, 0)
            return
        if not authenticated:  # replies may be large: the sender must prove its address
            self._reply(req, addr, ErrorCode.TOKEN_REQUIRED, [], None, authenticated, 0)
            return
        if req.command == Command.FORWARD:
            target = req.target
            source = None if target is None else self.records.source_of(target, self._now())
            if target is None or source is None:
                self._reply(req, addr, ErrorCode.UNKNOWN_TARGET, [], None, authenticated, 0)
                return
            if req.value is None or len(req.value) > MAX_FORWARD_PAYLOAD:
                self._reply(req, addr, ErrorCode.TOO_LARGE, [], None, authenticated, 0)
                return
            coro = self._relay_forward(req, addr, source, target, req.value)
        else:
            coro = self._handle_forwarded(req, addr)
        self._serving.add(key)
        task = self._spawn(coro)
        task.add_done_callback(lambda _: self._serving.discard(key))

    async def _relay_forward(
        self, req: Request, client: Address, source: Address, target: bytes, payload: bytes
    ) -> None:
        """Pass a client's payload to the peer whose announcement we hold; relay its reply."""
        value: bytes | None = None
        try:
            resp = await self._request(
                source,
                Command.FORWARDED,
                target=target,
                value=rec.encode_forwarded(client, payload),
            )
            error, value = resp.error, resp.value
            if error == ErrorCode.OK and value is not None and len(value) > MAX_FORWARD_PAYLOAD:
                error, value = ErrorCode.TOO_LARGE, None
        except DHTError:
            error = ErrorCode.FORWARD_FAILED
        self._reply(req, client, error, [], value, True, 0)

    async def _handle_forwarded(self, req: Request, relay: Address) -> None:
        handler = self._forward_handler
        value: bytes | None = None
        if handler is None:
            error = ErrorCode.NO_HANDLER
        else:
            try:
                client, payload = rec.decode_forwarded(req.value or b"", MAX_FORWARD_PAYLOAD)
                async with asyncio.timeout(4 * self.request_timeout):
                    value = await handler(payload, client)
                error = ErrorCode.OK
                if not isinstance(value, bytes) or len(value) > MAX_FORWARD_PAYLOAD:
                    error, value = ErrorCode.TOO_LARGE, None
            except DecodeError:
                error = ErrorCode.BAD_REQUEST
            except Exception as e:  # the app's handler failed: tell the client, stay up
                log.debug("forward handler failed: %r", e)
                error = ErrorCode.FORWARD_FAILED
        self._reply(req, relay, error, [], value, True, 0)

    def on_forward(self, handler: ForwardHandler | None) -> None:
        """Serve forwarded payloads: ``async handler(payload, sender) -> reply``."""
        self._forward_handler = handler

    # -- requests we make ---------------------------------------------------------------

    async def _request(
        self,
        addr: Address,
        command: int,
        *,
        target: bytes | None = None,
        value: bytes | None = None,
        token: bytes | None = None,
        reply_timeout: float | None = None,
    ) -> Response:
        """One RPC with our id claim; learns from the reply; retries once with a token
        when the node asks for one."""
        rpc = self._check_open()
        token = token or self._token_cache.get(addr)
        for attempt in range(2):
            try:
                resp = await rpc.request(
                    addr,
                    command,
                    id=self._id,
                    token=token,
                    target=target,
                    value=value,
                    reply_timeout=reply_timeout,
                )
            except RequestTimeoutError:
                contact_id = node_id(addr)
                contact = self.routing_table.get(contact_id)
                if contact is not None and contact.address == addr:
                    self.routing_table.remove(contact_id)
                raise
            self._learn(addr, resp)
            if (
                attempt == 0
                and resp.error == ErrorCode.TOKEN_REQUIRED
                and resp.token is not None
                and resp.token != token
            ):
                token = resp.token
                continue
            return resp
        return resp

    def _learn(self, addr: Address, resp: Response) -> None:
        if resp.token is not None:
            self._token_cache.pop(addr, None)
            self._token_cache[addr] = resp.token
            while len(self._token_cache) > MAX_TOKEN_CACHE:
                self._token_cache.popitem(last=False)
        if resp.id is not None and resp.id == node_id(addr):
            self._saw_node(resp.id, addr)
        if self._sampler.add(addr, resp.to) and self._update_nat():
            self._spawn(self._refresh_self())

    def _saw_node(self, contact_id: bytes, addr: Address) -> None:
        """A persistent node proved its id; keep it (ping out the oldest if full)."""
        was_empty = len(self.routing_table) == 0
        head = self.routing_table.add(contact_id, addr, self._now())
        if (
            head is not None
            and head.id not in self._pinging
            and len(self._pinging) < MAX_CONCURRENT_PINGS
            and not self._closed
        ):
            self._pinging.add(head.id)
            self._spawn(self._ping_head(head.id, head.address))
        checking = self._nat_checking
        if was_empty and self._reachable is None and checking is not None and checking.done():
            self._nat_checking = self._spawn(self._check_reachability())

    async def _ping_head(self, contact_id: bytes, addr: Address) -> None:
        try:
            await self._request(addr, Command.PING)
        except DHTError:
            pass  # _request removed it; a replacement took its slot
        finally:
            self._pinging.discard(contact_id)

    async def ping(self, addr: Address) -> Address:
        """Ping a node; returns our address as it saw us."""
        resp = await self._request((canonical_host(addr[0]), addr[1]), Command.PING)
        return resp.to

    # -- iterative queries --------------------------------------------------------------

    def _own_addresses(self) -> set[Address]:
        own = {self._local}
        public = self.public_address
        if public is not None:
            own.add(public)
        return own

    async def _query(
        self,
        command: int,
        target: bytes,
        value: bytes | None = None,
        on_reply: Callable[[Address, Response], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> QueryState:
        """Walk towards ``target``: alpha requests in flight, closest first.

        A request that has not answered after one timeout is "stalled": it stops
        counting against alpha and holding a place among the closest (its retries go
        on), so a dead node slows a query by one timeout, not by all its retries.
        """
        self._check_open()
        state = QueryState(target, self.k, self._own_addresses())
        for contact in self.routing_table.closest(target, self.k):
            state.add(contact.address)
        if len(self.routing_table) < self.k:
            for a in self._bootstrap_nodes + self._saved_nodes:
                state.add(a)
        inflight: dict[asyncio.Task[Response], Address] = {}
        stalled: set[asyncio.Task[Response]] = set()
        try:
            while True:
                for addr in state.next(self.alpha - len(inflight) + len(stalled)):
                    task = asyncio.ensure_future(
                        self._request(addr, command, target=target, value=value)
                    )
                    task.add_done_callback(_silence)
                    inflight[task] = addr
                if not inflight or state.finished():
                    break
                done, _ = await asyncio.wait(
                    set(inflight), timeout=self.request_timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    for task, addr in inflight.items():
                        stalled.add(task)
                        state.stalled(addr)
                    continue
                for task in done:
                    addr = inflight.pop(task)
                    stalled.discard(task)
                    exc = task.exception()
                    if exc is not None:
                        if isinstance(exc, ClosedError):
                            raise exc
                        state.failed(addr)
                        continue
                    resp = task.result()
                    verified = resp.id is not None and resp.id == node_id(addr)
                    state.responded(addr, verified, resp.token, resp.nodes)
                    if on_reply is not None:
                        with contextlib.suppress(PeerswarmError):
                            on_reply(addr, resp)
                if stop is not None and stop():
                    break
        finally:
            for task in inflight:
                task.cancel()
        return state

    def _stores_locally(self, target: bytes, state: QueryState) -> bool:
        """Whether we (a persistent node) are among the k closest to ``target``."""
        if self._id is None:
            return False
        closest = state.closest()
        if len(closest) < self.k:
            return True
        return distance(self._id, target) < closest[-1].distance

    async def _commit(
        self, state: QueryState, command: int, value: bytes
    ) -> tuple[list[Address], list[int]]:
        """Send a write to the k closest responders; (addresses that stored, error codes)."""
        closest = state.closest()
        replies = await asyncio.gather(
            *(
                self._request(c.address, command, target=state.target, value=value, token=c.token)
                for c in closest
            ),
            return_exceptions=True,
        )
        stored, errors = [], []
        for c, r in zip(closest, replies, strict=True):
            if isinstance(r, ClosedError):
                raise r
            if isinstance(r, Response):
                if r.error == ErrorCode.OK:
                    stored.append(c.address)
                else:
                    errors.append(r.error)
        return stored, errors

    # -- topics -------------------------------------------------------------------------

    def _timestamp(self) -> int:
        ts = max(int(self._clock() * 1000), self._last_timestamp + 1)
        self._last_timestamp = ts
        return ts

    async def announce(self, topic: bytes, key_pair: KeyPair | None = None) -> PeerRecord:
        """Store a signed record of ``key_pair`` on the k nodes closest to ``topic`` and keep
        it there (refreshed before it expires) until :meth:`unannounce` or :meth:`close`.

        To be reachable by public key alone, announce under ``hash32(public_key)``.
        """
        _check_key(topic, "topic")
        kp = key_pair or self.key_pair
        record, relays = await self._announce_once(topic, kp)
        key = (topic, kp.public_key)
        old = self._announced.pop(key, None)
        if old is not None:
            old.cancel()
        self._announced[key] = self._spawn(self._keep_announced(topic, kp, relays))
        return record

    async def _announce_once(self, topic: bytes, kp: KeyPair) -> tuple[PeerRecord, list[Address]]:
        state = await self._query(Command.FIND_NODE, topic)
        relays = [c.address for c in state.closest(RELAYS_PER_RECORD)]
        local = self._stores_locally(topic, state)
        if local and len(relays) < RELAYS_PER_RECORD:
            relays.append(self.public_address or self._local)
        record = PeerRecord.sign(topic, kp, relays, self._timestamp())
        stored, _ = await self._commit(state, Command.ANNOUNCE, record.encode())
        if local:
            self.records.announce(
                topic, record, record.public_key, record.timestamp, self._local, self._now()
            )
        if not stored and not local:
            raise QueryError("no DHT node stored the announcement")
        return record, stored

    async def _keep_announced(self, topic: bytes, kp: KeyPair, relays: list[Address]) -> None:
        """Re-announce before the TTL runs out; between rounds, keep NAT mappings to the
        relays open so they can forward to us."""
        loop = asyncio.get_running_loop()
        delay = self.announce_interval * self._rng.uniform(0.85, 1.0)
        while True:
            due = loop.time() + delay
            while (left := due - loop.time()) > 0:
                await asyncio.sleep(min(left, self.keepalive_interval))
                if loop.time() < due and self._nat_type is not NatType.OPEN:
                    await asyncio.gather(
                        *(self._request(a, Command.PING) for a in relays),
                        return_exceptions=True,
                    )
            try:
                _, relays = await self._announce_once(topic, kp)
                delay = self.announce_interval * self._rng.uniform(0.85, 1.0)
            except QueryError:
                delay = min(self.announce_interval / 4, 30.0)

    async def unannounce(self, topic: bytes, key_pair: KeyPair | None = None) -> None:
        """Stop refreshing and remove the record (a signed removal) from the closest nodes."""
        _check_key(topic, "topic")
        kp = key_pair or self.key_pair
        task = self._announced.pop((topic, kp.public_key), None)
        if task is not None:
            task.cancel()
        removal = Removal.sign(topic, kp, self._timestamp())
        state = await self._query(Command.FIND_NODE, topic)
        await self._commit(state, Command.UNANNOUNCE, removal.encode())
        if self._id is not None:
            self.records.announce(
                topic, None, kp.public_key, removal.timestamp, self._local, self._now()
            )

    async def lookup(self, topic: bytes) -> AsyncGenerator[PeerRecord, None]:
        """Yield each distinct (by public key) verified record for ``topic`` as it arrives."""
        _check_key(topic, "topic")
        self._check_open()
        queue: asyncio.Queue[PeerRecord | None] = asyncio.Queue()
        seen: set[bytes] = set()

        def offer(record: PeerRecord) -> None:
            if record.public_key in seen or len(seen) >= MAX_LOOKUP_RESULTS:
                return
            try:
                record.verify(topic)
            except VerificationError:
                return
            if not self._fresh(record.timestamp):
                return
            seen.add(record.public_key)
            queue.put_nowait(record)

        def on_reply(addr: Address, resp: Response) -> None:
            if resp.value is not None and resp.error == ErrorCode.OK:
                for record in rec.decode_lookup_reply(resp.value, MAX_RECORDS_PER_REPLY):
                    offer(record)

        for record in self.records.lookup(topic, self._now()):
            offer(record)

        async def run() -> None:
            try:
                await self._query(Command.LOOKUP, topic, on_reply=on_reply)
            finally:
                queue.put_nowait(None)

        task = self._spawn(run())
        try:
            while (item := await queue.get()) is not None:
                yield item
            await task  # re-raises ClosedError if the node closed under us
        finally:
            task.cancel()
            await asyncio.wait({task})

    # -- forwarding ---------------------------------------------------------------------

    async def forward(self, via: Address, target_public_key: bytes, payload: bytes) -> bytes:
        """Have ``via`` (a node holding the target's announcement) pass ``payload`` to the
        target and return its reply. Raises :class:`UnknownTargetError` when ``via`` holds
        no announcement of that key, :class:`ForwardError` when the target fails."""
        _check_key(target_public_key, "target public key")
        if len(payload) > MAX_FORWARD_PAYLOAD:
            raise InvalidArgumentError(
                f"a forwarded payload is at most {MAX_FORWARD_PAYLOAD} bytes"
            )
        resp = await self._request(
            (canonical_host(via[0]), via[1]),
            Command.FORWARD,
            target=target_public_key,
            value=payload,
            reply_timeout=2 * self.request_timeout,
        )
        if resp.error == ErrorCode.UNKNOWN_TARGET:
            raise UnknownTargetError(resp.error, "the relay holds no announcement of that key")
        if resp.error in (ErrorCode.NO_HANDLER, ErrorCode.FORWARD_FAILED, ErrorCode.TOO_LARGE):
            raise ForwardError(resp.error, f"forward failed ({ErrorCode(resp.error).name})")
        if resp.error != ErrorCode.OK:
            raise RemoteError(resp.error)
        return resp.value or b""

    # -- immutable and mutable values ---------------------------------------------------

    async def immutable_put(self, value: bytes) -> bytes:
        """Store ``value`` (≤ 1000 bytes) under BLAKE2b-256(value); returns that hash."""
        if len(value) > rec.MAX_IMMUTABLE_VALUE:
            raise InvalidArgumentError(
                f"immutable values are at most {rec.MAX_IMMUTABLE_VALUE} bytes"
            )
        key = hash32(value)
        state = await self._query(Command.FIND_NODE, key)
        stored, _ = await self._commit(state, Command.IMMUTABLE_PUT, value)
        local = self._stores_locally(key, state)
        if local:
            self.records.put_immutable(key, value, self._local, self._now())
        if not stored and not local:
            raise QueryError("no DHT node stored the value")
        return key

    async def immutable_get(self, key: bytes) -> bytes | None:
        """The value whose BLAKE2b-256 is ``key`` (checked), or ``None`` if none is found."""
        _check_key(key, "hash")
        local = self.records.get_immutable(key, self._now())
        if local is not None:
            return local
        found: list[bytes] = []

        def on_reply(addr: Address, resp: Response) -> None:
            if resp.value is not None and not found and hash32(resp.value) == key:
                found.append(resp.value)

        await self._query(Command.IMMUTABLE_GET, key, on_reply=on_reply, stop=lambda: bool(found))
        return found[0] if found else None

    async def _highest_mutable(self, target: bytes) -> tuple[MutableValue | None, QueryState]:
        best: list[MutableValue] = []

        def consider(mutable: MutableValue) -> None:
            if mutable.target != target:
                return
            try:
                mutable.verify()
            except VerificationError:
                return
            if not best or mutable.seq > best[0].seq:
                best[:] = [mutable]

        def on_reply(addr: Address, resp: Response) -> None:
            if resp.value is not None:
                consider(MutableValue.decode(resp.value))

        local = self.records.get_mutable(target, self._now())
        if local is not None:
            consider(local)
        state = await self._query(Command.MUTABLE_GET, target, on_reply=on_reply)
        return (best[0] if best else None), state

    async def mutable_put(
        self,
        key_pair: KeyPair,
        value: bytes,
        seq: int | None = None,
        *,
        salt: bytes = b"",
        cas: int | None = None,
    ) -> MutableValue:
        """Sign and store ``value`` under BLAKE2b-256(public key + salt).

        ``seq`` defaults to one more than the highest found. Raises
        :class:`SeqTooLowError` when a newer (or same-seq, different) value exists and
        :class:`CASMismatchError` when ``cas`` is not the current seq.
        """
        if len(value) > rec.MAX_MUTABLE_VALUE or len(salt) > rec.MAX_SALT:
            raise InvalidArgumentError("mutable value or salt too large")
        if seq is not None and not 0 <= seq <= rec.MAX_SEQ:
            raise InvalidArgumentError("seq out of range")
        target = rec.mutable_target(key_pair.public_key, salt)
        current, state = await self._highest_mutable(target)
        if current is not None:
            if cas is not None and cas != current.seq:
                raise CASMismatchError(ErrorCode.CAS_MISMATCH, f"current seq is {current.seq}")
            if seq is None:
                seq = current.seq + 1
            elif seq < current.seq or (seq == current.seq and value != current.value):
                raise SeqTooLowError(ErrorCode.SEQ_TOO_LOW, f"current seq is {current.seq}")
        mutable = MutableValue.sign(key_pair, value, seq or 0, salt)
        stored, errors = await self._commit(
            state, Command.MUTABLE_PUT, rec.encode_mutable_put(mutable, cas)
        )
        local = self._stores_locally(target, state)
        if local:
            code = self.records.put_mutable(mutable, cas, self._local, self._now())
            if code != ErrorCode.OK:
                errors.append(code)
                local = False
        if not stored and not local:
            if ErrorCode.CAS_MISMATCH in errors:
                raise CASMismatchError(ErrorCode.CAS_MISMATCH, "compare-and-swap failed")
            if ErrorCode.SEQ_TOO_LOW in errors:
                raise SeqTooLowError(ErrorCode.SEQ_TOO_LOW, "a newer value is stored")
            raise QueryError("no DHT node stored the value")
        return mutable

    async def mutable_get(self, public_key: bytes, salt: bytes = b"") -> MutableValue | None:
        """The verified value with the highest seq found, or ``None``."""
        _check_key(public_key, "public key")
        best, _ = await self._highest_mutable(rec.mutable_target(public_key, salt))
        return best

    # -- maintenance --------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _resolve(self, addresses: list[Address]) -> list[Address]:
        resolved = []
        loop = asyncio.get_running_loop()
        for host, port in addresses:
            try:
                ipaddress.ip_address(host)
                resolved.append((host, port))
                continue
            except ValueError:
                pass
            try:
                infos = await loop.getaddrinfo(host, port, type=2)  # SOCK_DGRAM
                resolved.append((canonical_host(str(infos[0][4][0])), port))
            except OSError as e:
                log.warning("cannot resolve bootstrap node %s: %s", host, e)
        return resolved

    async def _bootstrap(self) -> None:
        if not (self._bootstrap_nodes or self._saved_nodes or len(self.routing_table)):
            return
        try:
            await self._query(Command.FIND_NODE, self.routing_table.id)
        except DHTError as e:
            log.debug("bootstrap failed: %s", e)

    def _schedule_maintenance(self) -> None:
        if self._closed:
            return
        delay = self.maintenance_interval * self._rng.uniform(0.75, 1.25)
        self._maintenance = asyncio.get_running_loop().call_later(delay, self._start_maintenance)

    def _start_maintenance(self) -> None:
        if not self._closed and not self._maintaining:
            self._spawn(self._maintain())

    async def _maintain(self) -> None:
        """One round: expire records, rotate token secrets, ping stale contacts, refresh an
        idle bucket, rejoin when alone, re-check reachability, save the table."""
        self._maintaining = True
        try:
            now = self._now()
            self.records.expire(now)
            if now >= self._next_rotation:
                self._tokens.rotate()
                self._next_rotation = now + self.token_rotation
            stale = self.routing_table.stale(now - self.stale_after)[:STALE_PINGS_PER_ROUND]
            await asyncio.gather(
                *(self._request(c.address, Command.PING) for c in stale), return_exceptions=True
            )
            idle = self.routing_table.idle_buckets(now - self.bucket_refresh_interval)
            if len(self.routing_table) == 0:
                await self._bootstrap()
            elif idle:
                index = self._rng.choice(idle)
                self.routing_table.touch_bucket(index, now)
                target = random_id_in_bucket(self.routing_table.id, index, self._rng)
                await self._query(Command.FIND_NODE, target)
            if now >= self._next_nat_check and (
                self._nat_checking is None or self._nat_checking.done()
            ):
                await self._check_reachability()
            self._save_state()
        except ClosedError:
            return
        except Exception:
            log.exception("DHT maintenance round failed")
        finally:
            self._maintaining = False
        self._schedule_maintenance()

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        contacts = sorted(self.routing_table, key=lambda c: -c.last_seen)
        nodes = [c.address for c in contacts] or self._saved_nodes
        try:
            save_nodes(self._state_path, nodes)
        except OSError as e:
            log.warning("cannot save the routing table to %s: %s", self._state_path, e)


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != ID_SIZE:
        raise InvalidArgumentError(f"a {what} is {ID_SIZE} bytes")
