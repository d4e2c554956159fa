"""The DHT's pure parts: ids, routing table, query state, record store, tokens, NAT class."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht import wire
from dht.messages import ErrorCode
from dht.nat_sampler import NatSampler
from dht.nat_type import NatType, classify
from dht.node_id import bucket_index, distance, hash32, node_id, random_id_in_bucket
from dht.query import QueryState
from dht.rate_limit import TokenBucket
from dht.record_store import RecordStore
from dht.records import MutableValue, PeerRecord, decode_lookup_reply, encode_lookup_reply
from dht.routing_table import RECENTLY_SEEN, RoutingTable
from dht.tokens import MAX_CACHED, Tokens
from storage.keypair import KeyPair


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.{i // 250}.{i % 250 + 1}", 4000 + i)


def test_node_id_is_bound_to_the_address() -> None:
    assert node_id(("127.0.0.1", 1)) != node_id(("127.0.0.1", 2))
    assert node_id(("::1", 5)) == node_id(("0:0:0:0:0:0:0:1", 5))  # one spelling per IP
    assert len(node_id(("1.2.3.4", 5))) == 32


def test_random_id_lands_in_the_requested_bucket() -> None:
    rng = random.Random(1)
    own = node_id(addr(0))
    for index in (0, 1, 7, 100, 255):
        assert bucket_index(own, random_id_in_bucket(own, index, rng)) == index


def test_routing_table_keeps_old_contacts_and_replaces_dead_ones() -> None:
    own = node_id(addr(0))
    table = RoutingTable(own, k=2)
    # fill one bucket (the far half of the keyspace)
    far = [a for a in (addr(i) for i in range(1, 200)) if bucket_index(own, node_id(a)) == 255]
    assert table.add(node_id(far[0]), far[0], 1.0) is None
    assert table.add(node_id(far[1]), far[1], 2.0) is None
    # the oldest was heard from lately: presumed alive, nobody pings it for a newcomer
    assert table.add(node_id(far[2]), far[2], 1.0 + RECENTLY_SEEN - 0.1) is None
    later = 1.0 + RECENTLY_SEEN
    head = table.add(node_id(far[2]), far[2], later)
    assert head is not None and head.address == far[0]  # ping the oldest, keep it if alive
    assert node_id(far[2]) not in table and len(table) == 2
    assert table.remove(node_id(far[0]))  # it did not answer: the newcomer takes its slot
    assert node_id(far[2]) in table and len(table) == 2
    assert table.add(node_id(far[1]), far[1], later + 1) is None  # refresh: to the tail
    assert [c.address for c in table.stale(later + 0.5)] == [far[2]]


def _far(own: bytes, host: str, count: int) -> list[tuple[str, int]]:
    """``count`` addresses at ``host`` whose ids fall in bucket 255 of ``own``."""
    found = (
        a for a in ((host, p) for p in range(1000, 2000)) if bucket_index(own, node_id(a)) == 255
    )
    return [next(found) for _ in range(count)]


def test_routing_table_limits_contacts_per_public_ip() -> None:
    own = node_id(addr(0))
    table = RoutingTable(own, k=20, max_per_ip=5, max_per_ip_per_bucket=2)
    attacker = [("8.8.8.8", p) for p in range(1000, 3000)]  # one host grinding ports
    for i, a in enumerate(attacker):
        assert table.add(node_id(a), a, float(i)) is None  # no bucket ever fills
    assert table.count_ip("8.8.8.8") == 5 == len(table)
    assert max(Counter(bucket_index(own, c.id) for c in table).values()) <= 2
    for p in range(1000, 1030):  # another IP is not affected
        table.add(node_id(("9.9.9.9", p)), ("9.9.9.9", p), 1.0)
    assert table.count_ip("9.9.9.9") == 5
    # loopback and private addresses are exempt: a testnet on 127.0.0.1 fills up
    for host in ("127.0.0.1", "10.0.0.1", "::1", "fe80::1"):
        local = RoutingTable(own, k=20, max_per_ip=5, max_per_ip_per_bucket=2)
        for p in range(1000, 1100):
            local.add(node_id((host, p)), (host, p), 2.0)
        assert local.count_ip(host) > 20
    # a freed slot can go to the same IP again; the limits survive a rebase
    gone = next(c for c in table if c.address[0] == "8.8.8.8")
    assert table.remove(gone.id) and table.count_ip("8.8.8.8") == 4
    assert table.add(node_id(gone.address), gone.address, 3.0) is None
    assert table.count_ip("8.8.8.8") == 5
    rebased = table.rebased(node_id(addr(7)), 4.0)
    assert rebased.count_ip("8.8.8.8") <= 5 and rebased.max_per_ip == 5


def test_routing_table_replacements_respect_the_per_ip_limit() -> None:
    own = node_id(addr(0))
    table = RoutingTable(own, k=2, max_per_ip=8, max_per_ip_per_bucket=1)
    (x,), (y,), (a, b) = _far(own, "1.1.1.1", 1), _far(own, "2.2.2.2", 1), _far(own, "3.3.3.3", 2)
    table.add(node_id(x), x, 1.0)
    table.add(node_id(y), y, 2.0)
    later = 2.0 + RECENTLY_SEEN
    assert table.add(node_id(a), a, later) is not None  # full: both wait as replacements
    assert table.add(node_id(b), b, later + 1) is not None
    assert table.remove(node_id(x))  # the newest replacement takes the slot
    assert node_id(b) in table and table.count_ip("3.3.3.3") == 1
    assert table.remove(node_id(y))  # the other one would be a 2nd 3.3.3.3 in the bucket
    assert node_id(a) not in table and len(table) == 1


def test_routing_table_closest_is_sorted_by_xor_distance() -> None:
    own = node_id(addr(0))
    table = RoutingTable(own, k=20)
    for i in range(1, 300):
        table.add(node_id(addr(i)), addr(i), float(i))
    target = node_id(addr(1000))
    closest = table.closest(target, 5)
    everything = sorted(table, key=lambda c: distance(c.id, target))
    assert [c.id for c in closest] == [c.id for c in everything[:5]]
    assert len(table) > 4 * 5  # big enough to be walked bucket by bucket
    rebased = table.rebased(node_id(addr(999)), 1.0)
    assert len(rebased) > 0 and rebased.id == node_id(addr(999))
    assert table.add(own, addr(0), 1.0) is None and own not in table  # never ourselves


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    spread=st.integers(0, 200),
    near=st.integers(0, 120),
    count=st.integers(1, 45),
)
def test_routing_table_closest_is_a_full_sort_at_any_size(
    seed: int, spread: int, near: int, count: int
) -> None:
    """Small tables are sorted whole, big ones walked bucket by bucket: either way the
    answer is the first ``count`` of every contact sorted by distance."""
    rng = random.Random(seed)
    own = rng.randbytes(32)
    table = RoutingTable(own, k=20)
    ids = [rng.randbytes(32) for _ in range(spread)]  # mostly the top buckets
    ids += [random_id_in_bucket(own, rng.randrange(256), rng) for _ in range(near)]
    for i, contact_id in enumerate(ids):
        table.add(contact_id, addr(i), 0.0)
    for target in (own, rng.randbytes(32), *rng.sample(ids, min(2, len(ids)))):
        everything = sorted(table, key=lambda c: distance(c.id, target))
        assert [c.id for c in table.closest(target, count)] == [c.id for c in everything[:count]]


def test_query_state_walks_closest_first_and_finishes() -> None:
    target = node_id(addr(5000))
    q = QueryState(target, k=3, exclude={addr(0)})
    for i in range(0, 10):
        q.add(addr(i))
    first = q.next(3)
    assert len(first) == 3 and addr(0) not in first
    ordered = sorted((addr(i) for i in range(1, 10)), key=lambda a: distance(node_id(a), target))
    assert first == ordered[:3]
    q.responded(first[0], True, b"t" * 32, [])
    q.failed(first[1])
    q.responded(first[2], False, None, [])  # ephemeral: answers but is no storage node
    assert not q.finished()
    rest = q.next(10)
    assert rest == ordered[3:5]  # the window: k closest not failed nor ephemeral
    for a in rest:
        q.responded(a, True, None, [])
    assert q.finished()
    assert [c.address for c in q.closest()] == [first[0], *rest]
    assert q.closest()[0].token == b"t" * 32


def test_record_store_caps_evict_oldest_first() -> None:
    kps = [KeyPair.generate() for _ in range(6)]
    topic = b"t" * 32
    store = RecordStore(record_ttl=10, value_ttl=10, max_per_topic=3, max_per_ip=4, max_records=5)

    def put(kp: KeyPair, ip: str, ts: int = 1, t: bytes = topic) -> ErrorCode:
        r = PeerRecord.sign(t, kp, [], ts)
        return store.announce(t, r, kp.public_key, ts, (ip, 1), 0.0)

    for kp in kps[:4]:
        assert put(kp, f"10.0.0.{kps.index(kp)}") == ErrorCode.OK
    keys = [r.public_key for r in store.lookup(topic, 0.0)]
    assert keys == [kp.public_key for kp in kps[1:4]]  # per topic: oldest evicted
    # per IP: one IP cannot take more than 4 slots across topics
    for i in range(6):
        put(kps[0], "10.9.9.9", t=bytes([i]) * 32)
    assert len(store) <= 5
    # total cap
    assert len(store) == 5


def test_record_store_counts_a_global_ip_once_and_a_shared_local_address_per_port() -> None:
    topic = b"t" * 32
    store = RecordStore(record_ttl=10, value_ttl=10, max_per_ip=2)

    def stored(host: str, ports: Iterable[int]) -> int:
        for port in ports:
            kp = KeyPair.generate()
            r = PeerRecord.sign(topic, kp, [], 1)
            assert store.announce(topic, r, kp.public_key, 1, (host, port), 0.0) == ErrorCode.OK
        return sum(1 for r in store.lookup(topic, 0.0) if r is not None)

    assert stored("8.8.8.8", range(1, 5)) == 2  # one global IP: one quota, whatever the port
    assert stored("127.0.0.1", range(1, 5)) == 2 + 4  # loopback: each port its own quota
    assert stored("127.0.0.1", [1, 1]) == 6 + 2 - 1  # one port over its quota: oldest out
    assert stored("10.1.2.3", [7, 8]) == 9


def test_record_store_keeps_a_keys_own_record_apart_from_its_topics_cap() -> None:
    owner = KeyPair.generate()
    topic = hash32(owner.public_key)
    store = RecordStore(record_ttl=10, value_ttl=10, max_per_topic=2)

    def put(kp: KeyPair, ts: int = 1) -> None:
        r = PeerRecord.sign(topic, kp, [], ts)
        assert store.announce(topic, r, kp.public_key, ts, ("10.0.0.1", ts), 0.0) == ErrorCode.OK

    put(owner)
    others = [KeyPair.generate() for _ in range(5)]
    for i, kp in enumerate(others):
        put(kp, 2 + i)
    keys = [r.public_key for r in store.lookup(topic, 0.0)]
    assert keys == [owner.public_key] + [kp.public_key for kp in others[-2:]]
    # a reply's sample keeps it, first; pages go by key, the owner's among them
    rng = random.Random(3)
    for _ in range(5):
        picked = store.sample(topic, 0.0, 2, rng)
        assert len(picked) == 2 and picked[0].public_key == owner.public_key
    ordered = sorted(keys)
    assert [r.public_key for r in store.page(topic, 0.0, b"", 2)] == ordered[:2]
    assert [r.public_key for r in store.page(topic, 0.0, ordered[1], 5)] == ordered[2:]
    # a removal by the owner takes it out like any other
    assert store.announce(topic, None, owner.public_key, 9, ("10.0.0.1", 1), 0.0) == ErrorCode.OK
    assert [r.public_key for r in store.lookup(topic, 0.0)] == keys[1:]


def test_record_store_orders_versions_and_expires() -> None:
    kp = KeyPair.generate()
    topic = b"t" * 32
    store = RecordStore(record_ttl=10, value_ttl=10)
    new = PeerRecord.sign(topic, kp, [], 200)
    old = PeerRecord.sign(topic, kp, [], 100)
    src = ("10.0.0.1", 5)
    assert store.announce(topic, new, kp.public_key, 200, src, 0.0) == ErrorCode.OK
    assert store.announce(topic, old, kp.public_key, 100, src, 0.0) == ErrorCode.STALE
    assert store.announce(topic, new, kp.public_key, 200, src, 0.0) == ErrorCode.OK  # resend
    assert store.source_of(kp.public_key, 1.0) == src
    assert store.announce(topic, None, kp.public_key, 300, src, 1.0) == ErrorCode.OK  # removal
    assert store.lookup(topic, 1.0) == []
    assert store.announce(topic, new, kp.public_key, 200, src, 1.0) == ErrorCode.STALE  # replay
    assert store.source_of(kp.public_key, 1.0) is None
    assert store.expire(11.5) == 1 and len(store) == 0


def test_record_store_mutable_rules() -> None:
    kp = KeyPair.generate()
    store = RecordStore(record_ttl=10, value_ttl=10)
    src = ("10.0.0.1", 5)
    v1 = MutableValue.sign(kp, b"one", 1)
    v2 = MutableValue.sign(kp, b"two", 2)
    assert store.put_mutable(v1, None, src, 0.0) == ErrorCode.OK
    assert store.put_mutable(v2, 0, src, 0.0) == ErrorCode.CAS_MISMATCH
    assert store.put_mutable(v2, 1, src, 0.0) == ErrorCode.OK
    assert store.put_mutable(v1, None, src, 0.0) == ErrorCode.SEQ_TOO_LOW
    assert (
        store.put_mutable(MutableValue.sign(kp, b"x", 2), None, src, 0.0) == ErrorCode.SEQ_TOO_LOW
    )
    assert store.get_mutable(v2.target, 0.0) == v2
    assert store.get_mutable(v2.target, 20.0) is None


def test_tokens_bind_the_ip_and_survive_one_rotation() -> None:
    tokens = Tokens()
    t = tokens.issue("10.0.0.1")
    assert tokens.check("10.0.0.1", t)
    assert not tokens.check("10.0.0.2", t)
    assert not tokens.check("10.0.0.1", None) and not tokens.check("10.0.0.1", b"x" * 32)
    tokens.rotate()
    assert tokens.check("10.0.0.1", t)
    tokens.rotate()
    assert not tokens.check("10.0.0.1", t)


def test_tokens_stay_right_past_the_cache_bound() -> None:
    tokens = Tokens(secret=b"s" * 32)
    hosts = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_CACHED + 10)]
    issued = {h: tokens.issue(h) for h in hosts}
    fresh = Tokens(secret=b"s" * 32)  # no cache: the reference
    assert all(fresh.issue(h) == t for h, t in issued.items())
    assert all(tokens.check(h, t) for h, t in issued.items())
    tokens.rotate()
    assert all(tokens.check(h, t) for h, t in issued.items())  # still one rotation back
    assert not tokens.check(hosts[0], issued[hosts[1]])


@pytest.mark.parametrize("count", [0, 1, 15, 16, 40])
def test_lookup_reply_is_a_msgpack_array_of_records(count: int) -> None:
    topic = bytes(32)
    records = [
        PeerRecord.sign(topic, KeyPair.generate(), [("10.0.0.1", 1000 + i)], i)
        for i in range(count)
    ]
    data = encode_lookup_reply(records)
    assert data == wire.pack([r.to_wire() for r in records])  # cached parts, same bytes
    assert decode_lookup_reply(data, 64) == records


def test_lookup_reply_skips_known_keys_only() -> None:
    topic = bytes(32)
    records = [
        PeerRecord.sign(topic, KeyPair.generate(), [("10.0.0.1", 1000 + i)], 1) for i in range(3)
    ]
    data = encode_lookup_reply(records)
    assert decode_lookup_reply(data, 10) == records
    assert decode_lookup_reply(data, 10, {records[1].public_key}) == [records[0], records[2]]


def test_nat_classification() -> None:
    local = ("192.168.1.5", 4000)
    assert classify([], local, None) is NatType.UNKNOWN
    assert classify([local], local, True) is NatType.OPEN
    assert classify([local], local, False) is NatType.FIREWALLED
    assert classify([local], local, None) is NatType.UNKNOWN
    pub = ("1.2.3.4", 6000)
    assert classify([pub, pub], local, False) is NatType.CONSISTENT
    assert classify([pub, ("1.2.3.4", 6001)], local, False) is NatType.RANDOM
    # a LAN neighbour sees our local address: it says nothing about the NAT
    assert classify([pub, local, pub], local, False) is NatType.CONSISTENT
    assert classify([("1.2.3.4", 4000)], ("0.0.0.0", 4000), True) is NatType.OPEN

    sampler = NatSampler(size=3)
    for i in range(5):
        sampler.add(("9.9.9.9", i), pub if i != 1 else ("1.2.3.4", 1))
    assert len(sampler) == 3 and sampler.public_address(local) == pub
    assert sampler.nat_type(local, False) is NatType.CONSISTENT


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.take(1.0) and not bucket.take(1.0)


def test_query_state_stays_bounded_but_always_takes_closer_candidates() -> None:
    target = node_id(addr(10_000))
    q = QueryState(target, k=4, exclude=set(), max_candidates=4)
    ranked = sorted((addr(i) for i in range(200)), key=lambda a: distance(node_id(a), target))
    far = ranked[-4:]
    for a in far:
        q.add(a)
    for a in q.next(4):  # everything queried: nothing left to evict
        q.responded(a, True, None, [])
    q.add(ranked[0])  # closer than all: must get in even though the state is full
    assert q.next(1) == [ranked[0]]
    for a in ranked[1:100]:
        q.add(a)
    assert len(q._sorted) == 5 + 4  # 4 queried + 1 in flight + the cap of new ones
    assert q.next(10) == ranked[1:4]  # the window: ranked[0] (in flight) and the next 3


def test_routing_table_finds_buckets_that_should_not_be_empty() -> None:
    own = node_id(addr(0))
    table = RoutingTable(own, k=4)
    for i in range(1, 400):
        a = addr(i)
        if bucket_index(own, node_id(a)) != 255:  # nobody in the far half: a blind spot
            table.add(node_id(a), a, 0.0)
    assert 255 in table.empty_buckets()
    assert 255 in table.idle_buckets(touched_before=0.0)
    table.touch_bucket(255, 5.0)
    assert 255 not in table.idle_buckets(touched_before=1.0)  # refreshed recently
    assert table.bucket_size(255) == 0
    full = RoutingTable(own, k=4)
    for i in range(1, 400):
        full.add(node_id(addr(i)), addr(i), 0.0)
    assert full.empty_buckets() == []
