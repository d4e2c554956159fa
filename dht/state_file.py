"""The routing table on disk: a small JSON list of addresses (never pickle).

Only addresses are kept; ids are derived from them, and a saved node joins our
table again only after it answers with the id its address hashes to. Enough for a
restarted node to rejoin through the nodes it knew when its bootstrap nodes are gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dht import wire
from dht.transport import Address
from storage.errors import DecodeError

VERSION = 1
MAX_SAVED = 128
MAX_FILE = 64 * 1024


def save_nodes(path: str | os.PathLike[str], nodes: list[Address]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    target = Path(path)
    data = json.dumps({"version": VERSION, "nodes": [[h, p] for h, p in nodes[:MAX_SAVED]]})
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, target)


def load_nodes(path: str | os.PathLike[str]) -> list[Address]:
    """The saved addresses; ``[]`` when there is no file. Raises DecodeError if corrupt."""
    target = Path(path)
    try:
        raw = target.read_bytes()[: MAX_FILE + 1]
    except FileNotFoundError:
        return []
    if len(raw) > MAX_FILE:
        raise DecodeError("routing table file too large")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"routing table file is not JSON: {e}") from e
    if not isinstance(obj, dict) or obj.get("version") != VERSION:
        raise DecodeError("unknown routing table file version")
    return wire.unpack_addresses(obj.get("nodes"), MAX_SAVED)
