"""The datagram transport every network layer runs on.

A node owns exactly one transport (one UDP socket, or one virtual socket in tests).
``dht`` opens it and dispatches each incoming datagram by its first byte
(see ``docs/architecture.md``, "One socket"); the layers above register handlers
for their byte ranges, so QUIC, punch probes and relay frames leave through the same
NAT mapping the DHT learned.

A :class:`Network` opens transports: :class:`UDPNetwork` gives real sockets; the
in-process virtual network in ``nat`` gives virtual ones with latency, loss,
partitions and NAT boxes. Code above this module never touches sockets directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

Address = tuple[str, int]
Receiver = Callable[[bytes, Address], None]

SOCKET_BUFFER_SIZE = 4 * 1024 * 1024
"""Kernel send/receive buffer asked for each UDP socket. With Linux's ~208 KiB default a
QUIC bulk transfer overflows the receiver's buffer and congestion control collapses;
the kernel allocates on demand and caps the value at net.core.{r,w}mem_max."""


class DatagramTransport(Protocol):
    """One bound datagram endpoint."""

    @property
    def local_address(self) -> Address: ...

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send without blocking; a datagram that cannot be sent is dropped, like UDP."""

    def close(self) -> None: ...


class Network(Protocol):
    """A factory of transports: the real OS, or a simulated network."""

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport: ...


MAX_READS_PER_WAKEUP = 64
"""Datagrams read in one go when the socket becomes readable. Reading a burst at once
(instead of one datagram per event-loop iteration) lets a receiver handle it as a
batch: QUIC acknowledges and answers once per burst, not once per packet."""

MAX_DATAGRAM_SIZE = 65535
MAX_SEND_QUEUE = 4 * 1024 * 1024
"""Bytes held while the kernel's send buffer is full; beyond that datagrams are dropped."""


class UDPTransport:
    """A real UDP socket behind the :class:`DatagramTransport` interface.

    It drives a non-blocking socket with the loop's reader/writer callbacks itself:
    each wakeup reads up to :data:`MAX_READS_PER_WAKEUP` datagrams, and sends go out
    at once, queued (bounded) only while the kernel buffer is full.
    """

    def __init__(self, sock: socket.socket, receiver: Receiver) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._receiver = receiver
        self._loop = asyncio.get_running_loop()
        host, port = sock.getsockname()[:2]
        self._local: Address = (str(host), int(port))
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._queued = 0
        self._closed = False
        self._loop.add_reader(self._fd, self._read_ready)

    @property
    def local_address(self) -> Address:
        return self._local

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        if not self._queue:
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError:
                return  # unreachable, too big, ...: dropped, like UDP
        if self._queued + len(data) <= MAX_SEND_QUEUE:
            self._queue.append((bytes(data), addr))
            self._queued += len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._queue.clear()
        self._sock.close()

    def _read_ready(self) -> None:
        for _ in range(MAX_READS_PER_WAKEUP):
            if self._closed:
                return
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP errors (port unreachable) surface here; UDP semantics: ignore
            self._receiver(data, (str(addr[0]), int(addr[1])))

    def _write_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass  # dropped, like UDP
            self._queue.popleft()
            self._queued -= len(data)
        self._loop.remove_writer(self._fd)


class UDPNetwork:
    """The operating system's UDP."""

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        error: OSError | None = None
        for family, kind, proto, address in await _bind_addresses(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                sock.bind(address)
            except OSError as e:
                sock.close()
                error = e
                continue
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_SIZE)
            return UDPTransport(sock, receiver)
        assert error is not None
        raise error


async def _bind_addresses(host: str, port: int) -> list[tuple[int, int, int, Any]]:
    """Where to bind for ``host``: an IP literal as it is, anything else resolved.

    The loop resolves in a thread, which costs a handoff each way; every node and
    every NAT-check probe opens a socket, nearly always on an IP literal.
    """
    if "%" not in host:  # scoped IPv6 addresses go through the resolver
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if version == 6 else socket.AF_INET
            return [(family, socket.SOCK_DGRAM, 0, (host, port))]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    return [(family, kind, proto, address) for family, kind, proto, _, address in infos]
