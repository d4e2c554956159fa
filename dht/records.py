"""Signed records: peer announcements, their removals, mutable and immutable values.

Every signature covers a domain prefix and the target it is stored under, so a
record signed for one topic cannot be replayed under another, and an announcement
cannot pass for a mutable value. Timestamps/seqs order versions: storing nodes keep
the newest and refuse anything older.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dht import wire
from dht.node_id import ID_SIZE, hash32
from dht.transport import Address
from storage.errors import VerificationError
from storage.keypair import SIGNATURE_SIZE, KeyPair, verify

MAX_RELAY_ADDRESSES = 8
MAX_IMMUTABLE_VALUE = 1000
MAX_MUTABLE_VALUE = 1000
MAX_SALT = 64
MAX_SEQ = 2**63 - 1
MAX_RECORD_BYTES = 512

_ANNOUNCE = b"peerswarm/announce/v1\x00"
_UNANNOUNCE = b"peerswarm/unannounce/v1\x00"
_MUTABLE = b"peerswarm/mutable/v1\x00"


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer of a topic: its key and the DHT nodes through which it can be reached.

    ``timestamp`` (milliseconds of the announcer's clock) is the record's sequence
    number: a newer announcement replaces an older one, never the reverse.
    """

    public_key: bytes
    relay_addresses: tuple[Address, ...]
    timestamp: int
    signature: bytes

    @property
    def seq(self) -> int:
        return self.timestamp

    @classmethod
    def sign(
        cls, topic: bytes, key_pair: KeyPair, relay_addresses: list[Address], timestamp: int
    ) -> PeerRecord:
        relays = tuple(relay_addresses[:MAX_RELAY_ADDRESSES])
        unsigned = cls(key_pair.public_key, relays, timestamp, b"")
        return cls(key_pair.public_key, relays, timestamp, key_pair.sign(unsigned.signable(topic)))

    def signable(self, topic: bytes) -> bytes:
        addrs = [wire.pack_address(a) for a in self.relay_addresses]
        return _ANNOUNCE + topic + wire.pack([self.public_key, addrs, self.timestamp])

    def verify(self, topic: bytes) -> None:
        """Raise :class:`VerificationError` unless signed by ``public_key`` for ``topic``."""
        verify(self.public_key, self.signable(topic), self.signature)

    def to_wire(self) -> list[Any]:
        addrs = [wire.pack_address(a) for a in self.relay_addresses]
        return [self.public_key, addrs, self.timestamp, self.signature]

    @classmethod
    def from_wire(cls, obj: Any) -> PeerRecord:
        pk, addrs, ts, sig = wire.array(obj, 4)
        return cls(
            wire.binary(pk, ID_SIZE),
            tuple(wire.unpack_addresses(addrs, MAX_RELAY_ADDRESSES)),
            wire.integer(ts, 0, MAX_SEQ),
            wire.binary(sig, SIGNATURE_SIZE),
        )

    def encode(self) -> bytes:
        return wire.pack(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> PeerRecord:
        return cls.from_wire(wire.unpack(data, MAX_RECORD_BYTES))


@dataclass(frozen=True, slots=True)
class Removal:
    """A signed request to drop ``public_key``'s announcement of a topic (unannounce)."""

    public_key: bytes
    timestamp: int
    signature: bytes

    @classmethod
    def sign(cls, topic: bytes, key_pair: KeyPair, timestamp: int) -> Removal:
        unsigned = cls(key_pair.public_key, timestamp, b"")
        return cls(key_pair.public_key, timestamp, key_pair.sign(unsigned.signable(topic)))

    def signable(self, topic: bytes) -> bytes:
        return _UNANNOUNCE + topic + wire.pack([self.public_key, self.timestamp])

    def verify(self, topic: bytes) -> None:
        verify(self.public_key, self.signable(topic), self.signature)

    def encode(self) -> bytes:
        return wire.pack([self.public_key, self.timestamp, self.signature])

    @classmethod
    def decode(cls, data: bytes) -> Removal:
        pk, ts, sig = wire.array(wire.unpack(data, MAX_RECORD_BYTES), 3)
        return cls(
            wire.binary(pk, ID_SIZE), wire.integer(ts, 0, MAX_SEQ), wire.binary(sig, SIGNATURE_SIZE)
        )


@dataclass(frozen=True, slots=True)
class MutableValue:
    """A BEP 44 style mutable item: stored under BLAKE2b-256(public_key + salt)."""

    public_key: bytes
    salt: bytes
    seq: int
    value: bytes
    signature: bytes

    @property
    def target(self) -> bytes:
        return mutable_target(self.public_key, self.salt)

    @classmethod
    def sign(cls, key_pair: KeyPair, value: bytes, seq: int, salt: bytes = b"") -> MutableValue:
        unsigned = cls(key_pair.public_key, salt, seq, value, b"")
        return cls(key_pair.public_key, salt, seq, value, key_pair.sign(unsigned.signable()))

    def signable(self) -> bytes:
        return _MUTABLE + wire.pack([self.salt, self.seq, self.value])

    def verify(self) -> None:
        if len(self.value) > MAX_MUTABLE_VALUE or len(self.salt) > MAX_SALT:
            raise VerificationError("mutable value or salt too large")
        verify(self.public_key, self.signable(), self.signature)

    def to_wire(self) -> list[Any]:
        return [self.public_key, self.salt, self.seq, self.value, self.signature]

    @classmethod
    def from_wire(cls, obj: Any) -> MutableValue:
        pk, salt, seq, value, sig = wire.array(obj, 5)
        return cls(
            wire.binary(pk, ID_SIZE),
            wire.binary(salt, max_size=MAX_SALT),
            wire.integer(seq, 0, MAX_SEQ),
            wire.binary(value, max_size=MAX_MUTABLE_VALUE),
            wire.binary(sig, SIGNATURE_SIZE),
        )

    def encode(self) -> bytes:
        return wire.pack(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> MutableValue:
        return cls.from_wire(wire.unpack(data, 2048))


def mutable_target(public_key: bytes, salt: bytes = b"") -> bytes:
    return hash32(public_key + salt)


def encode_mutable_put(value: MutableValue, cas: int | None) -> bytes:
    return wire.pack([value.to_wire(), cas])


def decode_mutable_put(data: bytes) -> tuple[MutableValue, int | None]:
    record, cas = wire.array(wire.unpack(data, 2048), 2)
    return MutableValue.from_wire(record), None if cas is None else wire.integer(cas, 0, MAX_SEQ)


@lru_cache(maxsize=4096)
def _packed(record: PeerRecord) -> bytes:
    return wire.pack(record.to_wire())


def encode_lookup_reply(records: list[PeerRecord]) -> bytes:
    """A msgpack array of records, each packed once while it is stored (every lookup
    of its topic sends it)."""
    count = len(records)
    header = bytes([0x90 | count]) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return header + b"".join(_packed(r) for r in records)


def lookup_reply_count(data: bytes) -> int:
    """How many records a LOOKUP reply says it holds, from its array header alone
    (0 for anything else: decoding it says what is wrong)."""
    if not data:
        return 0
    if 0x90 <= data[0] <= 0x9F:
        return data[0] & 0x0F
    if data[0] == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big")
    return 0


def decode_lookup_reply(
    data: bytes, max_records: int, known: Collection[bytes] = ()
) -> list[PeerRecord]:
    """The records of a LOOKUP reply, but those by a public key in ``known``: a lookup
    hears the same records from every node near the topic and keeps the first."""
    obj = wire.unpack(data, max_records * MAX_RECORD_BYTES)
    return [
        PeerRecord.from_wire(r)
        for r in wire.array(obj, max_length=max_records)
        if not (known and isinstance(r, list) and r and r[0] in known)
    ]


def encode_forwarded(client: Address, payload: bytes) -> bytes:
    return wire.pack([wire.pack_address(client), payload])


def decode_forwarded(data: bytes, max_payload: int) -> tuple[Address, bytes]:
    client, payload = wire.array(wire.unpack(data, max_payload + 64), 2)
    return wire.unpack_address(client), wire.binary(payload, max_size=max_payload)
