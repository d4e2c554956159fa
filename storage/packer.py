"""One msgpack Packer kept for many small objects, let go after a big one.

``msgpack.packb`` builds a Packer per call, with a 1 MiB buffer: for small objects
that costs more than the packing (7% of a 10-node DHT lookup's CPU). A kept Packer
is cheaper, but its buffer keeps the size of the largest object it ever packed: one
100 MB Bee batch would hold 100 MB for the life of the process. So after an object
over :data:`KEEP_LIMIT` the buffer goes with its Packer, and a new one takes over.

Packing runs under the GIL without calling back into Python, so one Packer serves
every thread; a pack that fails empties the buffer.
"""

from __future__ import annotations

from typing import Any

import msgpack

KEEP_LIMIT = 1 << 20
"""Largest packed size whose buffer is kept (the size of a new Packer's own)."""


class Packer:
    """``pack(obj) -> bytes``, as ``msgpack.packb(obj, use_bin_type=True)``."""

    __slots__ = ("_packer",)

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True)

    def pack(self, obj: Any) -> bytes:
        data: bytes = self._packer.pack(obj)
        if len(data) > KEEP_LIMIT:
            self._packer = msgpack.Packer(use_bin_type=True)
        return data


pack = Packer().pack
"""The process's one kept Packer (the DHT's wire, the Bee's blocks, nodes and values)."""
