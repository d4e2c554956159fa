"""An in-process datagram network: virtual hosts, latency, loss, partitions, NAT hooks.

:class:`VirtualNetwork` implements ``dht.transport.Network``, so the real protocol
code runs over it unchanged; nothing here touches a socket. Run it on a
:class:`~nat.virtual_time.VirtualTimeLoop` and delays cost no wall time, which is what
lets 10,000 nodes share one process.

Topology. Every endpoint has a unique IPv4 address. Hosts on the internet get
addresses from ``public_subnet``; hosts ``behind`` a middlebox (a NAT box, a firewall)
get addresses from ``private_subnet`` and form a LAN with the other hosts behind the
same box. A packet travels::

    host -> [middlebox.outbound ...] -> the wire (latency, loss, partitions)
         -> [middlebox.inbound ...] -> host

It climbs through the sender's middleboxes (each may rewrite the source, or drop)
until it reaches the realm where its destination address lives, crosses the wire,
then descends through the boxes on the receiving side (each may rewrite the
destination, or drop an unsolicited packet). Middleboxes nest (carrier-grade NAT),
hairpinning is the box's decision, and hosts behind one box reach each other on
their private addresses without crossing it. Outbound runs when the packet is sent,
inbound when it arrives, each with the loop's clock, so box timers (mapping
lifetimes) see the latency.

Links, loss and partitions apply where the packet crosses the wire: between the
sender's outermost address and the address it was sent to (a NATed host is reached
through its box's public address). A partition also holds for hosts behind a box
that is in a group, unless the host is put in a group of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from dht.transport import Address, Network, Receiver
from nat.errors import AddressInUseError, AddressUnavailableError
from storage.errors import ClosedError, InvalidArgumentError
from storage.resource import AsyncResource

__all__ = [
    "Middlebox",
    "NetworkStats",
    "Packet",
    "VirtualNetwork",
    "VirtualTransport",
]

EPHEMERAL_PORTS = range(49152, 65536)
"""Where ``open(host, 0, ...)`` allocates ports (the IANA dynamic range)."""

MAX_DATAGRAM = 65507
"""The largest UDP payload over IPv4; larger datagrams are dropped as ``oversize``."""

Latency = float | Callable[[str, str], float]
"""Seconds one way: a constant, or a function of (source, destination) address."""


class Packet(NamedTuple):
    """A datagram in flight, as a middlebox sees it."""

    src: Address
    dst: Address
    data: bytes


class Middlebox(Protocol):
    """A box on one side of the wire: a NAT or a firewall (built by the NAT layer).

    Register one with :meth:`VirtualNetwork.add_middlebox` at its public address, then
    put hosts behind it with ``add_host(behind=that_address)``. Both methods return
    the packet to pass on (rewritten or not) or ``None`` to drop it; ``now`` is the
    loop's clock. They must not raise.
    """

    def outbound(self, packet: Packet, now: float) -> Packet | None:
        """A packet from inside leaves: map its source to a public address, or drop."""
        ...

    def inbound(self, packet: Packet, now: float) -> Packet | None:
        """A packet to the box's address arrives: map it to an inside host, or drop."""
        ...


@dataclass(slots=True)
class NetworkStats:
    """Counters since the network was created (copy with ``dataclasses.replace``)."""

    sent: int = 0
    delivered: int = 0
    bytes_sent: int = 0
    bytes_delivered: int = 0
    lost: int = 0  # random loss on the wire
    partitioned: int = 0  # sender and receiver on different sides of a partition
    filtered: int = 0  # dropped by a middlebox
    unreachable: int = 0  # no such host, nothing bound to the port, or closed
    oversize: int = 0  # larger than MAX_DATAGRAM
    receiver_errors: int = 0  # a receiver raised (a bug: receivers must not raise)

    @property
    def dropped(self) -> int:
        return self.lost + self.partitioned + self.filtered + self.unreachable + self.oversize


@dataclass(slots=True, eq=False)
class _Box:
    address: str
    gateway: _Box | None
    middlebox: Middlebox


@dataclass(slots=True, eq=False)
class _Host:
    address: str
    gateway: _Box | None
    ports: dict[int, VirtualTransport] = field(default_factory=dict)
    next_port: int = EPHEMERAL_PORTS.start


@dataclass(slots=True)
class _Link:
    latency: float | None
    jitter: float | None
    loss: float | None


class VirtualTransport:
    """One bound virtual port: the ``DatagramTransport`` a node gets from the network."""

    __slots__ = (
        "_closed",
        "_host",
        "_net",
        "_port",
        "_receiver",
        "bytes_received",
        "bytes_sent",
        "received",
        "sent",
    )

    def __init__(self, net: VirtualNetwork, host: _Host, port: int, receiver: Receiver) -> None:
        self._net = net
        self._host = host
        self._port = port
        self._receiver = receiver
        self._closed = False
        self.sent = 0
        self.received = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def local_address(self) -> Address:
        return (self._host.address, self._port)

    @property
    def closed(self) -> bool:
        return self._closed

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send without blocking; after ``close()`` the datagram is silently dropped."""
        if not self._closed:
            self._net._send(self, bytes(data), addr)

    def close(self) -> None:
        """Unbind the port; datagrams still in flight to it are dropped on arrival."""
        if not self._closed:
            self._closed = True
            if self._host.ports.get(self._port) is self:
                del self._host.ports[self._port]

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<VirtualTransport {self._host.address}:{self._port}{state}>"


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(f"{name} must be between 0 and 1, got {value}")


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and not value >= 0.0:
        raise InvalidArgumentError(f"{name} must be >= 0 seconds, got {value}")


class _Pool:
    """Hands out the addresses of a subnet in order, skipping .0, .255 and taken ones."""

    def __init__(self, subnet: str) -> None:
        net = ipaddress.IPv4Network(subnet)
        self._next = int(net.network_address) + 1
        self._end = int(net.broadcast_address)

    def take(self, taken: Callable[[str], bool]) -> str:
        while self._next < self._end:
            value = self._next
            self._next += 1
            if value & 0xFF in (0, 255):
                continue
            address = str(ipaddress.IPv4Address(value))
            if not taken(address):
                return address
        raise AddressUnavailableError("the virtual subnet is full")


class VirtualNetwork(AsyncResource):
    """A simulated datagram network; see the module docstring for the model.

    ``latency`` (seconds one way, or a function of the two addresses), ``jitter``
    (uniform extra delay in ``[0, jitter)``, so packets may reorder) and ``loss``
    (probability a packet is dropped) are the defaults for every link;
    :meth:`set_link` overrides them for one pair. They are plain attributes: change
    them at any time (a lossy phase, a latency spike). ``seed`` makes loss and jitter
    repeatable.
    """

    def __init__(
        self,
        *,
        latency: Latency = 0.01,
        jitter: float = 0.0,
        loss: float = 0.0,
        seed: int | None = 0,
        public_subnet: str = "11.0.0.0/8",
        private_subnet: str = "10.0.0.0/8",
    ) -> None:
        if not callable(latency):
            _check_seconds("latency", latency)
        _check_seconds("jitter", jitter)
        _check_fraction("loss", loss)
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.stats = NetworkStats()
        self._random = random.Random(seed)
        self._nodes: dict[str, _Host | _Box] = {}
        self._public = _Pool(public_subnet)
        self._private = _Pool(private_subnet)
        self._links: dict[tuple[str, str], _Link] = {}
        self._groups: dict[str, int] = {}
        self._next_group = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.tap: Callable[[Packet], None] | None = None
        """Sees every packet just before it is delivered (for measurements); must not raise."""

    # -- topology ---------------------------------------------------------------

    def new_address(self, *, private: bool = False) -> str:
        """An unused address (to build a middlebox that must know its own)."""
        pool = self._private if private else self._public
        return pool.take(self._nodes.__contains__)

    def add_host(self, address: str | None = None, *, behind: str | None = None) -> str:
        """Add a host (on the internet, or behind the middlebox at ``behind``); its address."""
        gateway = self._box(behind) if behind is not None else None
        address = self._claim(address, private=gateway is not None)
        self._nodes[address] = _Host(address, gateway)
        return address

    def add_middlebox(
        self, middlebox: Middlebox, address: str | None = None, *, behind: str | None = None
    ) -> str:
        """Route ``address`` (allocated if ``None``) to ``middlebox``; its address.

        ``behind`` nests it behind another box (carrier-grade NAT).
        """
        gateway = self._box(behind) if behind is not None else None
        address = self._claim(address, private=gateway is not None)
        self._nodes[address] = _Box(address, gateway, middlebox)
        return address

    def remove_host(self, address: str) -> None:
        """Take a host off the network, closing everything bound on it."""
        node = self._nodes.get(address)
        if not isinstance(node, _Host):
            raise AddressUnavailableError(f"no virtual host {address}")
        for transport in list(node.ports.values()):
            transport.close()
        del self._nodes[address]
        self._groups.pop(address, None)

    @property
    def hosts(self) -> list[str]:
        """Addresses of every host (not middleboxes), in the order they were added."""
        return [a for a, n in self._nodes.items() if isinstance(n, _Host)]

    def bound(self, address: str) -> list[Address]:
        """The addresses bound on one host."""
        node = self._nodes.get(address)
        if not isinstance(node, _Host):
            raise AddressUnavailableError(f"no virtual host {address}")
        return [(address, port) for port in node.ports]

    def _box(self, address: str) -> _Box:
        node = self._nodes.get(address)
        if not isinstance(node, _Box):
            raise AddressUnavailableError(f"no middlebox at {address}")
        return node

    def _claim(self, address: str | None, *, private: bool) -> str:
        if self._closed:
            raise ClosedError("the virtual network is closed")
        if address is None:
            return self.new_address(private=private)
        try:
            address = str(ipaddress.IPv4Address(address))
        except ValueError as e:
            raise AddressUnavailableError(f"not an IPv4 address: {address!r}") from e
        if address in self._nodes:
            raise AddressUnavailableError(f"{address} is already on the network")
        return address

    # -- links and faults -------------------------------------------------------

    def set_link(
        self,
        a: str,
        b: str,
        *,
        latency: float | None = None,
        jitter: float | None = None,
        loss: float | None = None,
    ) -> None:
        """Override the defaults between two addresses (both ways); ``None`` keeps one."""
        _check_seconds("latency", latency)
        _check_seconds("jitter", jitter)
        _check_fraction("loss", loss)
        if latency is None and jitter is None and loss is None:
            self._links.pop(_pair(a, b), None)
        else:
            self._links[_pair(a, b)] = _Link(latency, jitter, loss)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every group off from the others; addresses in no group reach everyone.

        Hosts behind a middlebox follow the box's group unless given their own.
        Packets already in flight across the cut are dropped when they arrive.
        """
        for group in groups:
            label = self._next_group
            self._next_group += 1
            for address in group:
                self._groups[address] = label

    def heal(self) -> None:
        """Remove every partition."""
        self._groups.clear()

    def _group(self, node: _Host | _Box | None) -> int | None:
        while node is not None:
            label = self._groups.get(node.address)
            if label is not None:
                return label
            node = node.gateway
        return None

    def _cut(self, a: _Host | _Box, b: _Host | _Box) -> bool:
        ga = self._group(a)
        gb = self._group(b)
        return ga is not None and gb is not None and ga != gb

    # -- the Network protocol ---------------------------------------------------

    async def open(self, host: str, port: int, receiver: Receiver) -> VirtualTransport:
        """Bind ``host:port`` (port 0: a free ephemeral port) to ``receiver``."""
        if self._closed:
            raise ClosedError("the virtual network is closed")
        node = self._nodes.get(host)
        if not isinstance(node, _Host):
            raise AddressUnavailableError(f"no virtual host {host!r} (add it with add_host)")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidArgumentError(f"port out of range: {port!r}")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if port == 0:
            port = self._free_port(node)
        elif port in node.ports:
            raise AddressInUseError(f"{host}:{port} is already bound")
        transport = VirtualTransport(self, node, port, receiver)
        node.ports[port] = transport
        return transport

    def _free_port(self, node: _Host) -> int:
        for _ in EPHEMERAL_PORTS:
            port = node.next_port
            node.next_port = port + 1 if port + 1 < EPHEMERAL_PORTS.stop else EPHEMERAL_PORTS.start
            if port not in node.ports:
                return port
        raise AddressInUseError(f"no free ephemeral port on {node.address}")

    # -- routing ----------------------------------------------------------------

    def _send(self, transport: VirtualTransport, data: bytes, dst: Address) -> None:
        stats = self.stats
        size = len(data)
        stats.sent += 1
        stats.bytes_sent += size
        transport.sent += 1
        transport.bytes_sent += size
        if size > MAX_DATAGRAM:
            stats.oversize += 1
            return
        loop = self._loop
        assert loop is not None  # set by open(), which made this transport
        sender = transport._host
        packet = Packet(transport.local_address, dst, data)
        nodes = self._nodes
        realm = sender.gateway
        if realm is not None:
            now = loop.time()
            # Climb until the destination address lives in the current realm.
            while realm is not None:
                target = nodes.get(packet.dst[0])
                if target is not None and target.gateway is realm:
                    break
                out = realm.middlebox.outbound(packet, now)
                if out is None:
                    stats.filtered += 1
                    return
                packet = out
                realm = realm.gateway
        target = nodes.get(packet.dst[0])
        if target is None or target.gateway is not realm:
            stats.unreachable += 1
            return
        link = self._links.get(_pair(packet.src[0], packet.dst[0])) if self._links else None
        loss = self.loss if link is None or link.loss is None else link.loss
        if loss and self._random.random() < loss:
            stats.lost += 1
            return
        if link is not None and link.latency is not None:
            delay = link.latency
        elif callable(self.latency):
            delay = self.latency(packet.src[0], packet.dst[0])
        else:
            delay = self.latency
        jitter = self.jitter if link is None or link.jitter is None else link.jitter
        if jitter:
            delay += self._random.random() * jitter
        loop.call_later(delay, self._arrive, sender, target, packet)

    def _arrive(self, sender: _Host, target: _Host | _Box, packet: Packet) -> None:
        stats = self.stats
        if self._groups and self._cut(sender, target):
            stats.partitioned += 1
            return
        while isinstance(target, _Box):
            box = target
            assert self._loop is not None
            inside = box.middlebox.inbound(packet, self._loop.time())
            if inside is None:
                stats.filtered += 1
                return
            packet = inside
            node = self._nodes.get(packet.dst[0])
            if node is None or node.gateway is not box:
                stats.unreachable += 1
                return
            target = node
            if self._groups and self._cut(sender, target):
                stats.partitioned += 1
                return
        transport = target.ports.get(packet.dst[1])
        if transport is None or self._closed:
            stats.unreachable += 1
            return
        size = len(packet.data)
        stats.delivered += 1
        stats.bytes_delivered += size
        transport.received += 1
        transport.bytes_received += size
        if self.tap is not None:
            self.tap(packet)
        try:
            transport._receiver(packet.data, packet.src)
        except Exception as e:
            stats.receiver_errors += 1
            assert self._loop is not None
            self._loop.call_exception_handler(
                {"message": "a datagram receiver raised", "exception": e, "transport": transport}
            )

    # -- lifetime ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close every transport; datagrams in flight are dropped; ``open`` then fails."""
        self._closed = True
        for node in self._nodes.values():
            if isinstance(node, _Host):
                for transport in list(node.ports.values()):
                    transport.close()



if TYPE_CHECKING:

    def _is_a_network(net: VirtualNetwork) -> Network:
        return net  # mypy checks that VirtualNetwork satisfies dht.transport.Network
