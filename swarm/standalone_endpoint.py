"""A QUIC endpoint on a socket of its own, for peers that need no DHT.

It opens one datagram transport and hands QUIC packets (first byte 0x40–0xFF, as
on a DHT node's socket) to a :class:`~swarm.quic_endpoint.QuicEndpoint`; anything
else is dropped. Tests, benchmarks and direct dials by address use it.
"""

from __future__ import annotations

from dht.transport import Address, DatagramTransport, Network, UDPNetwork
from storage.keypair import KeyPair
from storage.resource import AsyncResource
from swarm.admission import Admission, Firewall
from swarm.connection import Connection
from swarm.quic_endpoint import QuicEndpoint
from swarm.quic_options import QuicOptions

QUIC_FIRST_BYTE = 0x40


class StandaloneEndpoint(AsyncResource):
    """``async with StandaloneEndpoint(kp) as ep: conn = await ep.connect(addr, key)``."""

    def __init__(
        self,
        key_pair: KeyPair | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        network: Network | None = None,
        options: QuicOptions | None = None,
        firewall: Firewall | None = None,
        accept: bool = True,
    ) -> None:
        self.key_pair = key_pair or KeyPair.generate()
        self._host = host
        self._port = port
        self._network = network or UDPNetwork()
        self._transport: DatagramTransport | None = None
        self.endpoint = QuicEndpoint(self.key_pair, self._send, options=options, firewall=firewall)
        self.endpoint.accepting = accept

    async def open(self) -> StandaloneEndpoint:
        self._transport = await self._network.open(self._host, self._port, self._receive)
        return self

    @property
    def address(self) -> Address:
        if self._transport is None:
            raise RuntimeError("endpoint not open")
        return self._transport.local_address

    @property
    def public_key(self) -> bytes:
        return self.key_pair.public_key

    async def connect(
        self, addr: Address, public_key: bytes, *, admission: Admission | None = None
    ) -> Connection:
        return await self.endpoint.connect(addr, public_key, admission=admission)

    async def close(self) -> None:
        await self.endpoint.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def abort(self) -> None:
        """Vanish: close the socket and drop every connection without a word."""
        self.endpoint.abort()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def _enter(self) -> None:
        await self.open()

    def _send(self, data: bytes, addr: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def _receive(self, data: bytes, addr: Address) -> None:
        if data and data[0] >= QUIC_FIRST_BYTE:
            self.endpoint.datagram_received(data, addr)
