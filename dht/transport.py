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
import socket
from collections.abc import Callable
from typing import Protocol

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


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._receiver(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) surface here; UDP semantics: ignore.
        pass


class UDPTransport:
    """A real UDP socket behind the :class:`DatagramTransport` interface."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self._local: Address = (str(host), int(port))

    @property
    def local_address(self) -> Address:
        return self._local

    def sendto(self, data: bytes, addr: Address) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def close(self) -> None:
        self._transport.close()


class UDPNetwork:
    """The operating system's UDP."""

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(receiver), local_addr=(host, port)
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_SIZE)
        return UDPTransport(transport)
