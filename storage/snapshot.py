"""A read-only view of a Core fixed at the length it had when the snapshot was taken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from storage.errors import OutOfRangeError, SnapshotNotAvailableError

if TYPE_CHECKING:
    from storage.core import Core


class Snapshot:
    """Reads blocks below a fixed length even while the core keeps growing.

    A later truncation below that length makes the cut-off blocks unavailable
    (:class:`SnapshotNotAvailableError`): their bytes are gone from the store.
    """

    writable = False

    def __init__(self, core: Core) -> None:
        self.core = core
        self.length = core.length
        self.byte_length = core.byte_length
        self.fork = core.fork
        self._tree_hash = core.tree_hash()
        self._valid = core.length  # blocks below this are still the snapshot's

    def _invalidate(self, length: int) -> None:
        self._valid = min(self._valid, length)

    @property
    def key(self) -> bytes:
        return self.core.key

    @property
    def discovery_key(self) -> bytes:
        return self.core.discovery_key

    def tree_hash(self) -> bytes:
        """The tree hash at the snapshot's length (kept even after a truncation)."""
        return self._tree_hash

    def snapshot(self) -> Snapshot:
        return self

    def has(self, index: int) -> bool:
        return 0 <= index < self._valid and self.core.has(index)

    async def get(
        self,
        index: int,
        *,
        wait: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 (the API contract names it)
    ) -> bytes:
        if not 0 <= index < self.length:
            raise OutOfRangeError(f"block {index} is outside the snapshot's {self.length}")
        if index >= self._valid:
            raise SnapshotNotAvailableError(f"block {index} was truncated away")
        return await self.core.get(index, wait=wait, timeout=timeout)

    async def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        for i in range(start, self.length if end is None else min(end, self.length)):
            yield await self.get(i)

    def __repr__(self) -> str:
        return f"Snapshot(key={self.key.hex()[:16]}…, length={self.length})"
