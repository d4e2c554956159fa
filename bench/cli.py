"""``python -m bench core|bee|dht|connect|all``: run both sides, print medians and ratios."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import reference
from bench.process import Outcome, run_json
from bench.stats import median_metrics
from bench.suites import SUITES, Side, Suite
from bench.table import Medians, Row, build_rows, render

ROOT = Path(__file__).resolve().parent.parent
MAX_ERRORS = 2  # a side that fails this many runs is not retried


@dataclass
class SideResult:
    """Every run of one side, and why it stopped if it did."""

    side: Side
    runs: list[Outcome] = field(default_factory=list)
    unavailable: str | None = None
    errors: list[str] = field(default_factory=list)

    def per_run(self) -> list[Medians | None]:
        """Each run's figures in run order (None for a run that failed)."""
        return [_figures(run) for run in self.runs]

    def medians(self) -> Medians | None:
        figures = [run for run in self.per_run() if run is not None]
        return median_metrics(figures) if figures else None

    def active(self) -> bool:
        return self.unavailable is None and len(self.errors) < MAX_ERRORS


def _figures(run: Outcome) -> Medians | None:
    if run.error is not None or run.unavailable is not None:
        return None
    if run.peak_rss_mb is None:
        return dict(run.metrics)
    return {**run.metrics, "peak_rss_mb": run.peak_rss_mb}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("--runs", type=int, default=5, help="runs per side (median; default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write all results as JSON")
    parser.add_argument("--no-reference", action="store_true", help="skip the JavaScript side")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per process (default 1800)"
    )
    parser.add_argument("--tmp", type=Path, help="parent of the temp dirs (default: system temp)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    node = None if args.no_reference else reference.prepare(_say)
    if args.no_reference:
        _say("reference: --no-reference given, skipping the JavaScript side")
    names = list(SUITES) if args.suite == "all" else [args.suite]
    report: dict[str, Any] = {"runs": args.runs, "quick": args.quick, "suites": {}}
    failed = False
    for name in names:
        suite = SUITES[name]
        params = suite.params(args.quick)
        results = run_suite(suite, params, args, node)
        print(_table(suite, params, results))
        print(_notes(results))
        print()
        report["suites"][name] = _json(suite, params, results)
        failed = failed or any(r.errors for r in results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        _say(f"wrote {args.json}")
    return 1 if failed else 0  # a side that crashed is worth a red exit; slow figures are not


def run_suite(
    suite: Suite, params: dict[str, Any], args: argparse.Namespace, node: str | None
) -> list[SideResult]:
    """Interleave the sides run by run, so drift in machine load hits every side alike."""
    results = [SideResult(side) for side in suite.sides]
    for result in results:
        if result.side.lang == "node" and node is None:
            result.unavailable = "JavaScript reference skipped"
    for run in range(args.runs):
        for result in results:
            side = result.side
            if not result.active() or (side.max_runs is not None and run >= side.max_runs):
                continue
            started = time.monotonic()
            outcome = _run_side(side, params, args, node)
            took = time.monotonic() - started
            status = outcome.unavailable or outcome.error or outcome.note or "ok"
            _say(f"{suite.name} run {run + 1}/{args.runs} {side.label}: {status} ({took:.1f}s)")
            if outcome.unavailable:
                result.unavailable = outcome.unavailable
            elif outcome.error:
                result.errors.append(outcome.error)
            result.runs.append(outcome)
    return results


def _run_side(
    side: Side, params: dict[str, Any], args: argparse.Namespace, node: str | None
) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{side.workload}-", dir=args.tmp))
    try:
        payload = json.dumps({**params, **side.extra, "dir": str(workdir)})
        if side.lang == "node":
            assert node is not None
            argv = [node, "--expose-gc", str(reference.script(side.workload)), payload]
        else:
            argv = [sys.executable, "-m", "bench.worker", side.workload, payload]
        return run_json(argv, cwd=ROOT, timeout=max(args.timeout, side.timeout or 0))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _rows(suite: Suite, params: dict[str, Any], results: list[SideResult]) -> list[Row]:
    ours = [(r.side.label, r.medians()) for r in results if r.side.role == "ours"]
    refs = [(r.side.label, r.medians()) for r in results if r.side.role == "ref"]
    solo = {r.side.label for r in results if r.side.solo}
    per_run = {r.side.label: r.per_run() for r in results}
    return build_rows(suite.metrics(params), suite.targets(params), ours, refs, solo, per_run)


def _table(suite: Suite, params: dict[str, Any], results: list[SideResult]) -> str:
    refs = [r.side.label for r in results if r.side.role == "ref"]
    runs = max((len(r.runs) for r in results), default=0)
    title = f"== {suite.title} — medians of {runs} run(s), params {json.dumps(params)}"
    return render(title, "ours", refs, _rows(suite, params, results))


def _notes(results: list[SideResult]) -> str:
    lines = []
    for r in results:
        if r.unavailable:
            lines.append(f"  {r.side.label}: {r.unavailable}")
        for note in dict.fromkeys(o.note for o in r.runs if o.note):
            lines.append(f"  {r.side.label}: {note}")
        for error in dict.fromkeys(r.errors):
            first, *rest = error.splitlines()
            lines.append(f"  {r.side.label}: FAILED: {first}")
            lines += [f"      {line}" for line in rest]
    return "\n".join(lines)


def _json(suite: Suite, params: dict[str, Any], results: list[SideResult]) -> dict[str, Any]:
    refs = [r.side.label for r in results if r.side.role == "ref"]
    return {
        "params": params,
        "rows": [
            {
                "metric": row.label,
                "unit": row.unit,
                "direction": row.direction.value,
                "ours": row.ours,
                "references": dict(zip(refs, row.refs, strict=True)),
                "ahead": dict(zip(refs, row.ahead, strict=True)),
                "target": row.target or None,
                "met": row.met,
                "runs_met": None if row.runs_met is None else list(row.runs_met),
            }
            for row in _rows(suite, params, results)
        ],
        "sides": {
            r.side.label: {
                "role": r.side.role,
                "median": r.medians(),
                "runs": [
                    {
                        "metrics": o.metrics,
                        "peak_rss_mb": o.peak_rss_mb,
                        "info": o.info,
                        "note": o.note,
                    }
                    for o in r.runs
                    if o.error is None and o.unavailable is None
                ],
                "unavailable": r.unavailable,
                "errors": r.errors,
            }
            for r in results
        },
    }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
