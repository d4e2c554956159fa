"""dht.pages: reading one node's records of a topic in key order, page by page."""

from __future__ import annotations

from collections.abc import Callable

from dht.pages import MAX_PAGES, Pager
from dht.records import PeerRecord
from dht.transport import Address
from storage.keypair import KeyPair

NODE: Address = ("10.0.0.1", 4000)
TOPIC = b"t" * 32
PAGE = 3
Done = Callable[[list[PeerRecord] | None], None]


def records(n: int) -> list[PeerRecord]:
    return sorted(
        (PeerRecord.sign(TOPIC, KeyPair.generate(), [], 1) for _ in range(n)),
        key=lambda r: r.public_key,
    )


class Node:
    """Answers page requests from ``held`` (a lying node ignores the cursor);
    answers wait in ``waiting`` until the test delivers them."""

    def __init__(
        self, held: list[PeerRecord], honest: bool = True, fails_at: int | None = None
    ) -> None:
        self.held = held
        self.honest = honest
        self.fails_at = fails_at
        self.asked: list[bytes] = []
        self.waiting: list[Callable[[], None]] = []
        self.cancelled: list[int] = []

    def fetch(self, node: Address, after: bytes, done: Done) -> int:
        assert node == NODE
        self.asked.append(after)
        page = [r for r in self.held if r.public_key > after or not self.honest][:PAGE]
        failed = len(self.asked) == self.fails_at
        self.waiting.append(lambda: done(None if failed else page))
        return len(self.asked)

    def answer_all(self) -> None:
        while self.waiting:
            self.waiting.pop(0)()


def pager(node: Node) -> tuple[Pager[int], list[PeerRecord], list[str]]:
    got: list[PeerRecord] = []
    events: list[str] = []

    def on_records(page: list[PeerRecord], addr: Address, hop: int) -> None:
        assert (addr, hop) == (NODE, 2)
        got.extend(page)

    p: Pager[int] = Pager(
        node.fetch, node.cancelled.append, on_records, PAGE, lambda: events.append("idle")
    )
    return p, got, events


def test_a_full_sample_reads_every_record_in_key_order_then_goes_idle() -> None:
    held = records(3 * PAGE + 1)
    node = Node(held)
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    p.full_sample(("10.0.0.2", 1), 3)  # one node is enough
    assert p.busy
    node.answer_all()
    assert got == held and events == ["idle"] and not p.busy
    # each page after the last key of the one before
    assert node.asked == [b""] + [held[i * PAGE - 1].public_key for i in (1, 2, 3)]
    assert (p.requests, p.pages) == (4, 4)


def test_an_exact_multiple_costs_one_empty_page() -> None:
    node = Node(records(2 * PAGE))
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    node.answer_all()
    assert len(got) == 2 * PAGE and p.requests == 3 and events == ["idle"]


def test_a_node_that_ignores_the_cursor_is_read_once() -> None:
    node = Node(records(4 * PAGE), honest=False)
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    node.answer_all()
    # the second page did not move past the first: reading stops
    assert p.requests == 2 and len(got) == 2 * PAGE and events == ["idle"] and not p.busy


def test_pages_are_capped() -> None:
    node = Node(records((MAX_PAGES + 5) * PAGE))
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    node.answer_all()
    assert p.requests == MAX_PAGES and len(got) == MAX_PAGES * PAGE and events == ["idle"]


def test_a_failed_page_ends_the_reading() -> None:
    node = Node(records(3 * PAGE), fails_at=2)
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    node.answer_all()
    assert len(got) == PAGE and p.requests == 2 and p.pages == 1
    assert events == ["idle"] and not p.busy


def test_cancel_drops_the_request_in_flight_and_stays_quiet() -> None:
    node = Node(records(3 * PAGE))
    p, got, events = pager(node)
    p.full_sample(NODE, 2)
    p.cancel()
    assert node.cancelled == [1] and not p.busy
    node.answer_all()  # a late answer changes nothing
    assert got == [] and events == []
