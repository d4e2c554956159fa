"""SIGKILL a writer mid-stream: what it acknowledged survives, nothing half-written shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from storage import Store
from storage.hashes import signable
from storage.keypair import verify

sys.path.insert(0, str(Path(__file__).parent))
from crash_writer import batch_size, block

WRITER = Path(__file__).parent / "crash_writer.py"
ROOT = Path(__file__).parent.parent


def _run_and_kill(path: Path, kill_after: int, sync: bool) -> list[int]:
    """Start the writer, read ``kill_after`` acknowledged lengths, SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(WRITER), str(path), *(["--sync"] if sync else [])]
    with subprocess.Popen(args, stdout=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        acked: list[int] = []
        try:
            while len(acked) < kill_after:
                line = proc.stdout.readline()
                assert line, "writer exited early"
                acked.append(int(line))
            proc.send_signal(signal.SIGKILL)
            acked += [int(x) for x in proc.stdout.read().split()]  # printed before the kill
        finally:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize(
    ("kill_after", "sync"), [(50, False), (401, False), (997, False), (60, True)]
)
async def test_acknowledged_appends_survive_sigkill(
    tmp_path: Path, kill_after: int, sync: bool
) -> None:
    acked = _run_and_kill(tmp_path, kill_after, sync)
    assert len(acked) >= kill_after
    last = acked[-1]
    after = last + batch_size(len(acked))  # the append that may have committed unprinted
    async with Store(tmp_path) as store:
        core = store.core(name="crash")
        await core.ready()
        assert core.length in (last, after), (core.length, last)
        assert core.fork == 0
        for i in range(core.length):
            assert await core.get(i) == block(i)
        verify(core.key, signable(core.tree_hash(), core.length, 0), core.signature)
        assert core.byte_length == 1024 * core.length
        # The log carries on cleanly from where it stopped.
        length = core.length
        assert await core.append(block(length)) == length + 1
        assert await core.get(length) == block(length)
