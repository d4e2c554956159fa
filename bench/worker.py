"""``python -m bench.worker WORKLOAD PARAMS_JSON``: run one workload once, print one JSON line.

The harness starts one worker per run so that each side's peak RSS is its own.
When our code for a workload has not landed yet, the worker prints
``{"unavailable": "..."}`` instead of failing, so the reference side still runs.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import traceback
from typing import Any

WORKLOADS = {
    "core": "bench.workloads.core",
    "bee": "bench.workloads.bee",
    "dht": "bench.workloads.lookup",
    "dht-sim": "bench.workloads.dht_sim",
    "dht-kademlia": "bench.workloads.dht_kademlia",
    "connect": "bench.workloads.connect",
    "connect-sim": "bench.workloads.connect_sim",
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in WORKLOADS:
        names = "|".join(WORKLOADS)
        print(f"usage: python -m bench.worker {{{names}}} PARAMS_JSON", file=sys.stderr)
        return 2
    params: dict[str, Any] = json.loads(argv[1])
    module = importlib.import_module(WORKLOADS[argv[0]])
    try:
        result = module.run(params)  # an async workload, or a sync one with its own loop
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except ImportError as exc:
        _emit({"unavailable": f"not available yet: {type(exc).__name__}: {exc}"})
        return 0
    except Exception as exc:
        traceback.print_exc()
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _emit(result)
    return 0


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
