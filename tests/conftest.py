"""Shared fixtures: real LMDB in a temp dir, real UDP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def hypercore_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "hypercore-v10.json").read_text())
    return data
