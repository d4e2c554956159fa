"""Where a loopback lookup's time goes (``python -m bench.breakdown lookup``).

The dht suite's networks run every node, the announcer and the looker in one
process on one event loop, as hyperdht's testnet does. A lookup's latency is then
the CPU of every node it touches, one after the other, and no single one of them
is the whole story. This tool splits it into:

- the looker starting the query: its requests built and sent (the sends included);
- the looker handling the replies: decoding, RPC and query bookkeeping, the
  Ed25519 check of each new record, and any requests the replies lead to;
- the servers answering: decoding, tokens, routing table, records, the reply sent;
- the rest: socket reads, the event loop, and the lookup's async iterator.

Instrumented and plain lookups alternate, so the plain ones give the total the
instrumentation did not inflate. In the same layout it also measures two floors:
the same number of datagrams, of the sizes the lookup sent, through our transport
with nothing done with them, and one record's signature check. Every datagram goes
to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import median
from bench.workloads.lookup import check_loopback

PARTS = ("start", "replies", "servers")
LABELS = {
    "start": "looker: start (requests built and sent)",
    "replies": "looker: replies handled",
    "servers": "servers: requests answered",
}
WARMUP = 100
"""Untimed lookups first, as in the dht suite (caches and allocators warm up)."""


@dataclass
class Breakdown:
    """Medians in milliseconds (``parts`` from the instrumented lookups)."""

    size: int
    lookups: int
    plain: float
    timed: float
    parts: dict[str, float]
    rest: float
    datagrams: int
    floor: float
    verify: float

    def render(self) -> str:
        rows = [
            f"{self.size}-node loopback lookup, medians of {self.lookups} plain and "
            f"{self.lookups} instrumented lookups, taken in turns",
            f"  lookup to completion, plain          {self.plain:7.3f} ms",
            f"  lookup to completion, instrumented   {self.timed:7.3f} ms",
        ]
        for part in PARTS:
            share = 100 * self.parts[part] / self.timed
            rows.append(f"    {LABELS[part]:<42} {self.parts[part]:7.3f} ms  {share:3.0f}%")
        share = 100 * self.rest / self.timed
        rows.append(
            f"    {'rest: socket reads and the event loop':<42} {self.rest:7.3f} ms  {share:3.0f}%"
        )
        rows.append(
            f"  floor: the same {self.datagrams} datagrams through our transport, "
            f"nothing done with them: {self.floor:.3f} ms"
        )
        rows.append(f"  one record's signature check: {self.verify:.3f} ms")
        return "\n".join(rows)


@dataclass
class _Meter:
    """Time spent in wrapped calls while ``on``, per part, and the sizes they saw."""

    on: bool = False
    spent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    requests: list[int] = field(default_factory=list)
    replies: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0)

    def wrap(self, obj: object, name: str, part: str, sizes: list[int] | None = None) -> None:
        """Meter ``obj.name`` (on this instance only; the class is left alone)."""
        inner: Callable[..., Any] = getattr(obj, name)
        clock = time.perf_counter_ns

        def metered(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return inner(*args, **kwargs)
            if sizes is not None:
                sizes.append(len(args[0]))
            start = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent[part] += clock() - start

        setattr(obj, name, metered)


@dataclass
class _Samples:
    """Per lookup, in milliseconds."""

    meter: _Meter = field(default_factory=_Meter)
    plain: list[float] = field(default_factory=list)
    timed: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in PARTS})
    rests: list[float] = field(default_factory=list)
    verify: float = 0.0


async def _lookups(size: int, lookups: int, warmup: int) -> _Samples:
    from dht import DHTNode
    from dht.testnet import testnet
    from storage import KeyPair

    samples = _Samples()
    meter = samples.meter
    async with testnet(size=size) as net:
        check_loopback(net.bootstrap)
        async with (
            DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as announcer,
            DHTNode(bootstrap=net.bootstrap, host="127.0.0.1", ephemeral=True) as looker,
        ):
            await announcer.ready()
            await looker.ready()
            for node in net.nodes:
                meter.wrap(node, "_on_dht", "servers", meter.requests)
            meter.wrap(looker, "_walk", "start")
            meter.wrap(looker, "_on_dht", "replies", meter.replies)
            for i in range(warmup + 2 * lookups):
                topic, key_pair = os.urandom(32), KeyPair.generate()
                record = await announcer.announce(topic, key_pair)
                meter.on = i % 2 == 1
                meter.reset()
                start = time.perf_counter_ns()
                async for _ in looker.lookup(topic):
                    pass
                total = (time.perf_counter_ns() - start) / 1e6
                timing, meter.on = meter.on, False
                if i < warmup:
                    meter.requests.clear()
                    meter.replies.clear()
                    continue
                if not timing:
                    samples.plain.append(total)
                    continue
                samples.timed.append(total)
                for part in PARTS:
                    samples.parts[part].append(meter.spent[part] / 1e6)
                samples.rests.append(total - sum(meter.spent.values()) / 1e6)
            samples.verify = _verify_ms(record, topic)
    return samples


def _verify_ms(record: Any, topic: bytes, repeats: int = 200) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        record.verify(topic)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return median(times)


async def _floor(servers: int, request: int, reply: int, rounds: int, warmup: int) -> float:
    """Median ms for ``servers`` request/reply pairs through our UDP transport, one
    client and ``servers`` endpoints in this process, with nothing done with them."""
    from dht.transport import Address, DatagramTransport, UDPNetwork

    network = UDPNetwork()
    endpoints: list[DatagramTransport] = []
    answer = os.urandom(reply)
    loop = asyncio.get_running_loop()
    waiting: asyncio.Future[None] = loop.create_future()
    left = 0

    def echo(index: int) -> Callable[[bytes, Address], None]:
        return lambda data, addr: endpoints[index].sendto(answer, addr)

    def replied(data: bytes, addr: Address) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not waiting.done():
            waiting.set_result(None)

    try:
        for index in range(servers):
            endpoints.append(await network.open("127.0.0.1", 0, echo(index)))
        client = await network.open("127.0.0.1", 0, replied)
        endpoints.append(client)
        targets = [e.local_address for e in endpoints[:servers]]
        payload = os.urandom(request)
        times = []
        for _ in range(warmup + rounds):
            left, waiting = servers, loop.create_future()
            start = time.perf_counter_ns()
            for target in targets:
                client.sendto(payload, target)
            await asyncio.wait_for(waiting, 5)
            times.append((time.perf_counter_ns() - start) / 1e6)
        return median(times[warmup:])
    finally:
        for endpoint in endpoints:
            endpoint.close()


async def breakdown(size: int = 10, lookups: int = 300, warmup: int = WARMUP) -> Breakdown:
    """Measure ``lookups`` plain and as many instrumented lookups on a ``size``-node
    testnet, after ``warmup`` untimed ones."""
    if size < 1 or lookups < 1 or warmup < 0:
        raise ValueError("size and lookups must be at least 1, warmup at least 0")
    samples = await _lookups(size, lookups, warmup)
    meter = samples.meter
    servers = max(1, round(len(meter.replies) / lookups))  # replies per lookup
    floor = await _floor(
        servers,
        round(median(meter.requests)) if meter.requests else 80,
        round(median(meter.replies)) if meter.replies else 300,
        lookups,
        warmup,
    )
    return Breakdown(
        size=size,
        lookups=lookups,
        plain=median(samples.plain),
        timed=median(samples.timed),
        parts={part: median(values) for part, values in samples.parts.items()},
        rest=median(samples.rests),
        datagrams=2 * servers,
        floor=floor,
        verify=samples.verify,
    )
