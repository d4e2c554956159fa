"""Core: a signed, append-only log of blocks, verifiable block by block (Hypercore v10).

On-disk layout (named databases of the store's single LMDB environment). Every core gets
a 4-byte id when first stored; ``P`` below is that id big-endian, and indices are u64
big-endian so one core's keys are contiguous and sorted:

    cores      public key           -> header: fork, length, byte_length, signature,
                                       core id, secret key if we have it, appended run
                                       (storage.header)
    discovery  discovery key        -> public key (peers speak in discovery keys)
    blocks     P || u64 index       -> block bytes
    nodes      P || u64 flat index  -> u64 size || 32-byte hash of that Merkle tree node
    bitfield   P || u64 page        -> 1 KiB page of "block is held" bits (storage.bitfield)

Which blocks are held is the bitfield pages plus the header's appended run: an append
only rewrites the header (which it must anyway), not a bitfield page; truncations and
verified puts write the pages they change.

A writer holds every block below ``length``; a replica holds any subset (the bitfield)
and the tree nodes its proofs carried. Tree nodes are stored once, when they become
complete, so tree hashes and proofs never need recomputation. Each append, truncate or
verified put is one LMDB transaction; memory (roots, bitfield, header) changes only after
it committed, which is what makes every acknowledged append durable.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from storage import flat_tree, merkle
from storage.bitfield import Bitfield
from storage.errors import (
    BlockNotAvailableError,
    BlockTooLargeError,
    ClosedError,
    CorruptionError,
    ForkMismatchError,
    InvalidArgumentError,
    NotWritableError,
    OutOfRangeError,
    StorageError,
    VerificationError,
)
from storage.hashes import discovery_key, leaf_hash, signable, tree_hash, tree_hash_states
from storage.header import Header
from storage.keypair import KeyPair
from storage.node import Node, decode_value
from storage.proof import MAX_BLOCK_SIZE, Proof, VerifiedBlock, verify_proof
from storage.resource import AsyncResource
from storage.snapshot import Snapshot

if TYPE_CHECKING:
    from storage.store import Store

__all__ = ["MAX_BLOCK_SIZE", "Core"]

log = logging.getLogger(__name__)

_U64BE = struct.Struct(">Q")
_U32BE = struct.Struct(">I")
_U64LE = struct.Struct("<Q")
_KEY = struct.Struct(">IQ")  # core id, index: the key of a block, node or bitfield page

BlockInput = bytes | bytearray | memoryview


def _blocks_of(blocks: BlockInput | Iterable[BlockInput]) -> list[bytes]:
    if isinstance(blocks, str):
        raise InvalidArgumentError("a block is bytes, not str")
    items: Iterable[Any] = (
        [blocks] if isinstance(blocks, bytes | bytearray | memoryview) else blocks
    )
    out: list[bytes] = []
    for b in items:
        if not isinstance(b, bytes | bytearray | memoryview):
            raise InvalidArgumentError(f"a block is bytes, not {type(b).__name__}")
        if len(b) > MAX_BLOCK_SIZE:
            raise BlockTooLargeError(f"block of {len(b)} bytes exceeds {MAX_BLOCK_SIZE}")
        out.append(bytes(b))
    return out


def _outside(keep: Sequence[Node]) -> list[tuple[int, int | None]]:
    """Block ranges ``[a, b)`` (``b=None``: to the end) not under any of ``keep``'s roots."""
    out: list[tuple[int, int | None]] = []
    lo = 0
    for r in keep:
        a, b = flat_tree.spans(r.index)
        if a // 2 > lo:
            out.append((lo, a // 2))
        lo = b // 2 + 1
    out.append((lo, None))
    return out


class Core(AsyncResource):
    """One append-only log. Get it from :meth:`Store.core`, then ``await core.ready()``."""

    def __init__(self, store: Store, key_pair: KeyPair) -> None:
        self._store = store
        self._kp = key_pair
        self.key: bytes = key_pair.public_key
        self.discovery_key: bytes = discovery_key(self.key)
        self._header = Header(core_id=0)
        self._prefix = b""
        self._roots: list[Node] = []
        # tree_hash_states of _states_of (valid while that is still self._roots)
        self._states: list[Any] = []
        self._states_of: list[Node] | None = None
        self._bitfield = Bitfield()
        self._ready = False
        self._closed = False
        self._version = 0
        self._change: asyncio.Future[None] | None = None
        self._waiters: dict[int, list[asyncio.Future[bytes]]] = {}
        self._on_append: list[Callable[[int], object]] = []
        self._on_truncate: list[Callable[[int, int], object]] = []
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()

    # -- lifecycle -----------------------------------------------------------------

    async def _enter(self) -> None:
        await self.ready()

    async def ready(self) -> None:
        """Load (or create) the core's header, roots and bitfield."""
        if self._closed:
            raise ClosedError("core is closed")
        if self._ready:
            return
        await self._store.ready()
        header = self._store.write(self._load_header)
        if header.secret_key is not None and not self._kp.can_sign:
            kp = KeyPair.from_secret_key(header.secret_key)
            if kp.public_key != self.key:
                raise CorruptionError("stored secret key belongs to another core")
            self._kp = kp
        self._header = header
        self._prefix = _U32BE.pack(header.core_id)
        with self._store.read() as txn:
            self._roots = self._read_nodes(txn, flat_tree.full_roots(2 * header.length))
            self._bitfield = Bitfield(
                {_U64BE.unpack(k[4:])[0]: bytes(v) for k, v in self._scan(txn, "bitfield", 0, None)}
            )
        self._bitfield.fill(header.appended_from, header.length)  # held, pages not rewritten
        self._ready = True

    def _load_header(self, txn: Any) -> Header:
        dbs = self._store._dbs
        raw = txn.get(self.key, db=dbs["cores"])
        if raw is None:
            header = Header(core_id=self._store.next_core_id(txn))
            if self._kp.can_sign:
                sig = self._kp.sign(signable(tree_hash([]), 0, 0))
                header = header._replace(signature=sig, secret_key=self._kp.secret_key)
            txn.put(self.discovery_key, self.key, db=dbs["discovery"])
        else:
            header = Header.decode(raw)
            if header.secret_key is not None or not self._kp.can_sign:
                return header
            header = header._replace(secret_key=self._kp.secret_key)
            if not header.signature and header.length == 0:
                sig = self._kp.sign(signable(tree_hash([]), 0, header.fork))
                header = header._replace(signature=sig)
        txn.put(self.key, header.encode(), db=dbs["cores"])
        return header

    def _adopt_key_pair(self, kp: KeyPair) -> None:
        """Become writable when the secret key turns up for a core opened by public key."""
        if self._kp.can_sign or kp.public_key != self.key:
            return
        self._kp = kp
        if self._ready:
            header = self._header._replace(secret_key=kp.secret_key)
            self._store.write(lambda txn: self._put_header(txn, header))
            self._header = header

    async def close(self) -> None:
        """Stop using this core: wakes every waiter with ClosedError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.set_exception(ClosedError("core closed"))
        self._waiters.clear()
        self._changed()
        self._store._forget(self.key)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("core is closed")
        if not self._ready:
            raise StorageError("core is not ready: await core.ready() first")

    # -- state -----------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._kp.can_sign

    @property
    def key_pair(self) -> KeyPair:
        return self._kp

    @property
    def length(self) -> int:
        return self._header.length

    @property
    def byte_length(self) -> int:
        return self._header.byte_length

    @property
    def fork(self) -> int:
        return self._header.fork

    @property
    def signature(self) -> bytes:
        """The writer's signature over the current length (``b""`` on an empty replica)."""
        return self._header.signature

    @property
    def contiguous_length(self) -> int:
        """How many blocks from the start are held locally without a gap."""
        return self._bitfield.find(0, self.length, False)

    def roots(self, length: int | None = None) -> list[Node]:
        """The full roots of the tree at ``length`` (default: now)."""
        self._check()
        if length is None or length == self.length:
            return list(self._roots)
        if not 0 <= length <= self.length:
            raise OutOfRangeError(f"length {length} outside 0..{self.length}")
        with self._store.read() as txn:
            return self._read_nodes(txn, flat_tree.full_roots(2 * length))

    def tree_hash(self, length: int | None = None) -> bytes:
        """The hash the signature covers; equals Hypercore's for the same blocks."""
        return tree_hash(self.roots(length))

    def has(self, index: int) -> bool:
        return self._bitfield.get(index) if index >= 0 else False

    def missing_ranges(self, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """Ranges ``[a, b)`` inside ``[start, end or length)`` with no block held."""
        stop = self.length if end is None else end
        return list(self._bitfield.ranges(max(0, start), stop, False))

    # -- write -----------------------------------------------------------------------

    async def append(self, blocks: BlockInput | Iterable[BlockInput]) -> int:
        """Append one block, or a batch atomically; returns the new length once durable."""
        if not self._ready:
            await self.ready()
        if self._closed:
            raise ClosedError("core is closed")
        kp = self._kp
        if not kp.can_sign:
            raise NotWritableError("core has no secret key: it is a replica")
        if type(blocks) is bytes and len(blocks) <= MAX_BLOCK_SIZE:  # the common case
            batch = [blocks]
            added = len(blocks)
        else:
            batch = _blocks_of(blocks)
            if not batch:
                return self._header.length
            added = sum(map(len, batch))
        old = self._header
        start = old.length
        old_roots = self._roots
        nodes, roots = merkle.append(old_roots, start, batch)
        length = start + len(batch)
        if self._states_of is not old_roots:
            keep = 0  # hash every root
        elif len(batch) == 1:
            keep = len(roots) - 1  # one block: only the last root is new
        else:
            keep = 0
            most = min(len(roots), len(old_roots))
            while keep < most and roots[keep] is old_roots[keep]:
                keep += 1
        states = tree_hash_states(roots, self._states, keep)
        signature = kp.sign(signable(states[-1].digest(), length, old.fork))
        # The new blocks join the appended run (see Header): no bitfield page to rewrite.
        header = Header(
            old.core_id,
            old.fork,
            length,
            old.byte_length + added,
            signature,
            old.secret_key,
            old.appended_from,
        )
        dbs = self._store._dbs
        core_id, key = header.core_id, _KEY.pack

        def write(txn: Any) -> None:
            put = txn.put
            db = dbs["blocks"]
            for i, block in enumerate(batch, start):
                put(key(core_id, i), block, db=db)
            db = dbs["nodes"]
            for n in nodes:
                put(key(core_id, n.index), n.encode_value(), db=db)
            put(self.key, header.encode(), db=dbs["cores"])

        self._store.write(write)
        self._header, self._roots = header, roots
        self._states, self._states_of = states, roots
        self._bitfield.fill(start, length)
        if self._waiters:
            for i, block in enumerate(batch, start):
                self._wake(i, block)
        self._appended(length)
        return length

    async def truncate(self, new_length: int) -> None:
        """Cut the log to ``new_length`` blocks; bumps the fork and re-signs."""
        await self.ready()
        self._check()
        if not self.writable:
            raise NotWritableError("core has no secret key: it is a replica")
        old = self._header
        if not 0 <= new_length <= old.length:
            raise InvalidArgumentError(f"cannot truncate a log of {old.length} to {new_length}")
        roots = self.roots(new_length)
        fork = old.fork + 1
        signature = self._kp.sign(signable(tree_hash(roots), new_length, fork))
        header = old._replace(
            fork=fork,
            length=new_length,
            byte_length=merkle.byte_length(roots),
            signature=signature,
            appended_from=min(old.appended_from, new_length),
        )
        upper = max(old.length, self._bitfield.end())
        bits = self._bitfield.changes(new_length, upper, False)

        def write(txn: Any) -> None:
            self._retain(txn, roots)
            self._put_bits(txn, bits)
            self._put_header(txn, header)

        self._store.write(write)
        self._header, self._roots = header, roots
        self._bitfield.apply(bits)
        self._truncated(new_length)

    def _retain(self, txn: Any, keep: Sequence[Node]) -> None:
        """Delete every block and node that is not under one of the ``keep`` roots."""
        for a, b in _outside(keep):
            self._delete(txn, "blocks", a, b)
        lo = 0  # nodes: the gaps between the roots' spans, even between adjacent roots
        for r in keep:
            left, right = flat_tree.spans(r.index)
            self._delete(txn, "nodes", lo, left)
            lo = right + 1
        self._delete(txn, "nodes", lo, None)

    # -- read ------------------------------------------------------------------------

    async def get(
        self,
        index: int,
        *,
        wait: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109 (the API contract names it)
    ) -> bytes:
        """Block ``index``; on a replica, waits until a peer delivers it (or ``timeout``)."""
        if not self._ready:
            await self.ready()
        self._check()
        if index < 0:
            raise OutOfRangeError(f"block index {index} is negative")
        if self._bitfield.get(index):
            return self._read_block(index)
        if self.writable and index >= self.length:
            raise OutOfRangeError(f"block {index} is past the length {self.length}")
        if not wait:
            raise BlockNotAvailableError(f"block {index} is not stored locally")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(index, []).append(fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise BlockNotAvailableError(f"block {index} did not arrive in time") from None
        finally:
            waiting = self._waiters.get(index)
            if waiting is not None and fut in waiting:
                waiting.remove(fut)
                if not waiting:
                    del self._waiters[index]

    def _read_block(self, index: int, txn: Any = None) -> bytes:
        """Block ``index`` from disk, checked against its stored leaf (size and hash).

        The check is what catches a block damaged on disk; it costs one BLAKE2b pass
        (about 1.5 us per KiB) and one compare of the stored 40-byte node value.
        """
        core_id, dbs = self._header.core_id, self._store._dbs
        key = _KEY.pack
        if txn is None:
            block, raw = self._store._get_pair(
                dbs["blocks"], key(core_id, index), dbs["nodes"], key(core_id, 2 * index)
            )
        else:
            block = txn.get(key(core_id, index), db=dbs["blocks"])
            raw = txn.get(key(core_id, 2 * index), db=dbs["nodes"])
        if block is None or raw is None:
            raise CorruptionError(f"block {index} is marked as held but is missing")
        # The stored value is u64 size || hash (storage.node): build the expected one.
        if raw != _U64LE.pack(len(block)) + leaf_hash(block):
            raise CorruptionError(f"block {index} does not match its stored hash")
        return bytes(block)

    async def read(
        self, start: int = 0, end: int | None = None, live: bool = False
    ) -> AsyncIterator[bytes]:
        """Blocks ``start`` to ``end`` (default: the length now; with ``live``, forever)."""
        await self.ready()
        stop = end if end is not None or live else self.length
        i = start
        while stop is None or i < stop:
            if i >= self.length:
                if not live:
                    return
                if not await self._wait_change():
                    return
                continue
            yield await self.get(i)
            i += 1

    async def download(
        self,
        start: int = 0,
        end: int | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (mirrors get's)
    ) -> None:
        """Wait until blocks ``[start, end)`` are held locally.

        Placeholder until replication lands: it fetches nothing itself, it waits for
        :meth:`put_verified` (the replicator) to fill the range.
        """
        await self.ready()
        stop = self.length if end is None else end
        try:
            async with asyncio.timeout(timeout):
                for a, b in self.missing_ranges(start, stop):
                    for i in range(a, b):
                        await self.get(i)
        except TimeoutError:
            raise BlockNotAvailableError(f"blocks {start}..{stop} did not arrive in time") from None

    def snapshot(self) -> Snapshot:
        """A read view fixed at today's length (a later truncation invalidates the cut part)."""
        self._check()
        snap = Snapshot(self)
        self._snapshots.add(snap)
        return snap

    # -- events ----------------------------------------------------------------------

    def on_append(self, callback: Callable[[int], object]) -> Callable[[], None]:
        """Call ``callback(new_length)`` after each committed append or length upgrade.

        Returns a function that unsubscribes. Callbacks run synchronously; exceptions
        are logged, never raised into the writer.
        """
        self._on_append.append(callback)
        return lambda: self._on_append.remove(callback) if callback in self._on_append else None

    def on_truncate(self, callback: Callable[[int, int], object]) -> Callable[[], None]:
        """Call ``callback(new_length, fork)`` after a truncation (local or from a peer)."""
        self._on_truncate.append(callback)
        return lambda: self._on_truncate.remove(callback) if callback in self._on_truncate else None

    async def updates(self) -> AsyncIterator[int]:
        """Yield the length after every change (append, truncate, upgrade); coalesces bursts.

        Ends when the core closes.
        """
        await self.ready()
        seen = self._version
        while not self._closed:
            if self._version == seen and not await self._wait_change():
                return
            seen = self._version
            yield self.length

    def _changed(self) -> None:
        self._version += 1
        fut, self._change = self._change, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _wait_change(self) -> bool:
        """Wait for the next change; False if the core closed instead."""
        if self._closed:
            return False
        loop = asyncio.get_running_loop()
        if self._change is None or self._change.get_loop() is not loop:
            self._change = loop.create_future()
        await asyncio.shield(self._change)
        return not self._closed

    def _appended(self, length: int) -> None:
        self._changed()
        for cb in list(self._on_append):
            try:
                cb(length)
            except Exception:
                log.exception("on_append callback failed")

    def _truncated(self, length: int) -> None:
        for snap in list(self._snapshots):
            snap._invalidate(length)
        self._changed()
        for cb in list(self._on_truncate):
            try:
                cb(length, self.fork)
            except Exception:
                log.exception("on_truncate callback failed")

    def _wake(self, index: int, block: bytes) -> None:
        for f in self._waiters.pop(index, []):
            if not f.done():
                f.set_result(block)

    # -- proofs and replication ------------------------------------------------------

    def proof(self, index: int | None = None, length: int | None = None) -> Proof:
        """A self-contained proof of block ``index`` at ``length`` (default: now).

        ``index=None`` proves only the length (an upgrade). A writer can prove any past
        length of its current fork (it signs it on demand); a replica proves only the
        length it holds a signature for. Raises BlockNotAvailableError when the block or
        a tree node it needs is not held.
        """
        self._check()
        header = self._header
        at = header.length if length is None else length
        if not 0 <= at <= header.length:
            raise OutOfRangeError(f"length {at} outside 0..{header.length}")
        if index is not None and not 0 <= index < at:
            raise OutOfRangeError(f"block {index} is not below the length {at}")
        with self._store.read() as txn:
            roots = (
                self._roots
                if at == header.length
                else self._read_nodes(txn, flat_tree.full_roots(2 * at))
            )
            block: bytes | None = None
            nodes: list[Node] = []
            if index is not None:
                if not self._bitfield.get(index):
                    raise BlockNotAvailableError(f"block {index} is not stored locally")
                block = self._read_block(index, txn)
                leaf = 2 * index
                nodes = self._read_nodes(txn, flat_tree.path(leaf, flat_tree.root_of(leaf, at)))
        if at == header.length and header.signature:
            signature = header.signature
        elif self.writable:
            signature = self._kp.sign(signable(tree_hash(roots), at, header.fork))
        else:
            raise BlockNotAvailableError(f"no signature held for length {at}")
        return Proof(header.fork, at, signature, tuple(roots), index, block, tuple(nodes))

    async def put_verified(self, proof: Proof | bytes) -> bool:
        """Verify a proof from a peer and store what it proves (replicas only).

        Stores the block (holes allowed) and every tree node the proof establishes,
        upgrades length and signature when the proof is signed for a newer length or a
        newer fork (dropping local data that the new fork no longer contains), and wakes
        ``get()`` waiters. A proof of a block already held still adds the tree nodes
        that were missing, so the replica can serve that block at its current length.
        Returns whether anything new was learned. Raises
        VerificationError (stored data untouched) when the proof does not check out,
        ForkMismatchError when it is from an older fork.
        """
        await self.ready()
        self._check()
        if self.writable:
            raise InvalidArgumentError("a writable core is its own source; it takes no proofs")
        p = proof if isinstance(proof, Proof) else Proof.decode(proof)
        vb = verify_proof(self.key, p)
        old = self._header
        if vb.fork < old.fork:
            raise ForkMismatchError(f"proof is for fork {vb.fork}, core is at fork {old.fork}")
        reorg = vb.fork > old.fork
        upgrade = reorg or vb.length > old.length
        dbs = self._store._dbs
        with self._store.read() as txn:
            stored = {n.index: self._get_node(txn, n.index) for n in (*vb.roots, *vb.nodes)}
        new_block = vb.index is not None and not self._bitfield.get(vb.index)
        new_nodes = any(v is None for v in stored.values())
        if not (upgrade or new_block or new_nodes):
            return False
        kept = [r for r in vb.roots if stored[r.index] == r] if reorg else []
        if not reorg:
            for n in (*vb.roots, *vb.nodes):
                if stored[n.index] is not None and stored[n.index] != n:
                    raise VerificationError(
                        f"node {n.index} conflicts with the stored tree: the writer "
                        f"signed two different logs in fork {vb.fork}"
                    )
        header = old
        if upgrade:
            header = old._replace(
                fork=vb.fork,
                length=vb.length,
                byte_length=vb.byte_length,
                signature=vb.signature,
                appended_from=vb.length,  # a replica appends nothing: its run is empty
            )
        bitfield = self._bitfield.copy() if reorg else self._bitfield
        bits: dict[int, bytes | None] = {}
        if reorg:  # clear what the new fork no longer vouches for, on a copy
            for a, b in _outside(kept):
                change = bitfield.changes(a, max(a, bitfield.end()) if b is None else b, False)
                bitfield.apply(change)
                bits.update(change)
        if vb.index is not None and (new_block or reorg):
            change = bitfield.changes(vb.index, vb.index + 1, True)
            bits.update(change)
            if reorg:
                bitfield.apply(change)
        prefix = self._prefix

        def write(txn: Any) -> None:
            if reorg:
                self._retain(txn, kept)
            for n in (*vb.roots, *vb.nodes):
                txn.put(prefix + _U64BE.pack(n.index), n.encode_value(), db=dbs["nodes"])
            if vb.index is not None and vb.block is not None:
                txn.put(prefix + _U64BE.pack(vb.index), vb.block, db=dbs["blocks"])
            self._put_bits(txn, bits)
            if header is not old:
                self._put_header(txn, header)

        self._store.write(write)
        self._header = header
        if reorg:
            self._bitfield = bitfield
        else:
            self._bitfield.apply(bits)
        if upgrade:
            self._roots = list(vb.roots)
        if reorg:
            shared = 0
            for r in vb.roots:
                if r not in kept:
                    break
                shared = flat_tree.right_span(r.index) // 2 + 1
            if shared < old.length:
                self._truncated(shared)
        if vb.index is not None and vb.block is not None:
            self._wake(vb.index, vb.block)
        if upgrade:
            self._appended(vb.length)
        elif new_block:
            self._changed()
        return True

    def verify(self, proof: Proof) -> VerifiedBlock:
        """Check a proof against this core's key without storing anything."""
        return verify_proof(self.key, proof)

    # -- LMDB helpers ----------------------------------------------------------------

    def _get_node(self, txn: Any, index: int) -> Node | None:
        raw = txn.get(self._prefix + _U64BE.pack(index), db=self._store._dbs["nodes"])
        return None if raw is None else decode_value(index, raw)

    def _read_nodes(self, txn: Any, indices: Iterable[int]) -> list[Node]:
        out: list[Node] = []
        for i in indices:
            node = self._get_node(txn, i)
            if node is None:
                raise BlockNotAvailableError(f"tree node {i} is not stored locally")
            out.append(node)
        return out

    def _put_header(self, txn: Any, header: Header) -> None:
        txn.put(self.key, header.encode(), db=self._store._dbs["cores"])

    def _put_bits(self, txn: Any, pages: dict[int, bytes | None]) -> None:
        db = self._store._dbs["bitfield"]
        for number, data in pages.items():
            key = self._prefix + _U64BE.pack(number)
            if data is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, data, db=db)

    def _scan(self, txn: Any, db: str, lo: int, hi: int | None) -> Iterable[tuple[bytes, Any]]:
        """Key/value pairs of this core in ``db`` with index in ``[lo, hi)``."""
        cur = txn.cursor(db=self._store._dbs[db])
        end = None if hi is None else self._prefix + _U64BE.pack(hi)
        if not cur.set_range(self._prefix + _U64BE.pack(lo)):
            return
        for k, v in cur:
            if not k.startswith(self._prefix) or (end is not None and k >= end):
                return
            yield k, v

    def _delete(self, txn: Any, db: str, lo: int, hi: int | None) -> None:
        if hi is not None and hi <= lo:
            return
        cur = txn.cursor(db=self._store._dbs[db])
        end = None if hi is None else self._prefix + _U64BE.pack(hi)
        if not cur.set_range(self._prefix + _U64BE.pack(lo)):
            return
        while True:
            k = cur.key()
            if not k.startswith(self._prefix) or (end is not None and k >= end):
                return
            if not cur.delete():
                return

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "replica"
        return f"Core(key={self.key.hex()[:16]}…, length={self.length}, {mode})"
