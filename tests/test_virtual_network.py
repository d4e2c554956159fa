"""The virtual network: addresses, ports, latency, loss, partitions, middleboxes, closing."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics

import pytest

from dht.transport import Address, DatagramTransport
from nat.errors import AddressInUseError, AddressUnavailableError
from nat.virtual_network import (
    EPHEMERAL_PORTS,
    MAX_DATAGRAM,
    Packet,
    VirtualNetwork,
    VirtualTransport,
)
from nat.virtual_time import virtual_time
from storage.errors import ClosedError, InvalidArgumentError, PeerswarmError


class Inbox:
    """A receiver that records what arrived, and when."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Address, float]] = []
        self.event = asyncio.Event()

    def __call__(self, data: bytes, addr: Address) -> None:
        self.got.append((data, addr, asyncio.get_running_loop().time()))
        self.event.set()

    async def next(self) -> tuple[bytes, Address, float]:
        if not self.got:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), 60)
        return self.got.pop(0)


async def echo_server(net: VirtualNetwork, host: str, port: int = 7) -> DatagramTransport:
    """The tiny protocol these tests speak: send every datagram back to its source."""
    transport: DatagramTransport | None = None

    def echo(data: bytes, addr: Address) -> None:
        assert transport is not None
        transport.sendto(data, addr)

    transport = await net.open(host, port, echo)
    return transport


async def ping(client: VirtualTransport, inbox: Inbox, server: Address, n: int) -> float:
    """Round-trip time of one echo (virtual seconds)."""
    loop = asyncio.get_running_loop()
    sent = loop.time()
    client.sendto(b"ping %d" % n, server)
    data, addr, at = await inbox.next()
    assert (data, addr) == (b"ping %d" % n, server)
    return at - sent


# -- addresses and ports -----------------------------------------------------------


@virtual_time
async def test_hosts_get_distinct_public_addresses() -> None:
    async with VirtualNetwork() as net:
        hosts = [net.add_host() for _ in range(600)]
        assert len(set(hosts)) == 600
        assert hosts[0] == "11.0.0.1"
        assert not any(h.endswith((".0", ".255")) for h in hosts)
        assert net.add_host("192.0.2.7") == "192.0.2.7"
        with pytest.raises(AddressUnavailableError):
            net.add_host("192.0.2.7")
        with pytest.raises(AddressUnavailableError):
            net.add_host("not-an-ip")
        assert net.hosts[:2] == hosts[:2]


@virtual_time
async def test_port_zero_allocates_and_explicit_ports_conflict() -> None:
    async with VirtualNetwork() as net:
        host = net.add_host()
        a = await net.open(host, 0, Inbox())
        b = await net.open(host, 0, Inbox())
        assert a.local_address == (host, EPHEMERAL_PORTS.start)
        assert b.local_address == (host, EPHEMERAL_PORTS.start + 1)
        c = await net.open(host, 5000, Inbox())
        assert c.local_address == (host, 5000)
        with pytest.raises(AddressInUseError):
            await net.open(host, 5000, Inbox())
        with pytest.raises(AddressInUseError):
            await net.open(host, EPHEMERAL_PORTS.start, Inbox())
        c.close()
        assert (await net.open(host, 5000, Inbox())).local_address == (host, 5000)
        assert sorted(net.bound(host)) == [
            (host, 5000),
            (host, EPHEMERAL_PORTS.start),
            (host, EPHEMERAL_PORTS.start + 1),
        ]
        # The same port on another host is free.
        other = net.add_host()
        assert (await net.open(other, 5000, Inbox())).local_address == (other, 5000)


@virtual_time
async def test_open_rejects_unknown_hosts_and_bad_ports() -> None:
    async with VirtualNetwork() as net:
        host = net.add_host()
        with pytest.raises(AddressUnavailableError):
            await net.open("11.9.9.9", 0, Inbox())
        with pytest.raises(AddressUnavailableError):
            await net.open("0.0.0.0", 0, Inbox())
        for port in (-1, 65536):
            with pytest.raises(InvalidArgumentError):
                await net.open(host, port, Inbox())
        with pytest.raises(PeerswarmError):  # the one error family
            await net.open("nowhere", 0, Inbox())


@virtual_time
async def test_the_ephemeral_range_runs_out_and_wraps() -> None:
    async with VirtualNetwork() as net:
        host = net.add_host()
        transports = [await net.open(host, 0, Inbox()) for _ in EPHEMERAL_PORTS]
        with pytest.raises(AddressInUseError):
            await net.open(host, 0, Inbox())
        transports[10].close()
        again = await net.open(host, 0, Inbox())
        assert again.local_address == (host, EPHEMERAL_PORTS.start + 10)


# -- delivery and latency ------------------------------------------------------------


@virtual_time
async def test_echo_round_trip_is_twice_the_latency() -> None:
    async with VirtualNetwork(latency=0.025) as net:
        server = await echo_server(net, net.add_host())
        inbox = Inbox()
        client = await net.open(net.add_host(), 0, inbox)
        for n in range(5):
            assert await ping(client, inbox, server.local_address, n) == pytest.approx(0.05)
        assert net.stats.sent == net.stats.delivered == 10
        assert net.stats.bytes_sent == net.stats.bytes_delivered == 2 * 5 * len(b"ping 0")
        assert client.sent == client.received == 5
        assert net.stats.dropped == 0


@virtual_time
async def test_per_link_and_functional_latency() -> None:
    def by_distance(a: str, b: str) -> float:
        return abs(int(a.split(".")[-1]) - int(b.split(".")[-1])) / 1000

    async with VirtualNetwork(latency=by_distance) as net:
        server = await echo_server(net, net.add_host())  # 11.0.0.1
        near_inbox, far_inbox = Inbox(), Inbox()
        near = await net.open(net.add_host(), 0, near_inbox)  # .2
        far = await net.open(net.add_host("11.0.0.201"), 0, far_inbox)
        assert await ping(near, near_inbox, server.local_address, 0) == pytest.approx(0.002)
        assert await ping(far, far_inbox, server.local_address, 0) == pytest.approx(0.4)
        net.set_link(far.local_address[0], server.local_address[0], latency=1.5)
        assert await ping(far, far_inbox, server.local_address, 1) == pytest.approx(3.0)
        net.set_link(far.local_address[0], server.local_address[0])  # back to the default
        assert await ping(far, far_inbox, server.local_address, 2) == pytest.approx(0.4)


@virtual_time
async def test_jitter_bounds_delay_and_reorders() -> None:
    async with VirtualNetwork(latency=0.01, jitter=0.02, seed=3) as net:
        inbox = Inbox()
        dst = await net.open(net.add_host(), 0, inbox)
        src = await net.open(net.add_host(), 0, Inbox())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(200):
            src.sendto(i.to_bytes(2, "big"), dst.local_address)
        await asyncio.sleep(1)
        order = [int.from_bytes(d, "big") for d, _, _ in inbox.got]
        delays = [at - start for _, _, at in inbox.got]
        assert sorted(order) == list(range(200))
        assert order != list(range(200))  # UDP may reorder
        assert min(delays) >= 0.01 and max(delays) < 0.03


@virtual_time
async def test_a_host_can_send_to_itself() -> None:
    async with VirtualNetwork() as net:
        host = net.add_host()
        inbox = Inbox()
        a = await net.open(host, 0, inbox)
        b = await net.open(host, 0, Inbox())
        b.sendto(b"self", a.local_address)
        assert (await inbox.next())[:2] == (b"self", b.local_address)


# -- loss -----------------------------------------------------------------------------


async def _lost_of(seed: int, n: int, loss: float) -> int:
    async with VirtualNetwork(loss=loss, seed=seed) as net:
        dst = await net.open(net.add_host(), 0, Inbox())
        src = await net.open(net.add_host(), 0, Inbox())
        for _ in range(n):
            src.sendto(b"x", dst.local_address)
        await asyncio.sleep(1)
        assert net.stats.lost + net.stats.delivered == n
        assert dst.received == net.stats.delivered
        return net.stats.lost


@virtual_time
async def test_loss_rate_matches_the_probability_and_the_seed_repeats() -> None:
    n, p = 10_000, 0.1
    sigma = (n * p * (1 - p)) ** 0.5  # 30
    counts = [await _lost_of(seed, n, p) for seed in range(5)]
    assert all(abs(c - n * p) < 4 * sigma for c in counts), counts
    assert abs(statistics.mean(counts) - n * p) < 4 * sigma / len(counts) ** 0.5
    assert await _lost_of(2, n, p) == counts[2]  # same seed, same losses
    assert len(set(counts)) > 1
    assert await _lost_of(0, 1000, 0.0) == 0
    assert await _lost_of(0, 1000, 1.0) == 1000


@virtual_time
async def test_per_link_loss_overrides_the_default() -> None:
    async with VirtualNetwork(loss=0.0) as net:
        inbox = Inbox()
        dst = await net.open(net.add_host(), 0, inbox)
        lossy = await net.open(net.add_host(), 0, Inbox())
        clean = await net.open(net.add_host(), 0, Inbox())
        net.set_link(lossy.local_address[0], dst.local_address[0], loss=1.0)
        lossy.sendto(b"lost", dst.local_address)
        clean.sendto(b"kept", dst.local_address)
        assert (await inbox.next())[0] == b"kept"
        await asyncio.sleep(1)
        assert not inbox.got and net.stats.lost == 1


def test_bad_parameters_are_rejected() -> None:
    for kwargs in ({"loss": 1.5}, {"loss": -0.1}, {"latency": -1.0}, {"jitter": -0.5}):
        with pytest.raises(InvalidArgumentError):
            VirtualNetwork(**kwargs)  # type: ignore[arg-type]


# -- partitions -----------------------------------------------------------------------


@virtual_time
async def test_partition_cuts_between_groups_and_heal_restores() -> None:
    async with VirtualNetwork(latency=0.01) as net:
        a1, a2, b1, c = (net.add_host() for _ in range(4))
        inbox = {h: Inbox() for h in (a1, a2, b1, c)}
        sock = {h: await net.open(h, 9, inbox[h]) for h in (a1, a2, b1, c)}

        def send(src: str, dst: str) -> None:
            sock[src].sendto(f"{src}>{dst}".encode(), (dst, 9))

        net.partition([a1, a2], [b1])
        for src, dst in [(a1, a2), (a1, b1), (b1, a2), (c, a1), (c, b1), (b1, c)]:
            send(src, dst)
        await asyncio.sleep(1)
        delivered = {d.decode() for h in inbox for d, _, _ in inbox[h].got}
        assert delivered == {f"{a1}>{a2}", f"{c}>{a1}", f"{c}>{b1}", f"{b1}>{c}"}
        assert net.stats.partitioned == 2

        net.heal()
        for h in inbox:
            inbox[h].got.clear()
        send(a1, b1)
        send(b1, a2)
        await asyncio.sleep(1)
        assert [d for d, _, _ in inbox[b1].got] == [f"{a1}>{b1}".encode()]
        assert [d for d, _, _ in inbox[a2].got] == [f"{b1}>{a2}".encode()]


@virtual_time
async def test_packets_in_flight_are_cut_by_a_new_partition() -> None:
    async with VirtualNetwork(latency=0.5) as net:
        inbox = Inbox()
        a = await net.open(net.add_host(), 0, Inbox())
        b = await net.open(net.add_host(), 0, inbox)
        a.sendto(b"in flight", b.local_address)
        await asyncio.sleep(0.1)
        net.partition([a.local_address[0]], [b.local_address[0]])
        await asyncio.sleep(1)
        assert not inbox.got and net.stats.partitioned == 1


# -- closing --------------------------------------------------------------------------


@virtual_time
async def test_closed_transports_send_nothing_and_receive_nothing() -> None:
    async with VirtualNetwork(latency=0.1) as net:
        inbox = Inbox()
        host = net.add_host()
        a = await net.open(net.add_host(), 0, Inbox())
        b = await net.open(host, 4000, inbox)
        a.sendto(b"to a closed port", b.local_address)
        b.close()
        b.close()  # idempotent
        assert b.closed
        await asyncio.sleep(1)
        assert not inbox.got and net.stats.unreachable == 1
        # A new socket on the same port does not receive what was sent to the old one.
        a.sendto(b"late", (host, 4000))
        c_inbox = Inbox()
        await net.open(host, 4000, c_inbox)
        assert (await c_inbox.next())[0] == b"late"
        a.close()
        a.sendto(b"after close", (host, 4000))
        assert net.stats.sent == 2  # sendto after close is a silent no-op


@virtual_time
async def test_closing_the_network_closes_everything() -> None:
    net = VirtualNetwork(latency=0.1)
    inbox = Inbox()
    a = await net.open(net.add_host(), 0, Inbox())
    b = await net.open(net.add_host(), 0, inbox)
    a.sendto(b"x", b.local_address)
    await net.close()
    assert a.closed and b.closed and net.closed
    await asyncio.sleep(1)
    assert not inbox.got
    with pytest.raises(ClosedError):
        await net.open(net.hosts[0], 0, Inbox())
    with pytest.raises(ClosedError):
        net.add_host()


@virtual_time
async def test_remove_host_unbinds_it_and_makes_it_unreachable() -> None:
    async with VirtualNetwork() as net:
        src = await net.open(net.add_host(), 0, Inbox())
        host = net.add_host()
        t = await net.open(host, 0, Inbox())
        net.remove_host(host)
        assert t.closed and host not in net.hosts
        src.sendto(b"x", t.local_address)
        await asyncio.sleep(1)
        assert net.stats.unreachable == 1
        with pytest.raises(AddressUnavailableError):
            net.remove_host(host)


@virtual_time
async def test_oversize_unknown_and_unbound_destinations_are_dropped() -> None:
    async with VirtualNetwork() as net:
        inbox = Inbox()
        dst = await net.open(net.add_host(), 0, inbox)
        src = await net.open(net.add_host(), 0, Inbox())
        src.sendto(b"x" * (MAX_DATAGRAM + 1), dst.local_address)
        src.sendto(b"x" * MAX_DATAGRAM, dst.local_address)
        src.sendto(b"x", ("11.200.0.1", 1))
        src.sendto(b"x", (dst.local_address[0], 1))
        src.sendto(b"x", ("127.0.0.1", dst.local_address[1]))
        await asyncio.sleep(1)
        assert len(inbox.got) == 1
        s = dataclasses.replace(net.stats)
        assert (s.oversize, s.unreachable, s.delivered, s.dropped) == (1, 3, 1, 4)


@virtual_time
async def test_a_raising_receiver_is_counted_and_reported() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def broken(data: bytes, addr: Address) -> None:
        raise RuntimeError("bug")

    async with VirtualNetwork() as net:
        dst = await net.open(net.add_host(), 0, broken)
        src = await net.open(net.add_host(), 0, Inbox())
        src.sendto(b"x", dst.local_address)
        await asyncio.sleep(1)
        assert net.stats.receiver_errors == 1
        assert isinstance(reported[0]["exception"], RuntimeError)


# -- the middlebox hook ---------------------------------------------------------------


class ToyNat:
    """Endpoint-independent mapping, address-and-port-dependent filtering; no hairpin.

    Just enough NAT to prove the hook: real NAT boxes belong to the NAT layer.
    """

    def __init__(self, public_ip: str, lifetime: float = 30.0) -> None:
        self.public_ip = public_ip
        self.lifetime = lifetime
        self.out: dict[Address, int] = {}
        self.back: dict[int, Address] = {}
        self.allowed: dict[tuple[int, Address], float] = {}
        self.next_port = 20000

    def outbound(self, packet: Packet, now: float) -> Packet | None:
        port = self.out.get(packet.src)
        if port is None:
            port = self.out[packet.src] = self.next_port
            self.back[port] = packet.src
            self.next_port += 1
        self.allowed[(port, packet.dst)] = now + self.lifetime
        return packet._replace(src=(self.public_ip, port))

    def inbound(self, packet: Packet, now: float) -> Packet | None:
        port = packet.dst[1]
        if self.allowed.get((port, packet.src), -1.0) < now:
            return None  # unsolicited, or the mapping expired
        return packet._replace(dst=self.back[port])


@virtual_time
async def test_a_middlebox_rewrites_and_filters() -> None:
    async with VirtualNetwork(latency=0.01) as net:
        nat = ToyNat(net.new_address())
        public_ip = net.add_middlebox(nat, nat.public_ip)
        inside_host = net.add_host(behind=public_ip)
        assert inside_host.startswith("10.")

        server = await echo_server(net, net.add_host())
        inbox = Inbox()
        inside = await net.open(inside_host, 0, inbox)

        # Outbound is mapped; the reply comes back through the mapping.
        inside.sendto(b"hello", server.local_address)
        data, src, _ = await inbox.next()
        assert (data, src) == (b"hello", server.local_address)
        mapped = (public_ip, 20000)
        assert nat.back[20000] == inside.local_address

        # Unsolicited traffic to the mapping is filtered; so is the private address.
        stranger_inbox = Inbox()
        stranger = await net.open(net.add_host(), 0, stranger_inbox)
        stranger.sendto(b"unsolicited", mapped)
        stranger.sendto(b"direct", inside.local_address)
        await asyncio.sleep(1)
        assert not inbox.got
        assert net.stats.filtered == 1 and net.stats.unreachable == 1

        # A punch: once inside has sent to the stranger, the stranger gets through.
        inside.sendto(b"punch", stranger.local_address)
        assert (await stranger_inbox.next())[:2] == (b"punch", mapped)
        stranger.sendto(b"welcome", mapped)
        assert (await inbox.next())[:2] == (b"welcome", stranger.local_address)

        # Box timers see virtual time: after the lifetime the hole closes.
        await asyncio.sleep(31)
        stranger.sendto(b"too late", mapped)
        await asyncio.sleep(1)
        assert not inbox.got and net.stats.filtered == 2


@virtual_time
async def test_hosts_behind_one_box_talk_directly_and_hairpin_is_the_boxes_call() -> None:
    async with VirtualNetwork() as net:
        nat = ToyNat(net.new_address())
        public_ip = net.add_middlebox(nat, nat.public_ip)
        inbox_a, inbox_b = Inbox(), Inbox()
        a = await net.open(net.add_host(behind=public_ip), 0, inbox_a)
        b = await net.open(net.add_host(behind=public_ip), 0, inbox_b)
        a.sendto(b"lan", b.local_address)
        assert (await inbox_b.next())[:2] == (b"lan", a.local_address)
        assert not nat.out  # LAN traffic never crossed the box

        # To the box's public address: outbound then inbound through the same box.
        b.sendto(b"hi", ("11.0.0.99", 1))  # give b a mapping (to nowhere)
        a.sendto(b"hairpin", (public_ip, nat.out[b.local_address]))
        await asyncio.sleep(1)
        assert not inbox_b.got and net.stats.filtered == 1  # ToyNat filters it


@virtual_time
async def test_nested_middleboxes_carrier_grade_nat() -> None:
    async with VirtualNetwork() as net:
        cgnat = ToyNat(net.new_address())
        cgnat_ip = net.add_middlebox(cgnat, cgnat.public_ip)
        home = ToyNat(net.new_address(private=True))
        home_ip = net.add_middlebox(home, home.public_ip, behind=cgnat_ip)
        inbox = Inbox()
        inside = await net.open(net.add_host(behind=home_ip), 0, inbox)
        server = await echo_server(net, net.add_host())
        inside.sendto(b"deep", server.local_address)
        assert (await inbox.next())[:2] == (b"deep", server.local_address)
        assert list(home.out) == [inside.local_address]
        assert list(cgnat.out) == [(home_ip, 20000)]


@virtual_time
async def test_partitioning_a_box_cuts_the_hosts_behind_it() -> None:
    async with VirtualNetwork() as net:
        nat = ToyNat(net.new_address())
        public_ip = net.add_middlebox(nat, nat.public_ip)
        inbox = Inbox()
        inside = await net.open(net.add_host(behind=public_ip), 0, inbox)
        server = await echo_server(net, net.add_host())
        net.partition([public_ip], [server.local_address[0]])
        inside.sendto(b"x", server.local_address)
        await asyncio.sleep(1)
        assert net.stats.partitioned == 1
        net.heal()
        inside.sendto(b"y", server.local_address)
        assert (await inbox.next())[0] == b"y"
