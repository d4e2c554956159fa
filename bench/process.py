"""Run one workload in its own process and collect its JSON and its peak RSS.

Each side runs in a fresh child so its peak RSS is its own (``wait4`` gives the
child's ``ru_maxrss``) and no cache or JIT state leaks from one run to the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """What one run of one side produced."""

    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    unavailable: str | None = None
    error: str | None = None
    note: str | None = None  # e.g. figures from a run cut short by the timeout


def run_json(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Outcome:
    """Run ``argv``; its last stdout line must be a JSON object.

    The object holds ``metrics`` (name -> number) and optional ``info``, or
    ``unavailable`` (a reason the workload cannot run yet, e.g. an ImportError).
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    outcome = _parse(out.decode(errors="replace"))
    outcome.peak_rss_mb = usage.ru_maxrss * 1024 / 1e6  # Linux reports KiB; we print MB
    if killed.is_set() and outcome.metrics:  # a workload prints figures as it goes: keep them
        outcome.error = None
        outcome.note = f"timed out after {timeout:.0f}s: partial figures"
    elif outcome.unavailable is None and (proc.returncode != 0 or outcome.error):
        reason = f"timed out after {timeout:.0f}s" if killed.is_set() else f"exit {proc.returncode}"
        tail = "\n".join(stderr.strip().splitlines()[-6:])
        outcome.error = f"{reason if killed.is_set() else outcome.error or reason}\n{tail}".strip()
    return outcome


def _parse(stdout: str) -> Outcome:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return Outcome(error="no JSON on stdout")
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        return Outcome(error=f"bad JSON on stdout: {exc}")
    if not isinstance(data, dict):
        return Outcome(error="JSON on stdout is not an object")
    metrics = {
        str(k): float(v)
        for k, v in dict(data.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return Outcome(
        metrics=metrics,
        info=dict(data.get("info") or {}),
        unavailable=data.get("unavailable"),
        error=data.get("error"),
    )
