"""Which loop our programs run on: asyncio's own, or uvloop by name or environment."""

from __future__ import annotations

import asyncio
import time

import pytest

from dht import event_loop
from storage.errors import InvalidArgumentError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_the_loop_it_is_asked_for() -> None:
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")
    if "uvloop" in event_loop.available():
        assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_default_is_asyncio_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")
    monkeypatch.setenv(event_loop.ENV, "uvloop")
    assert event_loop.loop_name() == "uvloop"
    if "uvloop" in event_loop.available():
        assert event_loop.run(_loop_module()).startswith("uvloop")
    assert event_loop.loop_name("asyncio") == "asyncio"  # an explicit choice wins


def test_unknown_loop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown event loop 'trio'"):
        event_loop.loop_name("trio")
    monkeypatch.setenv(event_loop.ENV, "tokio")
    with pytest.raises(InvalidArgumentError, match="one of asyncio, uvloop"):
        event_loop.run(_loop_module())


async def _clock_step() -> tuple[float, float]:
    """How far the precise clock moves over 0.3 ms of work inside one callback (uvloop's
    own ``loop.time()`` mostly does not move at all: a loopback RTT would read 0)."""
    clock = event_loop.precise_clock(asyncio.get_running_loop())
    start = time.perf_counter()
    before = clock()
    while time.perf_counter() - start < 0.0003:
        pass
    return clock() - before, time.perf_counter() - start


@pytest.mark.parametrize("loop", event_loop.available())
def test_precise_clock_sees_sub_millisecond_work(loop: str) -> None:
    moved, took = event_loop.run(_clock_step(), loop)
    assert 0.0002 <= moved <= took + 0.001
