"""The shape of everything that holds a socket, a database or a background task.

``async with thing:`` opens it (``_enter``, nothing by default) and always ends in
``await thing.close()``, so no layer writes its own ``__aenter__``/``__aexit__``.
"""

from __future__ import annotations

from typing import Self


class AsyncResource:
    """An async context manager over ``_enter()`` and ``close()``."""

    async def _enter(self) -> None:
        """What ``async with`` does before handing the object out (default: nothing)."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self._enter()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
