"""``python -m bench.breakdown lookup|dial [--size 10] [--count N] [--loop uvloop]``:
where our side's time goes in the dht and connect suites' trials, ours only.

``lookup`` splits a loopback lookup into the looker's and the servers' work and the
rest (``bench.lookup_breakdown``); ``dial`` says how much of a dial from a lookup
result runs inside aioquic (``bench.dial_breakdown``). Both measure plain and
instrumented trials in turns, on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

COUNTS = {"lookup": 300, "dial": 100}
"""Trials of each kind (plain and instrumented) by default."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.breakdown", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("kind", choices=sorted(COUNTS))
    parser.add_argument("--size", type=int, default=10, help="testnet nodes (default 10)")
    parser.add_argument(
        "--count", type=int, help="trials of each kind (default: lookup 300, dial 100)"
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], help="the event loop")
    args = parser.parse_args(argv)
    from bench.dial_breakdown import DialBreakdown, dial_breakdown
    from bench.lookup_breakdown import Breakdown, breakdown
    from dht import event_loop

    count = args.count or COUNTS[args.kind]
    result: Breakdown | DialBreakdown
    if args.kind == "lookup":
        result = event_loop.run(breakdown(args.size, count), args.loop)
    else:
        result = event_loop.run(dial_breakdown(args.size, count), args.loop)
    print(result.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
