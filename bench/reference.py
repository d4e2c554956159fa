"""Make the JavaScript reference runnable: find node, install the locked packages once."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REQUIRED = ("hypercore", "hyperbee", "hyperdht", "hyperswarm")


def prepare(say: Callable[[str], None] = print) -> str | None:
    """Return the node executable, running ``npm ci`` first if node_modules is missing.

    Returns None (after saying why) when the reference side cannot run.
    """
    tell = say
    node = shutil.which("node")
    if node is None:
        tell("reference: node not found, skipping the JavaScript side")
        return None
    if _installed():
        return node
    npm = shutil.which("npm")
    if npm is None:
        tell("reference: bench/reference/node_modules missing and npm not found, skipping JS side")
        return None
    tell("reference: node_modules missing, running `npm ci` in bench/reference ...")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=REFERENCE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not _installed():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        tell(f"reference: `npm ci` failed, skipping JS side\n{tail}")
        return None
    return node


def script(name: str) -> Path:
    """Path of a reference workload script, e.g. ``core.js``."""
    return REFERENCE_DIR / name


def _installed() -> bool:
    modules = REFERENCE_DIR / "node_modules"
    return all((modules / name / "package.json").is_file() for name in REQUIRED)
