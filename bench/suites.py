"""The four suites of issues #2–#5: sizes, sides, figures and targets.

Both sides of a suite get the same parameters (one JSON object), so the
workload is the same by construction, not by two copies of magic numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.metrics import Metric, Target, higher, lower

PEAK_RSS = lower("peak_rss_mb", "peak RSS (whole run)", "MB")
LOOKUP_WARMUP = 100
"""Untimed lookups at each network size before the timed ones (the dht suite), on
every side. V8 optimises hot code as it runs: hyperdht's 10-node lookup p50, taken
over successive batches of 10 in one process, fell from 2.1 ms to 0.7 ms over the
first 100 lookups and stayed there. A DHT node runs for hours, so the figure to beat
is the warm one; with 5 warm-up lookups the reference was measured part-cold."""
CONNECT_WARMUP = 50
"""Untimed trials of each kind at each network size before the timed ones (the
connect suite), on every side: hyperswarm's connect from a lookup result, in batches
of 10, fell from 7.5 ms to about 5 ms over the first 40 to 50."""


@dataclass(frozen=True)
class Side:
    """One program measured in a suite: ours (a Python worker) or a reference."""

    label: str
    role: Literal["ours", "ref"]
    lang: Literal["python", "node"]
    workload: str  # bench.worker workload name, or a script in bench/reference
    extra: dict[str, Any] = field(default_factory=dict)
    max_runs: int | None = None  # for slow, near-deterministic workloads (simulations)
    solo: bool = False  # nothing to compare with: no reference figures on its rows
    timeout: float | None = None  # seconds per process when longer than --timeout


@dataclass(frozen=True)
class Suite:
    """A suite: what to run, with which sizes, and how to read the figures."""

    name: str
    title: str
    params: Callable[[bool], dict[str, Any]]  # quick -> parameters
    sides: tuple[Side, ...]
    metrics: Callable[[dict[str, Any]], list[Metric]]
    targets: Callable[[dict[str, Any]], list[Target]]


def _core_params(quick: bool) -> dict[str, Any]:
    if quick:
        return {"single": 1_000, "batches": 100, "batch_size": 100, "big": 160, "gets": 2_000}
    return {"single": 10_000, "batches": 1_000, "batch_size": 100, "big": 1_600, "gets": 20_000}


def _core_metrics(_: dict[str, Any]) -> list[Metric]:
    return [
        higher("append_1k_single_ops", "append 1 KiB, awaited one by one", "blocks/s"),
        higher("append_1k_single_mbps", "append 1 KiB, awaited one by one", "MB/s"),
        higher("append_1k_batch_ops", "append 1 KiB, batches of 100", "blocks/s"),
        higher("append_1k_batch_mbps", "append 1 KiB, batches of 100", "MB/s"),
        higher("append_64k_ops", "append 64 KiB, one by one", "blocks/s"),
        higher("append_64k_mbps", "append 64 KiB, one by one", "MB/s"),
        higher("get_random_ops", "random get (1 KiB blocks)", "gets/s"),
        PEAK_RSS,
    ]


def _core_targets(_: dict[str, Any]) -> list[Target]:
    return [
        Target("append_1k_single_ops", ">= 2x JS", min_advantage=2),
        Target("get_random_ops", ">= 2x JS", min_advantage=2),
        Target("append_64k_mbps", ">= JS", min_advantage=1),
    ]


def _bee_params(quick: bool) -> dict[str, Any]:
    return {"n": 5_000 if quick else 100_000}


_BEE_OPS = ("put_seq_ops", "put_batch_ops", "get_random_ops", "scan_ops")


def _bee_metrics(_: dict[str, Any]) -> list[Metric]:
    return [
        higher("put_seq_ops", "put, awaited one by one (sequential keys)", "ops/s"),
        higher("put_batch_ops", "put, all in one batch", "ops/s"),
        higher("get_random_ops", "random get", "ops/s"),
        higher("scan_ops", "full range scan", "entries/s"),
        PEAK_RSS,
    ]


def _bee_targets(_: dict[str, Any]) -> list[Target]:
    return [Target(key, ">= 2x Hyperbee", min_advantage=2) for key in _BEE_OPS]


def _dht_params(quick: bool) -> dict[str, Any]:
    if quick:
        return {"sizes": [10], "trials": 5, "warmup": 1, "virtual_sizes": [1_000], "churn": 0.2}
    return {
        "sizes": [10, 50, 100],
        "trials": 20,
        "warmup": LOOKUP_WARMUP,
        "virtual_sizes": [1_000, 10_000],
        "churn": 0.2,
    }


def _dht_metrics(p: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    for n in p["sizes"]:
        out += [
            lower(f"lookup_p50_ms@{n}", f"lookup to completion p50, {n} nodes", "ms"),
            lower(f"lookup_p95_ms@{n}", f"lookup to completion p95, {n} nodes", "ms"),
            lower(f"first_p50_ms@{n}", f"lookup to first record p50, {n} nodes", "ms"),
            lower(f"first_p95_ms@{n}", f"lookup to first record p95, {n} nodes", "ms"),
            lower(f"hops_median@{n}", f"hops median, {n} nodes", "hops"),
            higher(f"success_pct@{n}", f"lookup success, {n} nodes", "%"),
        ]
    for n in p["virtual_sizes"]:
        out += [
            higher(f"sim_success_pct@{n}", f"virtual {n:,} nodes, churn: success", "%"),
            lower(f"sim_hops_median@{n}", f"virtual {n:,} nodes, churn: hops median", "hops"),
            lower(
                f"sim_finish_p50_s@{n}",
                f"virtual {n:,} nodes, churn: lookup to completion p50",
                "s",
            ),
            lower(
                f"sim_finish_p95_s@{n}",
                f"virtual {n:,} nodes, churn: lookup to completion p95",
                "s",
            ),
            lower(f"sim_idle_node_mb@{n}", f"virtual {n:,} nodes: memory per idle node", "MB"),
        ]
    out += [lower("idle_node_mb", "memory per idle node", "MB"), PEAK_RSS]
    return out


def _dht_targets(p: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    for n in p["sizes"]:
        out += [
            Target(f"lookup_p50_ms@{n}", "<= hyperdht", min_advantage=1),
            Target(f"lookup_p95_ms@{n}", "<= hyperdht", min_advantage=1),
        ]
    if 10_000 in p["virtual_sizes"]:
        out += [
            Target("sim_success_pct@10000", ">= 99.9%", op=">=", bound=99.9),
            Target("sim_hops_median@10000", "<= 4", op="<=", bound=4),
            Target("sim_idle_node_mb@10000", "< 1 MB", op="<", bound=1.0),
        ]
    out.append(Target("idle_node_mb", "< 1 MB", op="<", bound=1.0))
    return out


def _connect_params(quick: bool) -> dict[str, Any]:
    if quick:
        p = {"sizes": [10], "trials": 5, "warmup": 1, "stream_mb": 10}
        virtual = {"virtual_sizes": [200], "virtual_clients": 5}
    else:
        p = {"sizes": [10, 50], "trials": 30, "warmup": CONNECT_WARMUP, "stream_mb": 100}
        virtual = {"virtual_sizes": [1_000], "virtual_clients": 20}
    # on virtual networks the figures are the round trips a connect waits for
    return p | virtual | {"one_way_ms": 25}


def _connect_metrics(p: dict[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    for n in p["sizes"]:
        out += [
            lower(f"connect_p50_ms@{n}", f"lookup result -> open conn p50, {n} nodes", "ms"),
            lower(f"connect_p95_ms@{n}", f"lookup result -> open conn p95, {n} nodes", "ms"),
            lower(f"connect_key_p50_ms@{n}", f"connect by key (+ its lookup) p50, {n} nodes", "ms"),
            lower(f"connect_key_p95_ms@{n}", f"connect by key (+ its lookup) p95, {n} nodes", "ms"),
            lower(f"join_p50_ms@{n}", f"join -> connection p50, {n} nodes", "ms"),
            lower(f"join_p95_ms@{n}", f"join -> connection p95, {n} nodes", "ms"),
        ]
    for n in p.get("virtual_sizes", []):
        ms = p["one_way_ms"]
        out += [
            lower(
                f"sim_connect_key_p50_ms@{n}",
                f"virtual {n:,} nodes, {ms} ms one way: connect by key p50",
                "ms",
            ),
            lower(
                f"sim_reconnect_key_p50_ms@{n}",
                f"virtual {n:,} nodes, {ms} ms one way: again (last relays) p50",
                "ms",
            ),
        ]
    out += [higher("stream_mbps", "one stream over loopback", "MB/s"), PEAK_RSS]
    return out


def _connect_targets(p: dict[str, Any]) -> list[Target]:
    return [Target(f"connect_p50_ms@{n}", "<= JS", min_advantage=1) for n in p["sizes"]]


SUITES: dict[str, Suite] = {
    "core": Suite(
        "core",
        "core (issue #2): append-only log on disk",
        _core_params,
        (
            Side("ours", "ours", "python", "core", {"sync": False}),
            Side("ours sync=True", "ours", "python", "core", {"sync": True}),
            Side("hypercore 10", "ref", "node", "core.js"),
        ),
        _core_metrics,
        _core_targets,
    ),
    "bee": Suite(
        "bee",
        "bee (issue #3): B-tree on disk",
        _bee_params,
        (
            Side("ours", "ours", "python", "bee"),
            Side("hyperbee 2", "ref", "node", "bee.js"),
        ),
        _bee_metrics,
        _bee_targets,
    ),
    "dht": Suite(
        "dht",
        "dht (issue #4): lookups on loopback testnets and virtual networks",
        _dht_params,
        (
            Side("ours", "ours", "python", "dht"),
            Side("ours (uvloop)", "ours", "python", "dht", {"loop": "uvloop"}),
            Side(
                "ours (virtual net)",
                "ours",
                "python",
                "dht-sim",
                max_runs=1,
                solo=True,
                timeout=4 * 3600,
            ),
            Side("hyperdht", "ref", "node", "dht.js"),
            Side("kademlia (py)", "ref", "python", "dht-kademlia"),
        ),
        _dht_metrics,
        _dht_targets,
    ),
    "connect": Suite(
        "connect",
        "connect (issue #5): time to connection and stream throughput",
        _connect_params,
        (
            Side("ours", "ours", "python", "connect"),
            Side("ours (uvloop)", "ours", "python", "connect", {"loop": "uvloop"}),
            Side("ours (virtual net)", "ours", "python", "connect-sim", max_runs=1, solo=True),
            Side("hyperswarm", "ref", "node", "connect.js"),
        ),
        _connect_metrics,
        _connect_targets,
    ),
}
