"""Small helpers shared by test modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aioquic._buffer import Buffer
from aioquic.quic.packet import QuicPacketType, pull_quic_header


def packet_types(data: bytes) -> list[QuicPacketType]:
    """The types of the packets coalesced in one datagram, in order."""
    types, start = [], 0
    while start < len(data) and data[start]:  # zeros after the packets: padding
        header = pull_quic_header(Buffer(data=data[start:]), host_cid_length=8)
        types.append(header.packet_type)
        start += header.packet_length  # a short header packet runs to the end
    return types


async def until(condition: Callable[[], object]) -> None:
    """Wait (at most 3 s) for state nothing announces, e.g. bytes buffered in a held stream."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met within 3 s")
