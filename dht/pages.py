"""Reading every record one node holds for a topic, a page at a time.

A LOOKUP reply carries at most ``MAX_RECORDS_PER_REPLY`` records (one datagram's
worth), a random sample when the node holds more. The samples of the k nodes near a
topic together cover most of it, but with few nodes or many peers some peers are
left out of every sample: 5 nodes holding 40 peers' records gave a lookup 27 to 30
of them. So when a sample comes back full, the lookup also reads that node's records
in public-key order, a page per LOOKUP whose value is the last key of the page
before (``b""`` for the first), until a page comes back short. One node is enough:
the nodes near a topic hold the same records, bar churn, which the samples of the
others make up for. A topic holds at most ``max_records_per_topic`` (64) per node,
so reading one costs at most 7 requests, and only topics that big pay them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from dht.records import PeerRecord
from dht.transport import Address

H = TypeVar("H")

Fetch = Callable[[Address, bytes, Callable[[list[PeerRecord] | None], None]], H]
"""Ask a node for the page after a key; the callback gets its records, or ``None``
when the node failed or answered with an error."""
OnRecords = Callable[[list[PeerRecord], Address, int], None]
"""A page's records, the node that sent them and the hop at which the query reached it."""

MAX_PAGES = 32
"""Pages read from one node at most: a node may hold far fewer (64 per topic by
default), and a lying one must not keep a lookup going."""


class Pager(Generic[H]):
    """Pages through one node's records of a topic; :attr:`busy` until the last page."""

    def __init__(
        self,
        fetch: Fetch[H],
        cancel: Callable[[H], None],
        on_records: OnRecords,
        page_size: int,
        on_idle: Callable[[], None],
    ) -> None:
        self._fetch = fetch
        self._cancel = cancel
        self._on_records = on_records
        self._page_size = page_size
        self._on_idle = on_idle
        self._node: Address | None = None
        self._hop = 0
        self._pending: H | None = None
        self._after = b""
        self.busy = False
        self.requests = 0
        self.pages = 0

    def full_sample(self, node: Address, hop: int) -> None:
        """``node`` answered with a full sample: read all of it (the first such node only)."""
        if self._node is None:
            self._node, self._hop = node, hop
            self.busy = True
            self._next(b"")

    def cancel(self) -> None:
        """Stop; ``on_idle`` is not called."""
        pending, self._pending = self._pending, None
        self.busy = False
        if pending is not None:
            self._cancel(pending)

    def _next(self, after: bytes) -> None:
        assert self._node is not None
        self._after = after
        self.requests += 1
        self._pending = self._fetch(self._node, after, self._on_page)

    def _on_page(self, records: list[PeerRecord] | None) -> None:
        if not self.busy:
            return  # cancelled meanwhile
        self._pending = None
        if records is not None:
            self.pages += 1
            assert self._node is not None
            self._on_records(records, self._node, self._hop)
            after = max((r.public_key for r in records), default=b"")
            # a full page moves the cursor on, or the node ignores it: then we are done
            full = len(records) >= self._page_size and after > self._after
            if self.busy and full and self.requests < MAX_PAGES:
                self._next(after)
                return
        if self.busy:
            self.busy = False
            self._on_idle()
