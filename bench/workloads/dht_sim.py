"""Issue #4, virtual networks: success, hops and lookup time at 1,000 / 10,000 nodes
with churn.

The simulation is ``nat.simulation`` (real DHTNodes on the virtual network and a
virtual-time loop); the benchmark only runs its standard scenario and reports it.
"""

from __future__ import annotations

from typing import Any

from bench.workloads.common import MB, Result, progress


def run(p: dict[str, Any]) -> Result:
    """Synchronous: ``run_simulation`` brings its own virtual-time event loop."""
    from nat.simulation import run_simulation  # late: "not available yet" until it lands

    m: dict[str, float] = {}
    info: dict[str, Any] = {}
    for size in sorted(p["virtual_sizes"]):
        result = run_simulation(n_nodes=size, churn=p["churn"], seed=p.get("seed", 0))
        m[f"sim_success_pct@{size}"] = 100 * result.success_rate
        if result.median_hops is not None:
            m[f"sim_hops_median@{size}"] = result.median_hops
        m[f"sim_idle_node_mb@{size}"] = result.memory_per_node / MB
        for q in (50, 95):
            finish = result.finish_time(q)
            if finish is not None:
                m[f"sim_finish_p{q}_s@{size}"] = finish
        info[str(size)] = result.summary()
        progress({"metrics": m, "info": info})
    return {"metrics": m, "info": info}
