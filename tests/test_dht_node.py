"""DHTNode over real UDP on 127.0.0.1: joining, reachability, the shared socket, RPC loss."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from dht import DHTNode, NatType
from dht.node_id import node_id
from dht.testnet import testnet
from dht.transport import Address, DatagramTransport, Receiver, UDPNetwork
from storage import KeyPair
from storage.errors import ClosedError, InvalidArgumentError

FAST: dict[str, Any] = {"request_timeout": 0.2}


class _DroppingTransport:
    def __init__(self, inner: DatagramTransport, net: DropFirst) -> None:
        self._inner = inner
        self._net = net

    @property
    def local_address(self) -> Address:
        return self._inner.local_address

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._net.to_drop > 0:
            self._net.to_drop -= 1
            self._net.dropped += 1
            return
        self._inner.sendto(data, addr)

    def close(self) -> None:
        self._inner.close()


class DropFirst:
    """A Network whose transports lose the first ``n`` datagrams they send."""

    def __init__(self, n: int) -> None:
        self.to_drop = n
        self.dropped = 0

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        return _DroppingTransport(await UDPNetwork().open(host, port, receiver), self)


class _FirewalledTransport:
    def __init__(self) -> None:
        self.inner: DatagramTransport | None = None
        self.contacted: set[Address] = set()

    @property
    def local_address(self) -> Address:
        assert self.inner is not None
        return self.inner.local_address

    def sendto(self, data: bytes, addr: Address) -> None:
        assert self.inner is not None
        self.contacted.add(addr)
        self.inner.sendto(data, addr)

    def close(self) -> None:
        assert self.inner is not None
        self.inner.close()


class Firewall:
    """A stateful firewall: only packets from addresses we sent to get in."""

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        t = _FirewalledTransport()

        def filtered(data: bytes, addr: Address) -> None:
            if addr in t.contacted:
                receiver(data, addr)

        t.inner = await UDPNetwork().open(host, port, filtered)
        return t


async def test_testnet_bootstraps_and_every_node_is_open_and_persistent() -> None:
    async with testnet(size=20, **FAST) as net:
        assert len(net.bootstrap) == 1 and net.bootstrap[0] == net.nodes[0].address
        for node in net.nodes:
            assert node.nat_type is NatType.OPEN
            assert node.public_address == node.address
            assert node.id == node_id(node.address) and not node.ephemeral
            assert len(node.routing_table) >= 10
        # a newcomer that knows one node learns the network
        async with DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", **FAST) as newcomer:
            assert len(newcomer.routing_table) >= 15
            await newcomer.ready()
            assert newcomer.nat_type is NatType.OPEN and newcomer.reachable
            # adaptive: reachable, but too young to claim a slot in anyone's table
            assert newcomer.ephemeral and newcomer.persistent_after == 600
            for node in net.nodes:
                assert all(c.address != newcomer.address for c in node.routing_table)
        assert all(len(n._tasks) == 0 for n in [newcomer])


async def test_ephemeral_nodes_query_but_never_enter_routing_tables() -> None:
    async with (
        testnet(size=5, **FAST) as net,
        DHTNode(
            bootstrap=net.bootstrap,
            host="127.0.0.1",
            ephemeral=True,
            persistent_after=0,
            **FAST,
        ) as eph,
    ):
        await eph.ready()
        assert eph.ephemeral and eph.id is None
        assert eph.nat_type is NatType.OPEN  # it still learns its NAT class
        assert len(eph.routing_table) == 5
        await eph.immutable_put(b"from an ephemeral node")
        for node in net.nodes:
            assert all(c.address != eph.address for c in node.routing_table)


async def test_firewalled_node_is_detected_and_stays_ephemeral() -> None:
    async with (
        testnet(size=4, **FAST) as net,
        DHTNode(
            bootstrap=net.bootstrap,
            host="127.0.0.1",
            network=Firewall(),
            nat_probe_timeout=0.3,
            persistent_after=0,
            **FAST,
        ) as node,
    ):
        await node.ready()
        assert node.reachable is False
        assert node.nat_type is NatType.FIREWALLED
        assert node.ephemeral
        for other in net.nodes:
            assert all(c.address != node.address for c in other.routing_table)
        # it can still use the DHT
        key = await node.immutable_put(b"firewalled but useful")
        assert await net.nodes[1].immutable_get(key) == b"firewalled but useful"


async def test_adaptive_node_joins_tables_once_reachable_for_persistent_after() -> None:
    loop = asyncio.get_running_loop()
    async with testnet(size=5, **FAST) as net:
        started = loop.time()
        async with DHTNode(
            bootstrap=net.bootstrap, host="127.0.0.1", persistent_after=0.5, **FAST
        ) as node:
            await node.ready()
            assert node.reachable and node.nat_type is NatType.OPEN
            assert node.ephemeral and node.id is None
            for other in net.nodes:
                assert all(c.address != node.address for c in other.routing_table)
            await asyncio.wait_for(node._claimed.wait(), 5)
            assert loop.time() - started >= 0.5
            assert not node.ephemeral and node.id == node_id(node.address)
            assert node._nat_checking is not None
            await node._nat_checking  # the confirming check, then the join lookup
            knowing = [o for o in net.nodes if any(c.id == node.id for c in o.routing_table)]
            assert len(knowing) >= 3


async def test_persistent_after_zero_claims_at_once_and_rejects_negatives() -> None:
    async with (
        testnet(size=3, **FAST) as net,
        DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", persistent_after=0, **FAST) as node,
    ):
        await node.ready()
        assert not node.ephemeral and node.id == node_id(node.address)
    with pytest.raises(InvalidArgumentError):
        DHTNode(persistent_after=-1)


async def test_lost_packets_are_retried() -> None:
    async with testnet(size=6, **FAST) as net:
        lossy = DropFirst(2)  # the first request and its first retransmission
        async with DHTNode(
            bootstrap=net.bootstrap, host="127.0.0.1", network=lossy, **FAST
        ) as node:
            assert lossy.dropped == 2
            assert len(node.routing_table) >= 5  # the bootstrap query survived the losses
            assert node._rpc is not None and node._rpc.retransmitted >= 1
            lossy.to_drop = 2
            key = await node.immutable_put(b"despite loss")
            assert await net.nodes[3].immutable_get(key) == b"despite loss"


async def test_datagram_handlers_share_the_socket() -> None:
    async with testnet(size=2, **FAST) as net:
        a, b = net.nodes
        got: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        a.add_datagram_handler(0x40, 0xFF, lambda d, addr: got.put_nowait((d, addr)))

        def broken(data: bytes, addr: Address) -> None:
            raise RuntimeError("handlers must not raise, but a bad one cannot hurt the node")

        a.add_datagram_handler(0x10, 0x1F, broken)
        with pytest.raises(InvalidArgumentError):
            a.add_datagram_handler(0x05, 0x20, broken)  # overlaps the DHT's range
        with pytest.raises(InvalidArgumentError):
            a.add_datagram_handler(0x80, 0x90, broken)  # taken
        b.send_datagram(b"\x11punch", a.address)
        b.send_datagram(b"\xc0quic", a.address)
        assert await asyncio.wait_for(got.get(), 2) == (b"\xc0quic", b.address)
        b.send_datagram(b"\x00never valid", a.address)
        b.send_datagram(b"\x35reserved", a.address)
        assert await b.ping(a.address) == b.address  # DHT still answers on the same socket
        assert got.empty()
        a.remove_datagram_handler(0x40, 0xFF)
        a.add_datagram_handler(0x40, 0x7F, lambda d, addr: None)


class Held:
    """A Network whose inbound datagrams can be held, then handed in as one burst (as a
    transport hands in what one read of its socket found)."""

    def __init__(self) -> None:
        self.held: list[tuple[bytes, Address]] | None = None
        self.enough = asyncio.Event()
        self._wanted = 0
        self._receiver: Receiver | None = None

    async def open(self, host: str, port: int, receiver: Receiver) -> DatagramTransport:
        self._receiver = receiver

        def receive(data: bytes, addr: Address) -> None:
            if self.held is None:
                receiver(data, addr)
                return
            self.held.append((data, addr))
            if len(self.held) >= self._wanted:
                self.enough.set()

        return await UDPNetwork().open(host, port, receive)

    def hold(self, count: int) -> None:
        """Hold what comes in from now on; :attr:`enough` is set at ``count`` datagrams."""
        self.held, self._wanted = [], count
        self.enough.clear()

    def release(self, *extra: tuple[bytes, Address]) -> None:
        """Hand in what was held, then ``extra``, in one go."""
        held, self.held = [*(self.held or ()), *extra], None
        assert self._receiver is not None
        for data, addr in held:
            self._receiver(data, addr)


async def test_a_lookup_hands_its_first_record_over_before_the_rest_of_a_burst() -> None:
    """The consumer gets a record before the node handles the datagrams that came in the
    same burst after it (the other replies, anyone's packets): a swarm dials at once."""
    held = Held()
    async with (
        testnet(size=3, **FAST) as net,
        DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as announcer,
        DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True, network=held) as looker,
    ):
        topic, key_pair = os.urandom(32), KeyPair.generate()
        await announcer.announce(topic, key_pair)
        await looker.ready()
        handled: list[bytes] = []
        looker.add_datagram_handler(0x20, 0x20, lambda data, addr: handled.append(data))

        async def release_the_replies() -> None:
            await asyncio.wait_for(held.enough.wait(), 5)
            held.release((b"\x20after the replies", net.nodes[0].address))

        held.hold(len(net.nodes))  # one reply from each node
        releasing = asyncio.ensure_future(release_the_replies())
        found = []
        async for record in looker.lookup(topic):
            found.append((record.public_key, list(handled)))
        await releasing
        assert found == [(key_pair.public_key, [])]
        assert handled == [b"\x20after the replies"]  # then handled, in its turn


async def test_restart_rejoins_through_saved_nodes_when_bootstrap_is_gone(tmp_path: Path) -> None:
    state = tmp_path / "dht.json"
    async with testnet(size=8, **FAST) as net:
        async with DHTNode(
            bootstrap=net.bootstrap, host="127.0.0.1", state_path=state, **FAST
        ) as node:
            await node.ready()
            assert len(node.routing_table) >= 7
        assert state.exists()
        bootstrap = net.bootstrap
        await net.nodes[0].close()
        async with DHTNode(
            bootstrap=bootstrap, host="127.0.0.1", state_path=state, **FAST
        ) as again:
            assert len(again.routing_table) >= 6
            assert all(c.address != bootstrap[0] for c in again.routing_table)
            key = await again.immutable_put(b"back again")
            assert await net.nodes[5].immutable_get(key) == b"back again"


async def test_close_cancels_everything_and_is_idempotent() -> None:
    async with testnet(size=3, **FAST) as net:
        node = net.nodes[2]
        await node.announce(b"t" * 32)
        assert node._tasks
        await node.close()
        await node.close()
        assert not node._tasks and node.closed
        with pytest.raises(ClosedError):
            await node.immutable_put(b"x")
        with pytest.raises(ClosedError):
            node.send_datagram(b"\x40", net.nodes[0].address)


async def test_a_hundred_nodes() -> None:
    async with testnet(size=100, request_timeout=0.5) as net:
        assert all(n.nat_type is NatType.OPEN and not n.ephemeral for n in net.nodes)
        topic = b"h" * 32
        keys = set()
        for node in net.nodes[10:15]:
            keys.add((await node.announce(topic)).public_key)
        for node in net.nodes[90:95]:
            assert {r.public_key async for r in node.lookup(topic)} == keys
        stored = sum(
            len(n.records.lookup(topic, asyncio.get_running_loop().time())) > 0 for n in net.nodes
        )
        assert 20 <= stored <= 25  # on the k closest (and, when close, the announcer itself)
        value_key = await net.nodes[3].immutable_put(b"hundred")
        assert await net.nodes[77].immutable_get(value_key) == b"hundred"
