"""One joined topic: announce it (server), look it up and connect (client)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from storage.errors import PeerswarmError

log = logging.getLogger(__name__)


class Discovery:
    """The handle ``Swarm.join`` returns; the swarm owns the task behind it.

    ``await flushed()`` returns once the topic is announced (server) and the first
    lookup is done, each peer found having been queued for a connection (client).
    """

    def __init__(
        self,
        topic: bytes,
        *,
        server: bool,
        client: bool,
        announce: Callable[[bytes], Awaitable[None]],
        discover: Callable[[bytes], Awaitable[None]],
        lookup_interval: float,
    ) -> None:
        self.topic = topic
        self.server = server
        self.client = client
        self._announce = announce
        self._discover = discover
        self._lookup_interval = lookup_interval
        self._flushed = asyncio.Event()
        self._error: PeerswarmError | None = None

    async def flushed(self) -> None:
        """Wait for the first announce/lookup round; raise what made it fail, if anything."""
        await self._flushed.wait()
        if self._error is not None:
            raise self._error

    async def refresh(self) -> None:
        """Look the topic up again now; returns once every new peer is queued for dialing."""
        if self.client:
            await self._discover(self.topic)

    async def run(self) -> None:
        """Announce once (the DHT keeps it fresh), then look up until cancelled."""
        try:
            if self.server:
                await self._announce(self.topic)
            if self.client:
                await self._discover(self.topic)
        except PeerswarmError as e:
            log.debug("join %s: %s", self.topic.hex()[:16], e)
            self._error = e
        finally:
            self._flushed.set()
        while self.client:
            await asyncio.sleep(self._lookup_interval)
            try:
                await self._discover(self.topic)
            except PeerswarmError as e:
                log.debug("lookup %s: %s", self.topic.hex()[:16], e)
