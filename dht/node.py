"""DHTNode: the asyncio driver that ties the DHT's pure parts to one datagram socket.

It owns the node's transport and dispatches every datagram on its first byte
(``docs/architecture.md``, "One socket"): ``0x01``–``0x0F`` is DHT RPC, other ranges
go to handlers the layers above register. Protocol decisions live in the pure
modules (codec, routing table, query state, record store, tokens, NAT sampler);
this module does I/O, timers and task ownership. Answering other nodes' requests is
:class:`dht.request_server.RequestServer`, which DHTNode inherits; this module holds
the requests we make (queries, announcements, values, forwarding), reachability and
maintenance. Every background task is owned by the node and cancelled in
:meth:`close`; idle, a node runs one maintenance timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import random
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
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
)
from dht.nat_sampler import NatSampler
from dht.nat_type import NatType
from dht.node_id import ID_SIZE, canonical_host, distance, hash32, node_id, random_id_in_bucket
from dht.pages import Fetch, Pager
from dht.query import QueryState
from dht.record_store import RecordStore
from dht.records import MutableValue, PeerRecord, Removal
from dht.request_server import (
    MAX_FORWARD_PAYLOAD,
    MAX_RECORDS_PER_REPLY,
    RequestServer,
)
from dht.routing_table import (
    DEFAULT_MAX_PER_IP,
    DEFAULT_MAX_PER_IP_PER_BUCKET,
    RoutingTable,
)
from dht.rpc import RPC, Pending, ReplyCallback, wait_reply
from dht.state_file import load_nodes, save_nodes
from dht.transport import Address, DatagramTransport, Network, UDPNetwork
from dht.walk import OnReply, Walk
from storage.errors import (
    ClosedError,
    DecodeError,
    InvalidArgumentError,
    PeerswarmError,
    VerificationError,
)
from storage.keypair import KeyPair
from storage.resource import AsyncResource

log = logging.getLogger(__name__)

T = TypeVar("T")
DatagramHandler = Callable[[bytes, Address], None]

RELAYS_PER_RECORD = 3
MAX_CONCURRENT_PINGS = 8
MAX_TOKEN_CACHE = 128
MAX_LOOKUP_RESULTS = 4096
FIRST_FIND_ALPHA = 3
"""First-round requests of a query that ends at its first find (Kademlia's alpha)."""
STALE_PINGS_PER_ROUND = 1
FILL_CONTACTS = 3
NAT_CHECK_HELPERS = 3
NAT_RECHECK_SOON = 30.0
DEFAULT_PERSISTENT_AFTER = 10 * 60.0
"""How long an adaptive node must have been reachable before it claims a routing-table
slot: apps that live shorter (most, since every Swarm runs a DHT node) stay out of
other nodes' tables."""
FIRST_CHECK_ATTEMPTS = 3


class _Call:
    """A request of ours: the RPC in flight now (a token retry replaces it)."""

    __slots__ = ("first", "pending")

    def __init__(self) -> None:
        self.first = True
        self.pending: Pending | None = None


def _forward_result(resp: Response) -> bytes:
    """A FORWARD reply's payload, or the error it carries."""
    if resp.error == ErrorCode.UNKNOWN_TARGET:
        raise UnknownTargetError(resp.error, "the relay holds no announcement of that key")
    if resp.error in (ErrorCode.NO_HANDLER, ErrorCode.FORWARD_FAILED, ErrorCode.TOO_LARGE):
        raise ForwardError(resp.error, f"forward failed ({ErrorCode(resp.error).name})")
    if resp.error != ErrorCode.OK:
        raise RemoteError(resp.error)
    return resp.value or b""


@dataclass
class LookupTrace:
    """What one :meth:`DHTNode.lookup` did, filled in as it runs."""

    hops: dict[bytes, int] = field(default_factory=dict)
    """Public key -> hop of the reply that first brought its record (0: stored here;
    1: a node the query started from; k+1: a node named by a hop-k reply)."""
    requests: int = 0
    responses: int = 0


class DHTNode(RequestServer, AsyncResource):
    """A Kademlia node on one datagram socket; an async context manager.

    ``ephemeral=None`` (default) decides by itself: the node queries from the start
    but claims a routing-table slot only once it has been reachable (other nodes ping
    it back from a fresh port, and its NAT keeps a consistent mapping) for
    ``persistent_after`` seconds, confirmed by a fresh check then. Short-lived apps thus
    never enter other nodes' tables, where they would leave dead entries that cost
    later lookups a timeout each (hyperdht likewise promotes only long-lived nodes).
    ``ephemeral=False`` claims from the start (bootstrap nodes); ``ephemeral=True``
    never claims.
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
        alpha: int = 10,
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
        persistent_after: float = DEFAULT_PERSISTENT_AFTER,
        max_records_per_topic: int = 64,
        max_records_per_ip: int = 32,
        max_records: int = 4096,
        max_contacts_per_ip: int = DEFAULT_MAX_PER_IP,
        max_contacts_per_ip_per_bucket: int = DEFAULT_MAX_PER_IP_PER_BUCKET,
        max_values: int = 1024,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= k <= 32 or alpha < 1:
            raise InvalidArgumentError("k must be 1..32 and alpha at least 1")
        if max_contacts_per_ip < 1 or max_contacts_per_ip_per_bucket < 1:
            raise InvalidArgumentError("the per-IP contact limits must be at least 1")
        if not persistent_after >= 0:
            raise InvalidArgumentError("persistent_after must be >= 0 seconds")
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
        self.persistent_after = persistent_after
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
        self._ip_limits = {
            "max_per_ip": max_contacts_per_ip,
            "max_per_ip_per_bucket": max_contacts_per_ip_per_bucket,
        }
        self.routing_table = RoutingTable(node_id(self._local), k, **self._ip_limits)
        self.records = RecordStore(
            record_ttl,
            value_ttl,
            max_records_per_topic,
            max_records_per_ip,
            max_records,
            max_values,
        )
        self._token_cache: OrderedDict[Address, bytes] = OrderedDict()
        self._sampler = NatSampler()
        self._reachable: bool | None = None
        self._eligible_since: float | None = None
        """Loop time since which an adaptive node could have claimed ``_eligible_at``."""
        self._eligible_at: Address | None = None
        self._promotion: asyncio.TimerHandle | None = None
        self._claimed = asyncio.Event()
        """Set whenever we claim an id (tests await it)."""
        self._nat_type = NatType.UNKNOWN
        self._handlers: list[DatagramHandler | None] = [None] * 256
        self._deferred: deque[tuple[bytes, Address]] | None = None
        """The rest of a burst of datagrams, held while waiting tasks run (:meth:`_hand_over`)."""
        self._probes: dict[bytes, tuple[asyncio.Future[Address], set[Address]]] = {}
        self._pinging: set[bytes] = set()
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

    async def _enter(self) -> None:
        await self.start()

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
        self.routing_table = RoutingTable(node_id(self._local), self.k, **self._ip_limits)
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
        """Wait until the first reachability check finished (``nat_type`` and
        ``reachable`` are known; an adaptive node joins routing tables only later,
        after ``persistent_after`` seconds of reachability)."""
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
        if self._promotion is not None:
            self._promotion.cancel()
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
        if new is not None:
            self._claimed.set()
        else:
            self._claimed.clear()
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
            self._set_id(self._adaptive_id(public))
        return self._id is not None and self._id != was and not self._closed

    def _adaptive_id(self, public: Address | None) -> bytes | None:
        """The id an adaptive node claims: its public address's once it has been
        reachable at that address for ``persistent_after`` seconds, else none (and a
        timer re-checks when the time is up)."""
        eligible = (
            self._reachable is True
            and self._nat_type in (NatType.OPEN, NatType.CONSISTENT)
            and public is not None
        )
        if not eligible or public != self._eligible_at:
            self._eligible_since, self._eligible_at = None, None
            if self._promotion is not None:
                self._promotion.cancel()
                self._promotion = None
        if not eligible or public is None:
            return None
        now = self._now()
        if self._eligible_since is None:
            self._eligible_since, self._eligible_at = now, public
        due = self._eligible_since + self.persistent_after
        if now >= due:
            return node_id(public)
        if self._promotion is None and not self._closed:
            self._promotion = asyncio.get_running_loop().call_later(due - now, self._promotion_due)
        return None

    def _promotion_due(self) -> None:
        """``persistent_after`` is up: confirm we are still reachable (the check claims
        our id and announces us to our neighbours if so)."""
        self._promotion = None
        if self._closed or self._eligible_since is None:
            return
        if self._nat_checking is None or self._nat_checking.done():
            self._nat_checking = self._spawn(self._check_reachability())

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

    def _hand_over(self) -> None:
        """Let the tasks just woken run before the rest of this burst of datagrams.

        The transport reads a burst at once, and a task woken by one datagram (a
        lookup's consumer given a record) would otherwise run only once the whole
        burst is handled: on a 10-node lookup, all ten replies and the sends they
        start. The rest waits in :attr:`_deferred`, in order, one call_soon away: the
        woken tasks were scheduled first.
        """
        if self._deferred is None:
            self._deferred = deque()
            asyncio.get_running_loop().call_soon(self._handle_deferred)

    def _handle_deferred(self) -> None:
        deferred, self._deferred = self._deferred, None
        while deferred:
            if self._deferred is not None:  # handed over again: the rest waits once more
                self._deferred.extend(deferred)
                return
            self._dispatch(*deferred.popleft())

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if self._deferred is not None:
            self._deferred.append((data, addr))
        else:
            self._dispatch(data, addr)

    def _dispatch(self, data: bytes, addr: Address) -> None:
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

    # -- requests we make ---------------------------------------------------------------

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
    ) -> _Call:
        """One RPC with our id claim, learning from the reply; retried once with the
        token a node asks for. ``callback`` runs once, as :meth:`RPC.send`'s does."""
        rpc = self._check_open()
        call = _Call()
        sent = token or self._token_cache.get(addr)

        def on_reply(resp: Response | None, error: BaseException | None) -> None:
            if resp is None:
                if isinstance(error, RequestTimeoutError):
                    self._forget(addr)
                callback(None, error)
                return
            self._learn(addr, resp)
            if (
                call.first
                and resp.error == ErrorCode.TOKEN_REQUIRED
                and resp.token is not None
                and resp.token != sent
                and not self._closed
            ):
                call.first = False
                call.pending = rpc.send(
                    addr,
                    command,
                    on_reply,
                    id=self._id,
                    token=resp.token,
                    target=target,
                    value=value,
                    reply_timeout=reply_timeout,
                )
                return
            callback(resp, None)

        call.pending = rpc.send(
            addr,
            command,
            on_reply,
            id=self._id,
            token=sent,
            target=target,
            value=value,
            reply_timeout=reply_timeout,
        )
        return call

    def _cancel(self, call: _Call) -> None:
        if self._rpc is not None and call.pending is not None:
            self._rpc.cancel(call.pending)

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
        """:meth:`_call`, awaited."""
        return await wait_reply(
            lambda done: self._call(
                addr,
                command,
                done,
                target=target,
                value=value,
                token=token,
                reply_timeout=reply_timeout,
            ),
            self._cancel,
        )

    def _forget(self, addr: Address) -> None:
        """``addr`` did not answer: drop it from the routing table (a replacement may
        take its slot)."""
        contact_id = node_id(addr)
        contact = self.routing_table.get(contact_id)
        if contact is not None and contact.address == addr:
            self.routing_table.remove(contact_id)

    def has_token(self, addr: Address) -> bool:
        """Whether ``addr`` answered us lately (we hold its token: a request that needs
        one, such as :meth:`forward`, goes through without a round trip to get it)."""
        return (canonical_host(addr[0]), addr[1]) in self._token_cache

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

    def _walk(
        self,
        command: int,
        target: bytes,
        value: bytes | None = None,
        on_reply: OnReply | None = None,
        stop: Callable[[], bool] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> Walk[_Call]:
        """Start walking towards ``target`` (requests go out before this returns).

        A walk that ``stop``s at its first find starts with fewer requests: the nodes
        nearest the target all hold the value, so the first few to answer end it, and
        a full ``alpha`` would mostly send requests whose replies go unread. Should
        those few not have it, the walk widens to ``alpha``.
        """
        rpc = self._check_open()
        state = QueryState(target, self.k, self._own_addresses())
        for contact in self.routing_table.closest(target, self.k):
            state.add(contact.address)
        if len(self.routing_table) < self.k:
            for a in self._bootstrap_nodes + self._saved_nodes:
                state.add(a)

        def start(addr: Address, callback: ReplyCallback) -> _Call:
            return self._call(addr, command, callback, target=target, value=value)

        walk = Walk(
            state,
            start,
            self._cancel,
            alpha=self.alpha,
            timeout=rpc.rtt.timeout(),  # a typical node's: a stall is one timeout
            on_reply=on_reply,
            stop=stop,
            first_alpha=None if stop is None else FIRST_FIND_ALPHA,
            on_done=on_done,
        )
        return walk.begin()

    async def _query(
        self,
        command: int,
        target: bytes,
        value: bytes | None = None,
        on_reply: OnReply | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> QueryState:
        """Walk towards ``target`` until the k closest answered (see :class:`Walk`)."""
        walk = self._walk(command, target, value, on_reply, stop)
        try:
            return await walk.done
        finally:
            walk.cancel()

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

    async def lookup(
        self, topic: bytes, trace: LookupTrace | None = None
    ) -> AsyncGenerator[PeerRecord, None]:
        """Yield each distinct (by public key) verified record for ``topic`` as it arrives.

        A ``trace`` is filled in as the query runs: the hop of each record and the
        requests and replies it took.
        """
        async with contextlib.aclosing(self.find_peers(topic, trace)) as found:
            async for record, _ in found:
                yield record

    async def find_peers(
        self, topic: bytes, trace: LookupTrace | None = None
    ) -> AsyncGenerator[tuple[PeerRecord, Address | None], None]:
        """:meth:`lookup`, each record with the node that first answered with it
        (``None``: our own store). That node holds the announcement, and we its token
        from the reply: the one to ask to forward to the peer (see :meth:`find_peer`)."""
        _check_key(topic, "topic")
        self._check_open()
        queue: asyncio.Queue[tuple[PeerRecord, Address | None] | None] = asyncio.Queue()
        seen: set[bytes] = set()

        def offer(record: PeerRecord, hop: int, holder: Address | None) -> None:
            if record.public_key in seen or len(seen) >= MAX_LOOKUP_RESULTS:
                return
            if not self._valid(record, topic):
                return
            seen.add(record.public_key)
            if trace is not None:
                trace.hops[record.public_key] = hop
            waiting = queue.empty()  # the consumer waits (or is busy: then this costs little)
            queue.put_nowait((record, holder))  # wakes it, so after this...
            if waiting:
                self._hand_over()  # ...it runs before the rest of the replies

        values: set[bytes] = set()
        walked = False
        pager: Pager[_Call] | None = None  # made when a node's sample comes back full

        def on_page(records: list[PeerRecord], addr: Address, hop: int) -> None:
            for record in records:
                offer(record, hop, addr)

        def end() -> None:
            if walked and (pager is None or not pager.busy):
                queue.put_nowait(None)

        def on_reply(addr: Address, resp: Response, hop: int) -> None:
            nonlocal pager
            value = resp.value
            if value is None or resp.error != ErrorCode.OK or value in values:
                return  # the k nodes near a topic mostly send the very same bytes
            values.add(value)
            if pager is None and rec.lookup_reply_count(value) >= MAX_RECORDS_PER_REPLY:
                # a sample of more: read them all (dht.pages)
                fetch = self._page_fetcher(topic)
                pager = Pager(fetch, self._cancel, on_page, MAX_RECORDS_PER_REPLY, end)
                pager.full_sample(addr, hop)
            for record in rec.decode_lookup_reply(value, MAX_RECORDS_PER_REPLY, seen):
                offer(record, hop, addr)

        def on_walked() -> None:
            nonlocal walked
            walked = True
            end()

        for record in self.records.lookup(topic, self._now()):
            offer(record, 0, None)

        walk = self._walk(Command.LOOKUP, topic, on_reply=on_reply, on_done=on_walked)
        try:
            while (item := await queue.get()) is not None:
                yield item
            state = walk.done.result()  # raises ClosedError if the node closed under us
            if trace is not None:
                trace.requests, trace.responses = state.queried, state.responses
                if pager is not None:
                    trace.requests += pager.requests
                    trace.responses += pager.pages
        finally:
            walk.cancel()
            if pager is not None:
                pager.cancel()
            if not walk.done.cancelled():
                walk.done.exception()  # retrieved: an early exit does not log it

    def _page_fetcher(self, topic: bytes) -> Fetch[_Call]:
        """Asks a node for its records of ``topic`` after a key (see :mod:`dht.pages`)."""

        def fetch(
            addr: Address, after: bytes, done: Callable[[list[PeerRecord] | None], None]
        ) -> _Call:
            def on_reply(resp: Response | None, error: BaseException | None) -> None:
                records: list[PeerRecord] | None = None
                # an error, or a bad page, ends the reading like a failed request
                if resp is not None and resp.error == ErrorCode.OK:
                    records = []  # a node with no records after the key sends no value
                    if resp.value is not None:
                        try:
                            records = rec.decode_lookup_reply(resp.value, MAX_RECORDS_PER_REPLY)
                        except PeerswarmError:
                            records = None
                done(records)

            return self._call(addr, Command.LOOKUP, on_reply, target=topic, value=after)

        return fetch

    async def find_peer(
        self, topic: bytes, public_key: bytes
    ) -> tuple[PeerRecord, Address | None] | None:
        """The first verified record of ``public_key`` under ``topic`` and the node that
        answered with it (``None``: our own store), or ``None`` if nobody has one.

        Unlike breaking out of :meth:`lookup`, the query stops within the batch of
        replies that brought the record, with nothing left to tear down: a dial by key
        goes on at once, through the node that answered (it holds the announcement,
        and our token from its reply).
        """
        _check_key(topic, "topic")
        _check_key(public_key, "public key")
        self._check_open()
        for record in self.records.lookup(topic, self._now()):
            if record.public_key == public_key and self._valid(record, topic):
                return record, None
        found: list[tuple[PeerRecord, Address]] = []
        others: set[bytes] = set()  # keys not worth decoding twice

        def on_reply(addr: Address, resp: Response, hop: int) -> None:
            if found or resp.value is None or resp.error != ErrorCode.OK:
                return
            for record in rec.decode_lookup_reply(resp.value, MAX_RECORDS_PER_REPLY, others):
                if record.public_key != public_key:
                    others.add(record.public_key)
                elif self._valid(record, topic):
                    found.append((record, addr))
                    return

        await self._query(Command.LOOKUP, topic, on_reply=on_reply, stop=lambda: bool(found))
        return found[0] if found else None

    def _valid(self, record: PeerRecord, topic: bytes) -> bool:
        """Whether a record from the wire is signed for ``topic`` and still fresh."""
        try:
            record.verify(topic)
        except VerificationError:
            return False
        return self.is_fresh(record)

    def is_fresh(self, record: PeerRecord) -> bool:
        """Whether ``record`` is younger than the record TTL: the nodes it names may
        still hold it (or the announcer's newer one, which replaced it in place)."""
        return self._fresh(record.timestamp)

    # -- forwarding ---------------------------------------------------------------------

    @property
    def forward_timeout(self) -> float:
        """How long a FORWARD waits for its reply before it retransmits: its reply
        crosses two hops (the relay asks the target in between)."""
        return 2 * self.request_timeout

    async def forward(self, via: Address, target_public_key: bytes, payload: bytes) -> bytes:
        """Have ``via`` (a node holding the target's announcement) pass ``payload`` to the
        target and return its reply. Raises :class:`UnknownTargetError` when ``via`` holds
        no announcement of that key, :class:`ForwardError` when the target fails."""
        resp = await wait_reply(
            lambda done: self._forward_start(via, target_public_key, payload, done), self._cancel
        )
        return _forward_result(resp)

    def forward_call(
        self,
        via: Address,
        target_public_key: bytes,
        payload: bytes,
        callback: Callable[[bytes | None, PeerswarmError | None], None],
    ) -> Callable[[], None]:
        """:meth:`forward`, sent before this returns, with ``callback(reply, None)`` or
        ``callback(None, error)`` run once from the reply's own callback (no task to
        wake in between); returns a function that cancels it."""

        def done(resp: Response | None, error: BaseException | None) -> None:
            if resp is None:
                callback(None, error if isinstance(error, PeerswarmError) else ClosedError())
                return
            try:
                reply = _forward_result(resp)
            except PeerswarmError as e:
                callback(None, e)
                return
            callback(reply, None)

        return functools.partial(
            self._cancel, self._forward_start(via, target_public_key, payload, done)
        )

    def _forward_start(
        self, via: Address, target_public_key: bytes, payload: bytes, callback: ReplyCallback
    ) -> _Call:
        _check_key(target_public_key, "target public key")
        if len(payload) > MAX_FORWARD_PAYLOAD:
            raise InvalidArgumentError(
                f"a forwarded payload is at most {MAX_FORWARD_PAYLOAD} bytes"
            )
        return self._call(
            (canonical_host(via[0]), via[1]),
            Command.FORWARD,
            callback,
            target=target_public_key,
            value=payload,
            reply_timeout=self.forward_timeout,
        )

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

        def on_reply(addr: Address, resp: Response, hop: int) -> None:
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

        def on_reply(addr: Address, resp: Response, hop: int) -> None:
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
