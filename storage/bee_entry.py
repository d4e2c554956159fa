"""What a Bee hands back: entries, history changes, diffs and watch updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from storage.bee import Bee


class Entry(NamedTuple):
    """A key's value, and ``seq``: the block that wrote it (its version is ``seq + 1``)."""

    seq: int
    key: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Change:
    """One write in the history: a ``"put"`` (with its value) or a ``"del"`` (value None)."""

    type: Literal["put", "del"]
    seq: int
    key: Any
    value: Any = None


@dataclass(frozen=True, slots=True)
class Diff:
    """A key that differs between two versions: ``left`` here, ``right`` in the other one."""

    left: Entry | None
    right: Entry | None

    @property
    def key(self) -> Any:
        side = self.left if self.left is not None else self.right
        assert side is not None
        return side.key


class Update(NamedTuple):
    """What a watch yields: read-only views of the database now and before the change."""

    current: Bee
    previous: Bee
