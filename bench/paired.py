"""``python -m bench.paired dht|connect|key|join``: both sides warm, taking turns.

``python -m bench`` runs each side's trials in a process of its own, one run after
the other. On a host whose speed drifts (this one's swings 1.5x from one minute to
the next, on both sides alike), a run's median says as much about when it ran as
about the code. Here one process per side stays up with its network built and warm,
and the two take turns: a chunk of trials on one side, then the same on the other,
the order swapped every round. Each of our chunks is set against the reference's
chunk of the same round, measured seconds apart.

The trials are the suites' ones, on 127.0.0.1 only: lookup to completion (dht), lookup
result -> open connection (connect), connect by key (key: its own lookup included)
and join -> connection (join: a fresh client swarm joins the topic and takes its
first connection).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import reference
from bench.stats import median
from bench.suites import CONNECT_WARMUP, LOOKUP_WARMUP

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"dht": [10, 50, 100], "connect": [10, 50], "key": [10, 50], "join": [10, 50]}
WARMUP = {"dht": LOOKUP_WARMUP} | dict.fromkeys(("connect", "key", "join"), CONNECT_WARMUP)
TRIAL = {
    "dht": "lookup to completion",
    "connect": "lookup result -> open conn",
    "key": "connect by key",
    "join": "join -> connection",
}


@dataclass(frozen=True)
class Paired:
    """Pooled medians (ms) of every chunk, and in how many rounds our chunk's median
    was at most the reference's."""

    ours_p50: float
    theirs_p50: float
    wins: int
    rounds: int

    @property
    def ahead(self) -> float:
        """Theirs over ours: above 1 we are faster."""
        return self.theirs_p50 / self.ours_p50


def summarize(ours: list[list[float]], theirs: list[list[float]]) -> Paired:
    """Set round i of ours against round i of theirs."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError("one chunk per side per round, at least one round")
    wins = sum(median(a) <= median(b) for a, b in zip(ours, theirs, strict=True))
    return Paired(
        median([t for chunk in ours for t in chunk]),
        median([t for chunk in theirs for t in chunk]),
        wins,
        len(ours),
    )


class _Worker:
    """One side's process: built and warmed up once, then asked for chunks."""

    def __init__(self, argv: list[str], cwd: Path, timeout: float, err: IO[bytes]) -> None:
        self._timeout = timeout
        self._err = err
        self._proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err
        )
        if self._line() != "ready":
            raise RuntimeError(f"{argv[0]} did not get ready")

    def chunk(self, count: int) -> list[float]:
        self._send(count)
        times = json.loads(self._line())
        if not isinstance(times, list) or len(times) != count:
            raise RuntimeError(f"expected {count} times, got {times!r}")
        return [float(t) for t in times]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send(0)
                self._proc.wait(timeout=self._timeout)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def _send(self, count: int) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{count}\n".encode())
        self._proc.stdin.flush()

    def _line(self) -> str:
        out = self._proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], self._timeout)
        line = out.readline().decode().strip() if ready else ""
        if not line:
            self._proc.kill()
            self._proc.wait()
            self._err.seek(0)
            tail = self._err.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError("a worker stopped answering:\n" + "\n".join(tail))
        return line


def run(node: str, kind: str, size: int, args: argparse.Namespace) -> Paired:
    params: dict[str, Any] = {"kind": kind, "size": size, "warmup": WARMUP[kind]}
    ours = [sys.executable, "-m", "bench.paired_worker", json.dumps(params | {"loop": args.loop})]
    theirs = [node, str(reference.script("paired.js")), json.dumps(params)]
    with contextlib.ExitStack() as stack:
        sides = []
        for argv, cwd in ((ours, ROOT), (theirs, reference.REFERENCE_DIR)):
            err = stack.enter_context(tempfile.TemporaryFile())
            sides.append(_Worker(argv, cwd, args.timeout, err))
            stack.callback(sides[-1].close)
        chunks: list[list[list[float]]] = [[], []]
        for i in range(args.rounds):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                chunks[side].append(sides[side].chunk(args.chunk))
        return summarize(chunks[0], chunks[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__)
    parser.add_argument("suite", choices=list(SIZES))
    parser.add_argument("--sizes", type=int, nargs="+", help="network sizes (default: the suite's)")
    parser.add_argument("--rounds", type=int, default=20, help="turns per side (default 20)")
    parser.add_argument("--chunk", type=int, default=10, help="trials per turn (default 10)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], help="our side's event loop")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a worker may be silent")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.chunk < 1:
        parser.error("--rounds and --chunk must be >= 1")
    node = reference.prepare(print)
    if node is None:
        return 1
    print(f"{args.suite}: {TRIAL[args.suite]} p50, {args.rounds} rounds of {args.chunk} trials")
    print(f"{'nodes':>5}  {'ours ms':>8}  {'reference ms':>12}  {'ahead':>6}  rounds ahead")
    for size in args.sizes or SIZES[args.suite]:
        result = run(node, args.suite, size, args)
        print(
            f"{size:>5}  {result.ours_p50:>8.3f}  {result.theirs_p50:>12.3f}  "
            f"{result.ahead:>5.2f}x  {result.wins}/{result.rounds}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
