"""The benchmark harness's pure parts: statistics, ratios, targets, table, JSON parsing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.metrics import Direction, Target, higher, lower
from bench.paired import summarize
from bench.process import _parse
from bench.stats import advantage, median, median_metrics, percentile
from bench.suites import SUITES
from bench.table import build_rows, render
from bench.workloads.common import trials


def test_median_and_percentile() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    with pytest.raises(ValueError):
        median([])


def test_median_metrics_skips_missing() -> None:
    assert median_metrics([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0}]) == {"a": 2.0, "b": 5.0}


def test_advantage_is_above_one_when_ahead() -> None:
    assert advantage(200.0, 100.0, Direction.HIGHER) == 2.0
    assert advantage(5.0, 10.0, Direction.LOWER) == 2.0
    assert advantage(1.0, 0.0, Direction.HIGHER) is None
    assert advantage(0.0, 1.0, Direction.LOWER) is None


def test_targets() -> None:
    assert Target("k", ">= 2x", min_advantage=2).met(None, 2.5) is True
    assert Target("k", ">= 2x", min_advantage=2).met(None, 1.5) is False
    assert Target("k", ">= 2x", min_advantage=2).met(None, None) is None
    assert Target("k", "< 1", op="<", bound=1.0).met(0.5, None) is True
    assert Target("k", "< 1", op="<", bound=1.0).met(None, None) is None


def test_rows_and_render() -> None:
    metrics = [higher("ops", "appends", "ops/s"), lower("ms", "latency", "ms")]
    targets = [Target("ops", ">= 2x", min_advantage=2)]
    ours = [("ours", {"ops": 300.0, "ms": 4.0}), ("ours sync", {"ops": 100.0})]
    refs = [("js", {"ops": 100.0, "ms": 2.0})]
    rows = build_rows(metrics, targets, ours, refs)
    assert [(r.label, r.ahead, r.met) for r in rows] == [
        ("appends [ours]", (3.0,), True),
        ("appends [ours sync]", (1.0,), False),
        ("latency [ours]", (0.5,), None),
    ]
    text = render("title", "ours", ["js"], rows)
    assert "3.00x" in text and "NO" in text and "0.50x" in text


def test_rows_count_the_runs_that_met_a_target_side_by_side() -> None:
    metrics = [lower("ms", "latency", "ms"), lower("rss", "memory", "MB")]
    targets = [Target("ms", "<= JS", min_advantage=1.0), Target("rss", "< 50", op="<", bound=50)]
    per_run = {
        "ours": [{"ms": 1.0, "rss": 40.0}, {"ms": 3.0, "rss": 60.0}, None, {"ms": 1.5}],
        "js": [{"ms": 2.0}, {"ms": 2.5}, {"ms": 1.0}, {"ms": 2.0}],
    }
    ours = [("ours", {"ms": 1.5, "rss": 50.0})]
    rows = build_rows(metrics, targets, ours, [("js", {"ms": 2.0})], per_run=per_run)
    # latency: run 1 and run 4 beat JS side by side, run 2 did not, run 3 failed
    assert [(r.met, r.runs_met) for r in rows] == [(True, (2, 3)), (False, (1, 2))]
    text = render("title", "ours", ["js"], rows)
    assert "yes (2/3)" in text and "NO (1/2)" in text
    assert build_rows(metrics, targets, ours, [("js", {"ms": 2.0})])[0].runs_met is None


def test_unavailable_ours_still_shows_reference() -> None:
    rows = build_rows(
        [higher("ops", "appends", "ops/s")], [], [("ours", None)], [("js", {"ops": 1.0})]
    )
    assert len(rows) == 1 and rows[0].ours is None and rows[0].refs == (1.0,)


def test_parse_worker_output() -> None:
    out = _parse('noise\n{"metrics": {"a": 1, "flag": true}, "info": {"v": 1}}\n')
    assert out.metrics == {"a": 1.0} and out.info == {"v": 1} and out.error is None
    assert _parse('{"unavailable": "not yet"}').unavailable == "not yet"
    assert _parse("").error == "no JSON on stdout"


@pytest.mark.parametrize("name", list(SUITES))
def test_every_target_names_a_metric(name: str) -> None:
    suite = SUITES[name]
    for quick in (True, False):
        params = suite.params(quick)
        keys = {m.key for m in suite.metrics(params)}
        assert {t.key for t in suite.targets(params)} <= keys


def test_solo_variant_has_no_reference() -> None:
    metrics = [lower("rss", "peak RSS", "MB")]
    ours = [("ours", {"rss": 10.0}), ("sim", {"rss": 100.0})]
    rows = build_rows(metrics, [], ours, [("js", {"rss": 20.0})], solo={"sim"})
    assert [(r.refs, r.ahead) for r in rows] == [((20.0,), (2.0,)), ((None,), (None,))]


def test_a_solo_variant_is_judged_on_its_own_runs() -> None:
    metrics = [lower("rss", "peak RSS", "MB")]
    targets = [Target("rss", "< 50", op="<", bound=50), Target("rss", "<= JS", min_advantage=1)]
    per_run = {"sim": [{"rss": 40.0}, {"rss": 60.0}, {"rss": 45.0}], "js": [{"rss": 1.0}] * 3}
    for target, runs_met in zip(targets, [(2, 3), None], strict=True):
        (row,) = build_rows(
            metrics, [target], [("sim", {"rss": 45.0})], [("js", {"rss": 1.0})], {"sim"}, per_run
        )
        assert row.runs_met == runs_met  # never set against the reference's runs


def test_warmup_trials_run_first_and_are_left_out() -> None:
    calls: list[int] = []

    async def trial() -> int:
        calls.append(len(calls))
        return len(calls)

    assert asyncio.run(trials({"trials": 3, "warmup": 2}, trial)) == [3, 4, 5]
    assert asyncio.run(trials({"trials": 2}, trial)) == [6, 7]  # no warm-up asked
    for name in ("dht", "connect"):  # the latency suites warm both sides up
        assert all(SUITES[name].params(quick)["warmup"] > 0 for quick in (True, False))


def test_paired_rounds_are_set_against_each_other() -> None:
    ours = [[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [1.0, 1.0, 9.0]]
    theirs = [[2.0, 2.0, 2.0], [4.0, 4.0, 4.0], [1.0, 1.0, 1.0]]
    result = summarize(ours, theirs)
    # chunk medians 2 vs 2 (a tie counts for us), 5 vs 4, 1 vs 1
    assert (result.wins, result.rounds) == (2, 3)
    assert (result.ours_p50, result.theirs_p50) == (3.0, 2.0)  # pooled over every trial
    assert result.ahead == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        summarize(ours, theirs[:2])
    with pytest.raises(ValueError):
        summarize([], [])


@pytest.mark.parametrize("kind", ["dht", "connect", "key", "join"])
def test_the_paired_worker_answers_chunks_until_told_to_stop(kind: str) -> None:
    """Our side of ``python -m bench.paired``: ready after its warm-up, one JSON list of
    times per requested chunk, and a clean exit on 0."""
    params = json.dumps({"kind": kind, "size": 3, "warmup": 1})
    done = subprocess.run(
        [sys.executable, "-m", "bench.paired_worker", params],
        input="2\n1\n0\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "ready"
    chunks = [json.loads(line) for line in lines[1:]]
    assert [len(chunk) for chunk in chunks] == [2, 1]
    assert all(isinstance(ms, float) and 0 < ms < 10_000 for chunk in chunks for ms in chunk)


def test_the_lookup_breakdown_splits_each_lookup_into_disjoint_parts() -> None:
    """``python -m bench.breakdown lookup`` on 3 nodes: the looker asked every node, the
    metered parts of one lookup never add up to more than the lookup took, and the
    floor and the signature check were measured."""
    from bench.lookup_breakdown import PARTS, _lookups, breakdown

    samples = asyncio.run(_lookups(3, 6, warmup=2))
    assert len(samples.plain) == len(samples.timed) == 6
    for index, total in enumerate(samples.timed):
        metered = [samples.parts[part][index] for part in PARTS]
        assert all(ms > 0 for ms in metered)
        assert sum(metered) <= total
    assert samples.meter.requests and samples.meter.replies

    result = asyncio.run(breakdown(3, 4, warmup=1))
    assert result.datagrams == 6  # a request to each of the 3 nodes, and its reply
    assert result.floor > 0 and result.verify > 0
    assert "servers: requests answered" in result.render()
    with pytest.raises(ValueError):
        asyncio.run(breakdown(0))


def test_the_dial_breakdown_meters_aioquic_within_each_dial_and_puts_it_back() -> None:
    """``python -m bench.breakdown dial`` on 3 nodes: aioquic takes part of a dial, not
    none and not more than all of it, and its methods are unwrapped afterwards."""
    from aioquic.quic.connection import QuicConnection

    from bench.dial_breakdown import METERED, dial_breakdown

    before = {name: QuicConnection.__dict__[name] for name in METERED}
    result = asyncio.run(dial_breakdown(3, 2, warmup=0))
    assert 0 < result.aioquic < result.metered
    assert result.plain > 0
    assert {name: QuicConnection.__dict__[name] for name in METERED} == before
    assert "in aioquic (both ends)" in result.render()


@pytest.mark.parametrize(("kind", "heading"), [("lookup", "lookup"), ("dial", "open connection")])
def test_the_breakdown_command_prints_its_table(
    kind: str, heading: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.breakdown import main

    assert main([kind, "--size", "2", "--count", "2"]) == 0
    assert heading in capsys.readouterr().out.splitlines()[0]
