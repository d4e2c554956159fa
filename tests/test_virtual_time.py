"""The virtual-time event loop: idle time is skipped, nothing else changes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from nat.virtual_time import DEFAULT_EPOCH, VirtualTimeLoop, run_virtual, virtual_time


@virtual_time
async def test_an_hour_of_sleep_takes_no_wall_time() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    started = time.perf_counter()
    before = loop.time()
    await asyncio.sleep(3600)
    assert loop.time() - before == pytest.approx(3600)
    assert time.perf_counter() - started < 0.5


@virtual_time
async def test_timers_fire_in_deadline_order_and_fifo_on_ties() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    delays = {"e": 5.0, "a": 0.001, "c": 2.0, "b": 1.0, "d": 2.0, "f": 86_400.0 * 3}

    def fire(name: str) -> None:
        fired.append((name, loop.time()))

    for name, delay in delays.items():
        loop.call_later(delay, fire, name)
    await asyncio.sleep(86_400.0 * 3 + 1)
    assert [n for n, _ in fired] == ["a", "b", "c", "d", "e", "f"]  # c before d: FIFO
    for name, at in fired:
        assert at == pytest.approx(delays[name])


@virtual_time
async def test_concurrent_sleepers_wake_at_their_own_deadlines() -> None:
    loop = asyncio.get_running_loop()
    woke: dict[int, float] = {}

    async def sleeper(i: int) -> None:
        await asyncio.sleep(i * 0.5)
        woke[i] = loop.time()

    await asyncio.gather(*(sleeper(i) for i in reversed(range(50))))
    assert list(woke) == list(range(50))
    assert all(woke[i] == pytest.approx(i * 0.5) for i in range(50))


@virtual_time
async def test_wait_for_and_timeout_follow_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(100), timeout=10)
    assert loop.time() - start == pytest.approx(10)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(30):
            await asyncio.Event().wait()
    assert loop.time() - start == pytest.approx(40)
    assert await asyncio.wait_for(asyncio.sleep(5, result="done"), timeout=6) == "done"
    assert loop.time() - start == pytest.approx(45)


@virtual_time
async def test_wall_time_is_the_epoch_plus_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    assert loop.wall_time() == DEFAULT_EPOCH + loop.time()
    await asyncio.sleep(86_400)
    assert loop.wall_time() == pytest.approx(DEFAULT_EPOCH + 86_400)


def test_run_virtual_returns_the_result_and_raises_the_error() -> None:
    async def answer() -> float:
        await asyncio.sleep(7)
        return asyncio.get_running_loop().time()

    assert run_virtual(answer(), start=100.0) == pytest.approx(107.0)

    async def fail() -> None:
        await asyncio.sleep(1)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        run_virtual(fail())


@virtual_time
async def test_the_decorator_passes_fixtures(request: pytest.FixtureRequest) -> None:
    await asyncio.sleep(1)
    assert request.node.name == "test_the_decorator_passes_fixtures"


@virtual_time
async def test_ready_io_runs_before_time_jumps() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.setblocking(False)
        got: list[float] = []

        def on_readable() -> None:
            a.recv(100)
            got.append(loop.time())

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"ping")  # ready now; a timer is due in 10 s
        await asyncio.sleep(10)
        loop.remove_reader(a.fileno())
        assert got and got[0] < 1.0
    finally:
        a.close()
        b.close()


@virtual_time
async def test_io_awaited_with_nothing_scheduled_blocks_for_real() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        sender = threading.Timer(0.05, lambda: b.send(b"late"))
        sender.start()
        started = time.perf_counter()
        data = await asyncio.wait_for(loop.sock_recv(a, 100), timeout=None)
        sender.join()
        assert data == b"late"
        assert time.perf_counter() - started >= 0.04
    finally:
        a.close()
        b.close()


@virtual_time
async def test_a_thread_is_not_timed_out_by_skipped_time() -> None:
    # 0.1 s of real work under a 30 s (virtual) timeout: skipping ahead would fire the
    # timeout first; the loop must wait for the thread instead.
    loop = asyncio.get_running_loop()
    start = loop.time()

    def work() -> int:
        time.sleep(0.1)
        return 42

    result = await asyncio.wait_for(asyncio.to_thread(work), 30)
    assert result == 42
    assert 0.05 < loop.time() - start < 5
    await asyncio.sleep(100)  # and once the thread is done, time skips again
    assert loop.time() - start > 100


@virtual_time
async def test_call_soon_threadsafe_wakes_an_idle_loop() -> None:
    loop = asyncio.get_running_loop()
    woke = asyncio.Event()
    threading.Timer(0.02, lambda: loop.call_soon_threadsafe(woke.set)).start()
    await asyncio.wait_for(woke.wait(), timeout=None)
    assert woke.is_set()


@virtual_time
async def test_ready_callbacks_do_not_move_the_clock() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    loop.call_later(5, lambda: None)  # a timer is pending, but work is ready first
    for _ in range(100):
        await asyncio.sleep(0)
    fut = loop.create_future()
    loop.call_soon(fut.set_result, None)
    await fut
    assert loop.time() == start
