"""Shared fixtures: real LMDB in a temp dir, real UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dht import event_loop

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def hypercore_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "hypercore-v10.json").read_text())
    return data


LOOP_MODULES = {
    "test_cli",
    "test_connection_close",
    "test_connection_streams",
    "test_dht_node",
    "test_dht_rpc",
    "test_dht_security",
    "test_quic_endpoint",
    "test_swarm",
}
"""Tests of the layers that drive sockets: they run on both loops our users run on,
asyncio's own and uvloop (when installed; see ``dht.event_loop``)."""


BOTH_LOOPS = {name: event_loop.loop_factory(name) for name in event_loop.available()}
ASYNCIO_LOOP = {"asyncio": BOTH_LOOPS["asyncio"]}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    module = getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2]
    return BOTH_LOOPS if module in LOOP_MODULES else ASYNCIO_LOOP
