"""Merkle proofs: everything a peer needs to trust one block knowing only the core's key.

A :class:`Proof` is self-contained: the block, the sibling hashes from its leaf up to the
full root that covers it, all full roots of the signed length, and the writer's
signature over them. :func:`verify_proof` checks it against the public key alone and
returns a :class:`VerifiedBlock`, which is what a replica may store. A proof without a
block (``index is None``) only proves a length: it is how a length upgrade travels.

Wire format (all integers little-endian; node indices are never sent, they follow from
``length`` and ``index``, so a decoder cannot be fed inconsistent ones)::

    u8 version=1 | u8 flags (1 = has block) | u64 fork | u64 length | 64 signature
    u8 root count | root count * (u64 size | 32 hash)
    [if has block: u64 index | u32 block size | block | u8 node count | nodes as roots]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from storage import flat_tree, merkle
from storage.errors import DecodeError, VerificationError
from storage.hashes import HASH_SIZE, signable, tree_hash
from storage.keypair import SIGNATURE_SIZE, verify
from storage.node import Node

VERSION = 1
MAX_BLOCK_SIZE = 15 * 1024 * 1024
MAX_LENGTH = 1 << 53  # far beyond any real log; keeps every size and index in u64
MAX_TREE_DEPTH = 64
MAX_PROOF_SIZE = 2 + 16 + SIGNATURE_SIZE + 2 * (1 + MAX_TREE_DEPTH * 40) + 12 + MAX_BLOCK_SIZE
_U64_MAX = (1 << 64) - 1
_HEAD = struct.Struct("<BBQQ")
_NODE = struct.Struct("<Q32s")
_BLOCK_HEAD = struct.Struct("<QI")
_HAS_BLOCK = 1


@dataclass(frozen=True)
class Proof:
    """A block (optional) with the hashes and signature that make it verifiable."""

    fork: int
    length: int
    signature: bytes
    roots: tuple[Node, ...]
    index: int | None = None
    block: bytes | None = None
    nodes: tuple[Node, ...] = ()  # siblings, from the leaf's sibling up to below its root

    def encode(self) -> bytes:
        has_block = self.index is not None and self.block is not None
        parts = [
            _HEAD.pack(VERSION, _HAS_BLOCK if has_block else 0, self.fork, self.length),
            self.signature,
            bytes([len(self.roots)]),
            *(_NODE.pack(r.size, r.hash) for r in self.roots),
        ]
        if has_block:
            assert self.block is not None and self.index is not None
            parts.append(_BLOCK_HEAD.pack(self.index, len(self.block)))
            parts.append(self.block)
            parts.append(bytes([len(self.nodes)]))
            parts.extend(_NODE.pack(n.size, n.hash) for n in self.nodes)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Proof:
        """Parse a proof; any malformed, oversized or inconsistent input is a DecodeError."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"a proof is bytes, not {type(data).__name__}")
        if len(data) > MAX_PROOF_SIZE:
            raise DecodeError("proof too large")
        buf = bytes(data)
        reader = _Reader(buf)
        version, flags, fork, length = reader.unpack(_HEAD)
        if version != VERSION or flags & ~_HAS_BLOCK:
            raise DecodeError(f"unknown proof version {version} / flags {flags}")
        if length > MAX_LENGTH:
            raise DecodeError("proof length out of range")
        signature = reader.take(SIGNATURE_SIZE)
        roots = reader.nodes(flat_tree.full_roots(2 * length))
        index: int | None = None
        block: bytes | None = None
        nodes: tuple[Node, ...] = ()
        if flags & _HAS_BLOCK:
            index, size = reader.unpack(_BLOCK_HEAD)
            if index >= length:
                raise DecodeError("proof block index past its length")
            if size > MAX_BLOCK_SIZE:
                raise DecodeError("proof block too large")
            block = reader.take(size)
            nodes = reader.nodes(flat_tree.path(2 * index, flat_tree.root_of(2 * index, length)))
        if not reader.done():
            raise DecodeError("trailing bytes after proof")
        return cls(fork, length, signature, roots, index, block, nodes)


class _Reader:
    """Bounds-checked cursor over proof bytes; every shortfall is a DecodeError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError("proof truncated")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        values: tuple[int, ...] = fmt.unpack(self.take(fmt.size))
        return values

    def nodes(self, indices: list[int]) -> tuple[Node, ...]:
        """Read a u8 count (which must be ``len(indices)``) and that many (size, hash)."""
        n = self.take(1)[0]
        if n != len(indices):
            raise DecodeError(f"proof carries {n} nodes where {len(indices)} are needed")
        out = []
        for i in indices:
            size, h = _NODE.unpack(self.take(_NODE.size))
            out.append(Node(i, size, h))
        return tuple(out)

    def done(self) -> bool:
        return self._pos == len(self._data)


@dataclass(frozen=True)
class VerifiedBlock:
    """What a valid proof establishes; every field is backed by the writer's signature."""

    fork: int
    length: int
    byte_length: int
    signature: bytes
    tree_hash: bytes
    roots: tuple[Node, ...]
    index: int | None
    block: bytes | None
    nodes: tuple[Node, ...]  # the leaf, its siblings and the parents computed from them


def verify_proof(public_key: bytes, proof: Proof) -> VerifiedBlock:
    """Check ``proof`` against ``public_key`` alone; raise VerificationError if it fails."""
    length = proof.length
    if not 0 <= length <= MAX_LENGTH or proof.fork < 0 or proof.fork > _U64_MAX:
        raise VerificationError("proof length or fork out of range")
    expected = flat_tree.full_roots(2 * length)
    if [r.index for r in proof.roots] != expected:
        raise VerificationError("proof roots are not the full roots of its length")
    for n in (*proof.roots, *proof.nodes):
        if len(n.hash) != HASH_SIZE or not 0 <= n.size <= _U64_MAX:
            raise VerificationError("malformed node in proof")
    total = merkle.byte_length(proof.roots)
    if total > _U64_MAX:
        raise VerificationError("proof sizes overflow")
    nodes: tuple[Node, ...] = ()
    if proof.index is not None or proof.block is not None:
        if proof.index is None or proof.block is None:
            raise VerificationError("proof has an index without a block or the reverse")
        if not 0 <= proof.index < length:
            raise VerificationError("proof block index past its length")
        if len(proof.block) > MAX_BLOCK_SIZE:
            raise VerificationError("proof block too large")
        leaf = merkle.leaf(proof.index, proof.block)
        root_index = flat_tree.root_of(leaf.index, length)
        if len(proof.nodes) != len(flat_tree.path(leaf.index, root_index)):
            raise VerificationError("proof path has the wrong number of nodes")
        if leaf.size + sum(n.size for n in proof.nodes) > _U64_MAX:
            raise VerificationError("proof sizes overflow")
        top, parents = merkle.climb(leaf, proof.nodes)
        root = proof.roots[expected.index(root_index)]
        if top != root:
            raise VerificationError("block does not hash up to the signed root")
        nodes = (leaf, *proof.nodes, *parents[:-1]) if parents else (leaf,)
    th = tree_hash(proof.roots)
    verify(public_key, signable(th, length, proof.fork), proof.signature)
    return VerifiedBlock(
        fork=proof.fork,
        length=length,
        byte_length=total,
        signature=proof.signature,
        tree_hash=th,
        roots=tuple(proof.roots),
        index=proof.index,
        block=proof.block,
        nodes=nodes,
    )
