"""Thousands of real DHT nodes in one process: the harness behind the scale tests and
``python -m bench dht``.

Every node is an unmodified :class:`dht.DHTNode` on a :class:`VirtualNetwork`, run on
the virtual-time loop so that timeouts, retries and refresh timers cost no wall time.
:class:`Simulation` is the toolkit (start nodes, churn them, announce, look up, cut the
network); :func:`simulate` runs the standard scenario and returns a
:class:`SimulationResult`; :func:`run_simulation` does the same from synchronous code::

    from nat.simulation import run_simulation
    result = run_simulation(n_nodes=10_000, n_announcers=100, n_lookups=1000, loss=0.1)
    print(result.summary())      # or result.as_dict() for JSON

Hops are measured on the wire, not inside the DHT: a tap on the network decodes the
lookup's requests and replies and gives each queried node its depth in the referral
chain (1 for the contacts the lookup started from, d + 1 for a node first named by a
node at depth d). A lookup's hop count is the depth at which the last of its topic's
announcers was first seen (0 when the looking node itself stores the record).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import math
import random
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from dht import DHTNode
from dht.messages import Command, ErrorCode, Request, Response, decode
from dht.node_id import hash32
from dht.records import decode_lookup_reply
from dht.transport import Address
from nat.virtual_network import Latency, NetworkStats, Packet, VirtualNetwork
from nat.virtual_time import VirtualTimeLoop, run_virtual
from storage.errors import DecodeError, PeerswarmError
from storage.keypair import KeyPair
from storage.resource import AsyncResource

__all__ = [
    "LookupOutcome",
    "Simulation",
    "SimulationResult",
    "run_simulation",
    "simulate",
]

T = TypeVar("T")

DEFAULT_LATENCY = 0.02
"""One-way delay of a link (seconds); with the jitter, RTTs of 40–60 ms."""
DEFAULT_JITTER = 0.01
_REQUEST = 0x01
_RESPONSE = 0x02
_MAX_RECORDS_IN_REPLY = 64
"""Decoder cap when reading replies on the wire (above what any node sends)."""


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    """What one lookup found, against what was announced under its topic."""

    topic: bytes
    expected: frozenset[bytes]
    found: frozenset[bytes]
    hops: int | None
    """Referral depth at which the last expected key was seen; ``None`` if one is missing."""
    duration: float
    """Virtual seconds until the lookup finished."""
    found_after: float | None
    """Virtual seconds until every expected key had arrived (what an app waits for)."""

    @property
    def ok(self) -> bool:
        return self.expected <= self.found

    @property
    def found_fraction(self) -> float:
        if not self.expected:
            return 1.0
        return len(self.expected & self.found) / len(self.expected)


@dataclass(slots=True)
class _Trace:
    """The wire view of one lookup in progress."""

    topic: bytes
    depth: dict[Address, int] = field(default_factory=dict)
    requests: dict[int, Address] = field(default_factory=dict)
    seen_at: dict[bytes, int] = field(default_factory=dict)


def _seed_bytes(seed: int, index: int) -> bytes:
    return hashlib.blake2b(f"peerswarm-sim {seed} {index}".encode(), digest_size=32).digest()


class Simulation(AsyncResource):
    """A virtual network of DHT nodes; an async context manager that closes them all.

    ``n_bootstrap`` persistent nodes are started first (each bootstrapping from the
    ones before it); every later node bootstraps from all of them, as real clients use
    a fixed bootstrap list. ``concurrency`` nodes join at a time. ``ephemeral`` is
    passed to every other node: ``False`` (default) makes them all DHT servers from the
    start, as ``dht.testnet`` does; ``None`` lets each promote itself once it has been
    reachable for ``persistent_after`` (let virtual time pass before measuring);
    ``True`` makes them pure clients. Node keys and random generators derive from
    ``seed`` so runs repeat. ``node_options`` go to every :class:`DHTNode` (``k``,
    ``request_timeout``, ``persistent_after``, ...).
    """

    def __init__(
        self,
        *,
        latency: Latency = DEFAULT_LATENCY,
        jitter: float = DEFAULT_JITTER,
        loss: float = 0.0,
        seed: int = 0,
        n_bootstrap: int = 3,
        concurrency: int = 32,
        ephemeral: bool | None = False,
        node_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.ephemeral = ephemeral
        self.net = VirtualNetwork(latency=latency, jitter=jitter, loss=loss, seed=seed)
        self.nodes: list[DHTNode] = []
        self.bootstrap: list[Address] = []
        self.rng = random.Random(seed)
        self.n_bootstrap = max(1, n_bootstrap)
        self.concurrency = max(1, concurrency)
        self._seed = seed
        self._started = 0
        self._options = dict(node_options or {})
        self._traces: dict[Address, list[_Trace]] = {}

    async def close(self) -> None:
        """Close every node, then the network."""
        nodes, self.nodes = self.nodes, []
        await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)
        await self.net.close()

    # -- nodes ----------------------------------------------------------------------

    async def add_node(self, **options: Any) -> DHTNode:
        """Start one node on a new host; it has joined once this returns."""
        loop = asyncio.get_running_loop()
        index = self._started
        self._started += 1
        seed = _seed_bytes(self._seed, index)
        persistent = len(self.bootstrap) < self.n_bootstrap
        node = DHTNode(
            bootstrap=list(self.bootstrap),
            host=self.net.add_host(),
            key_pair=KeyPair.from_seed(seed),
            ephemeral=False if persistent else self.ephemeral,
            network=self.net,
            clock=loop.wall_time if isinstance(loop, VirtualTimeLoop) else time.time,
            rng=random.Random(seed),
            **{**self._options, **options},
        )
        try:
            await node.start()
            await node.ready()
        except BaseException:
            await node.close()
            self.net.remove_host(node.address[0])
            raise
        if persistent:
            self.bootstrap.append(node.address)
        self.nodes.append(node)
        return node

    async def start(self, n_nodes: int) -> None:
        """Grow the network to ``n_nodes`` live nodes."""
        while len(self.bootstrap) < self.n_bootstrap and len(self.nodes) < n_nodes:
            await self.add_node()
        while (missing := n_nodes - len(self.nodes)) > 0:
            batch = min(missing, self.concurrency)
            await asyncio.gather(*(self.add_node() for _ in range(batch)))

    async def remove_node(self, node: DHTNode) -> None:
        """Stop a node abruptly (no goodbye: the others notice by timeouts)."""
        self.nodes.remove(node)
        await node.close()
        self.net.remove_host(node.address[0])

    async def churn(self, fraction: float, *, protect: Collection[DHTNode] = ()) -> int:
        """Replace ``fraction`` of the nodes (never bootstrap or ``protect``-ed ones) by new
        ones; returns how many were replaced."""
        keep = {id(n) for n in protect}
        candidates = [
            n for n in self.nodes if id(n) not in keep and n.address not in self.bootstrap
        ]
        count = min(len(candidates), round(fraction * len(self.nodes)))
        victims = self.rng.sample(candidates, count)
        await asyncio.gather(*(self.remove_node(n) for n in victims))
        await self.start(len(self.nodes) + count)
        return count

    def ephemeral_count(self) -> int:
        """Nodes that have not (yet) claimed a routing-table slot."""
        return sum(1 for n in self.nodes if n.ephemeral)

    # -- topics ---------------------------------------------------------------------

    async def lookup(
        self, node: DHTNode, topic: bytes, expected: Collection[bytes] = ()
    ) -> LookupOutcome:
        """Run ``node.lookup(topic)`` to the end, measuring hops on the wire."""
        loop = asyncio.get_running_loop()
        expected_keys = frozenset(expected)
        trace = _Trace(topic)
        address = node.address
        self._traces.setdefault(address, []).append(trace)
        self.net.tap = self._observe
        started = loop.time()
        found: set[bytes] = set()
        found_after: float | None = 0.0 if not expected_keys else None
        try:
            async for record in node.lookup(topic):
                found.add(record.public_key)
                trace.seen_at.setdefault(record.public_key, 0)  # not seen on the wire: local
                if found_after is None and expected_keys <= found:
                    found_after = loop.time() - started
        finally:
            traces = self._traces[address]
            traces.remove(trace)
            if not traces:
                del self._traces[address]
            if not self._traces:
                self.net.tap = None
        hops: int | None = None
        if expected_keys <= found:
            hops = max((trace.seen_at[k] for k in expected_keys), default=0)
        return LookupOutcome(
            topic, expected_keys, frozenset(found), hops, loop.time() - started, found_after
        )

    # ASK(dht): DHTNode.lookup() reports no hop count, so hops are measured here on the
    # wire by decoding dht.messages. A query trace from DHTNode (e.g. the referrer of each
    # contacted node) would make this exact without decoding every datagram twice.
    def _observe(self, packet: Packet) -> None:
        data = packet.data
        kind = data[0] if data else 0
        if kind == _REQUEST and packet.src in self._traces:
            self._observe_request(packet)
        elif kind == _RESPONSE and packet.dst in self._traces:
            self._observe_response(packet)

    def _observe_request(self, packet: Packet) -> None:
        try:
            msg = decode(packet.data)
        except DecodeError:
            return
        if not isinstance(msg, Request) or msg.command != Command.LOOKUP:
            return
        for trace in self._traces[packet.src]:
            if trace.topic == msg.target:
                trace.requests[msg.tid] = packet.dst
                trace.depth.setdefault(packet.dst, 1)  # not referred first: a starting contact
                return

    def _observe_response(self, packet: Packet) -> None:
        try:
            msg = decode(packet.data)
        except DecodeError:
            return
        if not isinstance(msg, Response):
            return
        for trace in self._traces[packet.dst]:
            if trace.requests.get(msg.tid) != packet.src:
                continue
            depth = trace.depth.get(packet.src, 1)
            for address in msg.nodes:
                trace.depth.setdefault(address, depth + 1)
            if msg.value is not None and msg.error == ErrorCode.OK:
                try:
                    records = decode_lookup_reply(msg.value, _MAX_RECORDS_IN_REPLY)
                except DecodeError:
                    return
                for record in records:
                    seen = trace.seen_at.get(record.public_key)
                    if seen is None or depth < seen:
                        trace.seen_at[record.public_key] = depth
            return


@dataclass(frozen=True)
class SimulationResult:
    """Everything :func:`simulate` measured. Times are seconds; memory is bytes."""

    n_nodes: int
    n_announcers: int
    n_topics: int
    churn: float
    loss: float
    seed: int
    lookups: tuple[LookupOutcome, ...]
    announce_failures: int
    replaced: int
    """Nodes closed and replaced by new ones during the lookup rounds (churn)."""
    ephemeral: int
    """Nodes that had not claimed a routing-table slot after ``settle``."""
    start_wall_time: float
    lookup_wall_time: float
    wall_time: float
    virtual_time: float
    memory_per_node: float
    """Growth of the process's resident memory per node, measured idle after start.
    Exact only in a fresh process: memory an earlier run freed is reused and hides growth."""
    packets: NetworkStats

    @property
    def n_lookups(self) -> int:
        return len(self.lookups)

    @property
    def successes(self) -> int:
        return sum(1 for o in self.lookups if o.ok)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.lookups) if self.lookups else 1.0

    @property
    def found_fraction(self) -> float:
        """Mean share of its topic's announcers a lookup found."""
        if not self.lookups:
            return 1.0
        return statistics.fmean(o.found_fraction for o in self.lookups)

    @property
    def hops(self) -> list[int]:
        return [o.hops for o in self.lookups if o.hops is not None]

    @property
    def median_hops(self) -> float | None:
        return statistics.median(self.hops) if self.hops else None

    @property
    def max_hops(self) -> int | None:
        return max(self.hops) if self.hops else None

    @property
    def median_lookup_time(self) -> float | None:
        times = [o.found_after for o in self.lookups if o.found_after is not None]
        return statistics.median(times) if times else None

    def finish_time(self, p: float) -> float | None:
        """Nearest-rank ``p``-th percentile of how long lookups took to finish: what a
        caller that needs the whole answer waits (each lost packet or dead node on the
        way adds a timeout, where :attr:`median_lookup_time` may not notice)."""
        times = sorted(o.duration for o in self.lookups)
        if not times:
            return None
        return times[max(1, math.ceil(p / 100 * len(times))) - 1]

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON (no per-lookup detail beyond the hop histogram)."""
        histogram: dict[int, int] = {}
        for h in self.hops:
            histogram[h] = histogram.get(h, 0) + 1
        return {
            "n_nodes": self.n_nodes,
            "n_announcers": self.n_announcers,
            "n_topics": self.n_topics,
            "n_lookups": self.n_lookups,
            "churn": self.churn,
            "loss": self.loss,
            "seed": self.seed,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "found_fraction": self.found_fraction,
            "median_hops": self.median_hops,
            "max_hops": self.max_hops,
            "hops_histogram": dict(sorted(histogram.items())),
            "median_lookup_time": self.median_lookup_time,
            "finish_p50": self.finish_time(50),
            "finish_p95": self.finish_time(95),
            "announce_failures": self.announce_failures,
            "replaced": self.replaced,
            "ephemeral": self.ephemeral,
            "start_wall_time": self.start_wall_time,
            "lookup_wall_time": self.lookup_wall_time,
            "wall_time": self.wall_time,
            "virtual_time": self.virtual_time,
            "memory_per_node": self.memory_per_node,
            "packets": asdict(self.packets),
        }

    def summary(self) -> str:
        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        return (
            f"{self.n_nodes} nodes, {self.n_announcers} announcers on {self.n_topics} topics, "
            f"loss {self.loss:.0%}, churn {self.churn:.0%} ({self.replaced} replaced): "
            f"{self.successes}/{self.n_lookups} lookups found every announcer "
            f"({self.success_rate:.2%}, mean found {self.found_fraction:.2%}); "
            f"hops median {fmt(self.median_hops, 'g')} max {fmt(self.max_hops, 'd')}; "
            f"lookup {fmt(self.median_lookup_time, '.3f')} s virtual (median), finished "
            f"p50 {fmt(self.finish_time(50), '.3f')} p95 {fmt(self.finish_time(95), '.3f')} s; "
            f"{self.memory_per_node / 1024:.1f} KiB/node; {self.ephemeral} ephemeral; "
            f"wall {self.wall_time:.1f} s (start {self.start_wall_time:.1f} s, "
            f"lookups {self.lookup_wall_time:.1f} s), virtual {self.virtual_time:.0f} s; "
            f"{self.packets.sent} packets, {self.packets.dropped} dropped"
        )


def resident_memory() -> int:
    """Resident set size of this process in bytes (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T | BaseException]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(j) for j in jobs), return_exceptions=True)


async def simulate(
    n_nodes: int = 1000,
    n_announcers: int = 100,
    n_lookups: int = 1000,
    *,
    churn: float = 0.0,
    loss: float = 0.0,
    latency: Latency = DEFAULT_LATENCY,
    jitter: float = DEFAULT_JITTER,
    seed: int = 0,
    announcers_per_topic: int = 5,
    rounds: int = 4,
    round_interval: float = 60.0,
    settle: float = 60.0,
    concurrency: int = 32,
    ephemeral: bool | None = False,
    node_options: Mapping[str, Any] | None = None,
) -> SimulationResult:
    """Start ``n_nodes``, announce, then look up in ``rounds`` rounds; measure everything.

    Scenario: the nodes join (``concurrency`` at a time) and idle for ``settle``
    virtual seconds (memory is measured then); ``n_announcers`` random nodes announce,
    ``announcers_per_topic`` per topic; ``n_lookups`` lookups of random topics from
    random nodes follow in ``rounds`` rounds, ``round_interval`` apart. With ``churn``
    (a fraction of the network), that share of nodes is replaced in equal parts before
    each round (announcers and bootstrap nodes stay). ``loss`` applies to every packet
    from the start. ``ephemeral`` and ``node_options`` are :class:`Simulation`'s. Run it
    on a :class:`VirtualTimeLoop` (:func:`run_simulation` does); on another loop it
    works, in real time.
    """
    loop = asyncio.get_running_loop()
    wall_started = time.perf_counter()
    virtual_started = loop.time()
    gc.collect()
    memory_before = resident_memory()
    n_topics = max(1, math.ceil(n_announcers / max(1, announcers_per_topic)))
    topics = [hash32(b"topic %d %d" % (seed, i)) for i in range(n_topics)]
    async with Simulation(
        latency=latency,
        jitter=jitter,
        loss=loss,
        seed=seed,
        concurrency=concurrency,
        ephemeral=ephemeral,
        node_options=node_options,
    ) as sim:
        await sim.start(n_nodes)
        start_wall = time.perf_counter() - wall_started
        await asyncio.sleep(settle)
        n_ephemeral = sim.ephemeral_count()
        gc.collect()
        memory_per_node = max(0, resident_memory() - memory_before) / max(1, n_nodes)

        announcers = sim.rng.sample(sim.nodes, min(n_announcers, len(sim.nodes)))
        expected: dict[bytes, set[bytes]] = {t: set() for t in topics}
        jobs: list[Callable[[], Awaitable[object]]] = []
        for i, node in enumerate(announcers):
            topic = topics[i % n_topics]
            expected[topic].add(node.key_pair.public_key)
            jobs.append(functools.partial(node.announce, topic))
        announced = await _bounded(concurrency, jobs)
        announce_failures = sum(1 for r in announced if isinstance(r, BaseException))
        for r in announced:
            if isinstance(r, BaseException) and not isinstance(r, PeerswarmError):
                raise r

        lookup_started = time.perf_counter()
        outcomes: list[LookupOutcome] = []
        replaced = 0
        rounds = max(1, rounds)
        for r in range(rounds):
            if r:
                await asyncio.sleep(round_interval)
            if churn:
                replaced += await sim.churn(churn / rounds, protect=announcers)
            count = n_lookups // rounds + (1 if r < n_lookups % rounds else 0)
            while count > 0:
                lookers = sim.rng.sample(sim.nodes, min(count, len(sim.nodes)))
                count -= len(lookers)
                lookup_jobs: list[Callable[[], Awaitable[LookupOutcome]]] = []
                for node in lookers:
                    topic = sim.rng.choice(topics)
                    lookup_jobs.append(functools.partial(sim.lookup, node, topic, expected[topic]))
                for result in await _bounded(concurrency, lookup_jobs):
                    if isinstance(result, BaseException):
                        raise result
                    outcomes.append(result)
        lookup_wall = time.perf_counter() - lookup_started
        packets = replace(sim.net.stats)
    return SimulationResult(
        n_nodes=n_nodes,
        n_announcers=len(announcers),
        n_topics=n_topics,
        churn=churn,
        loss=loss,
        seed=seed,
        lookups=tuple(outcomes),
        announce_failures=announce_failures,
        replaced=replaced,
        ephemeral=n_ephemeral,
        start_wall_time=start_wall,
        lookup_wall_time=lookup_wall,
        wall_time=time.perf_counter() - wall_started,
        virtual_time=loop.time() - virtual_started,
        memory_per_node=memory_per_node,
        packets=packets,
    )


def run_simulation(**kwargs: Any) -> SimulationResult:
    """:func:`simulate` on a fresh virtual-time loop, from synchronous code."""
    return run_virtual(simulate(**kwargs))
