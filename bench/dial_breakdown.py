"""How much of a loopback dial is aioquic (``python -m bench.breakdown dial``).

The connect suite's "lookup result -> open connection": a fresh client swarm dials
a listening one through the DHT node that holds its announcement, all in one
process, as hyperswarm's side runs. This tool meters every call into aioquic's
``QuicConnection`` (the TLS 1.3 handshake, packet protection, frames; both ends,
with our subclass's hooks that run inside them) while a dial runs, and reports it
against the dial's total. What is left is ours: the relayed handshake through the DHT, the
client's proof and the admission, sockets and the event loop.

Metered and plain dials take turns, so the plain ones give the total the metering
did not inflate. The metering wraps ``QuicConnection``'s methods for the run and
puts them back after; every datagram goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.stats import median

METERED = (
    "__init__",
    "connect",
    "receive_datagram",
    "datagrams_to_send",
    "handle_timer",
    "send_stream_data",
    "next_event",
)
"""The ``QuicConnection`` entry points our driver calls (the rest runs inside them)."""
WARMUP = 30


@dataclass
class DialBreakdown:
    """Medians in milliseconds."""

    size: int
    dials: int
    plain: float
    metered: float
    aioquic: float

    def render(self) -> str:
        share = 100 * self.aioquic / self.metered
        return "\n".join(
            [
                f"lookup result -> open connection on a {self.size}-node loopback testnet, "
                f"medians of {self.dials} plain and {self.dials} metered dials, taken in turns",
                f"  dial, plain                           {self.plain:7.3f} ms",
                f"  dial, metered                         {self.metered:7.3f} ms",
                f"    in aioquic (both ends)              {self.aioquic:7.3f} ms  {share:3.0f}%",
                f"    the rest (ours, sockets, the loop)  "
                f"{self.metered - self.aioquic:7.3f} ms  {100 - share:3.0f}%",
            ]
        )


class _Meter:
    """Nanoseconds spent in the outermost metered call, while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.spent = 0
        self._depth = 0

    def wrap(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns

        def metered(*args: Any, **kwargs: Any) -> Any:
            if not self.on or self._depth:
                return inner(*args, **kwargs)
            self._depth += 1
            start = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent += clock() - start
                self._depth -= 1

        return metered


@contextlib.contextmanager
def _metering(meter: _Meter) -> Iterator[None]:
    from aioquic.quic.connection import QuicConnection

    saved = {name: QuicConnection.__dict__[name] for name in METERED}
    try:
        for name, inner in saved.items():
            setattr(QuicConnection, name, meter.wrap(inner))
        yield
    finally:
        for name, inner in saved.items():
            setattr(QuicConnection, name, inner)


async def dial_breakdown(size: int = 10, dials: int = 100, warmup: int = WARMUP) -> DialBreakdown:
    """Time ``dials`` plain and as many metered dials (after ``warmup`` untimed ones)."""
    from bench.workloads.connect import HOST, _client, server_record
    from dht.testnet import testnet
    from swarm import Swarm

    if size < 1 or dials < 1 or warmup < 0:
        raise ValueError("size and dials must be at least 1, warmup at least 0")
    meter = _Meter()
    plain: list[float] = []
    metered: list[float] = []
    inside: list[float] = []
    async with testnet(size=size) as net:
        bootstrap = list(net.bootstrap)
        if any(host != "127.0.0.1" for host, _ in bootstrap):
            raise RuntimeError("refusing a non-loopback bootstrap")
        topic = os.urandom(32)
        async with Swarm(bootstrap=bootstrap, host=HOST) as server:
            await server.listen()
            await server.join(topic, server=True, client=False).flushed()
            with _metering(meter):
                for i in range(warmup + 2 * dials):
                    async with _client(bootstrap) as client:
                        found = await server_record(client, topic, server.public_key)
                        meter.spent, meter.on = 0, i % 2 == 1
                        start = time.perf_counter_ns()
                        await client._dial_once(found.public_key, found)
                        total = (time.perf_counter_ns() - start) / 1e6
                        timing, meter.on = meter.on, False
                    if i < warmup:
                        continue
                    if timing:
                        metered.append(total)
                        inside.append(meter.spent / 1e6)
                    else:
                        plain.append(total)
    return DialBreakdown(size, dials, median(plain), median(metered), median(inside))
