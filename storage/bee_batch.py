"""An atomic group of writes to a Bee: one ``core.append`` at the end, or nothing.

A batch takes the core's write lock on its first operation and edits dirty
in-memory nodes; ``flush`` encodes each of them once, children first, and
appends everything in one atomic call. Small batches are one block. A big one
is cut so no block grows past about ``chunk_size`` bytes (reading one value
verifies its whole block): first blocks holding only entries, then blocks
holding the new nodes; only the last block's root is the new tree, the others
repeat the old root, so even a checkout never sees half a batch. Reads through
the batch see its own writes. Single ``put``/``delete`` calls are batches of one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from storage.bee_block import Block, encode_block
from storage.bee_entry import Entry
from storage.bee_node import OFFSET_BITS, OFFSET_MASK, Child, Node, Ref, encode_node
from storage.bee_tree import Tree
from storage.errors import (
    ClosedError,
    DecodeError,
    InvalidArgumentError,
    NotWritableError,
    StorageError,
)

if TYPE_CHECKING:
    from storage.bee import Bee

DEFAULT_CHUNK_SIZE = 64 * 1024  # a value read verifies its whole block: keep blocks small
DEFAULT_INLINE_SIZE = 64  # values up to this size are copied into the leaf nodes

Cas = Callable[[Entry, Any], Any]
"""``cas(previous_entry, new_entry_or_None) -> bool`` (or an awaitable of it)."""


class Batch:
    """Use as ``async with db.batch() as b: await b.put(k, v)``; an exception writes nothing.

    Without ``async with``, end it with ``flush()`` or ``discard()``: from its first
    operation until then it holds the write lock of the core.
    """

    def __init__(
        self,
        db: Bee,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        inline_size: int = DEFAULT_INLINE_SIZE,
    ) -> None:
        self._db = db
        self._src = db._source
        self._chunk_size = chunk_size
        self._inline_size = inline_size
        self._tree: Tree | None = None
        self._done = False
        self._failed: BaseException | None = None
        self._locked = False
        self._base = 0  # core length when the lock was taken: first seq this batch writes
        self._old_root: Ref | None = None  # the root before the batch
        self._entries: list[bytes | None] = []  # the open chunk: key, value, key, value, ...
        self._entry_bytes = 0
        self._blocks: list[bytes] = []  # blocks ready to append, in order
        self._decoded: list[Block] = []  # the same, decoded (reads, and the cache after)
        # Set by Bee.put/delete without cas: one operation, flushed at once, running no
        # app code while it holds the lock, so it cannot be re-entered by its own task
        # and needs not record itself as the writer (asyncio.current_task costs ~1 us).
        self._oneshot = False

    # -- context manager ---------------------------------------------------------

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._done or self._failed is not None:
            await self.flush()

    # -- operations ----------------------------------------------------------------

    async def put(self, key: Any, value: Any, cas: Cas | None = None) -> bool:
        """Set ``key``; with ``cas``, only if ``cas(previous, new)`` says so (False: skipped).

        As in Hyperbee, ``cas`` is asked only when the key already exists.
        """
        db = self._db
        k = db._encode_key(key)
        v = db._encode_value(value)
        tree = await self._begin()
        seq = self._base + len(self._blocks)  # the block that will hold this entry
        if cas is not None:
            found = await tree.get(k)
            if found is not None:
                prev = await self._entry(found[0], found[1])
                if not await _ask(cas, prev, Entry(seq, key, value)):
                    return False
        entries = self._entries
        ref = seq << OFFSET_BITS | len(entries) // 2  # make_ref
        try:
            entries += (k, v)
            self._entry_bytes += len(k) + len(v) + 8
            await tree.put(k, ref, v if len(v) <= self._inline_size else None)
        except BaseException as e:
            self._failed = e
            raise
        if self._entry_bytes >= self._chunk_size:
            self._cut_entries()
        return True

    async def delete(self, key: Any, cas: Cas | None = None) -> bool:
        """Remove ``key``; False if it was not there (or ``cas(previous, None)`` said no)."""
        db = self._db
        k = db._encode_key(key)
        tree = await self._begin()
        found = await tree.get(k)
        if found is None:
            return False
        if cas is not None:
            prev = await self._entry(found[0], found[1])
            if not await _ask(cas, prev, None):
                return False
        try:
            self._entries += (k, None)
            self._entry_bytes += len(k) + 8
            await tree.delete(k)
        except BaseException as e:
            self._failed = e
            raise
        self._cut_entries()
        return True

    async def get(self, key: Any) -> Entry | None:
        """Read ``key`` as this batch would leave it."""
        k = self._db._encode_key(key)
        tree = await self._begin()
        found = await tree.get(k)
        return None if found is None else await self._entry(found[0], found[1])

    async def flush(self) -> int:
        """Append everything in one atomic call; returns the new version."""
        try:
            self._check()
            self._done = True
            if self._tree is None:
                return self._db.version
            nodes = self._seal(self._tree) if self._entries or self._blocks else {}
            core = self._src.core
            if self._blocks:
                if core.length != self._base:
                    raise StorageError("the core was appended to outside this Bee during a batch")
                blocks = self._blocks
                length: int = await core.append(blocks[0] if len(blocks) == 1 else blocks)
                if length != self._base + len(self._blocks):
                    raise StorageError("the core was appended to outside this Bee during a batch")
                src = self._src
                if src.fork == core.fork:  # made hot: the next write reads this path
                    src.nodes.put_new(nodes)  # fresh refs: this block was just written
                    src.latest = (length, self._decoded[-1].root)
            return core.length
        finally:
            self._done = True
            self._release()

    def discard(self) -> None:
        """Drop every change of this batch and release the write lock."""
        self._done = True
        self._release()

    # -- internals -------------------------------------------------------------------

    def _check(self) -> None:
        if self._failed is not None:
            raise StorageError(f"batch failed earlier and wrote nothing: {self._failed!r}")
        if self._done:
            raise ClosedError("batch was already flushed or discarded")

    async def _begin(self) -> Tree:
        if self._tree is not None and self._failed is None and not self._done:
            return self._tree
        self._check()
        db, src = self._db, self._src
        if db._checkout is not None:
            raise NotWritableError("a checkout is read-only")
        core = src.core
        if not core.writable:
            raise NotWritableError("the core is a replica: only its owner can write")
        header = src.header
        if header is None or src.fork != core.fork or db._life.closed:
            header = await db._ready()
        assert header is not None  # a writable core always has one after ready
        task = None
        if not self._oneshot or src.lock.locked():
            task = asyncio.current_task()
            if src.writer is not None and src.writer is task:
                raise InvalidArgumentError("this task holds a batch on this Bee: write through it")
        await src.lock.acquire()
        src.writer = task
        self._locked = True
        try:
            self._check()
            if src.fork != core.fork:
                src.check_fork()
            self._base = base = core.length
            latest, root = src.latest
            self._old_root = root if latest == base and base > 1 else await src.root(base)
            # Until the flush everything new is a dirty node: the tree reads only the source.
            self._tree = Tree(src, self._old_root, header.max_keys)
        except BaseException:
            self._release()
            raise
        return self._tree

    def _release(self) -> None:
        self._tree = None
        if self._locked:
            self._locked = False
            self._src.writer = None
            self._src.lock.release()

    async def _entry(self, node: Node, i: int) -> Entry:
        key, ref, value = node.keys[i], node.values[i], node.inline[i]
        seq = ref >> OFFSET_BITS
        if value is not None:
            pass
        elif seq >= self._base:
            j = seq - self._base
            entries = self._entries if j == len(self._blocks) else self._decoded[j].entries
            value = entries[2 * (ref & OFFSET_MASK) + 1]
        else:
            stored_key, value = await self._src.entry(ref)
            if stored_key != key:
                raise DecodeError(f"entry {ref:#x} holds another key than the tree says")
        if value is None:
            raise DecodeError(f"the tree points {key!r} at a delete ({ref:#x})")
        return self._db._entry(seq, key, value)

    def _cut_entries(self) -> None:
        if self._entry_bytes >= self._chunk_size:  # a block of entries only
            self._close_block(self._entries, [], self._old_root)
            self._entries = []
            self._entry_bytes = 0

    def _close_block(self, entries: list[Any], nodes: list[bytes], root: Ref | None) -> None:
        seq = self._base + len(self._blocks)
        data = encode_block(seq, entries, nodes, root)
        self._blocks.append(data)
        self._decoded.append(Block(seq, entries, nodes, root, len(data)))

    def _seal(self, tree: Tree) -> dict[Ref, Node]:
        """Encode the dirty nodes, children first, into the last block(s) of the batch."""
        sealer = _Sealer(self)
        root: Child | None = tree.root
        if isinstance(root, Node):
            root = sealer.seal(root)
        self._close_block(sealer.entries, sealer.encoded, root)
        tree.root = root
        self._entries = []
        self._entry_bytes = 0
        return sealer.sealed


class _Sealer:
    """Turns a batch's dirty nodes into encoded ones, cutting blocks at the chunk size.

    (A class rather than a recursive closure: a closure that calls itself is a
    reference cycle, and a cycle per write keeps the garbage collector busy.)
    """

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.entries: list[Any] = batch._entries  # the open entries ride in the first block
        self.encoded: list[bytes] = []
        self.size = batch._entry_bytes
        self.sealed: dict[Ref, Node] = {}

    def seal(self, node: Node) -> Ref:
        children = node.children
        if children:
            kids: Sequence[int] | None = node.kids
            if kids is None:  # not tracked: find the dirty children
                kids = [i for i, c in enumerate(children) if type(c) is Node]
            elif len(kids) > 1:
                kids = sorted(kids)  # left to right, as a look at every child would find them
            for i in kids:
                kid: Any = children[i]  # a dirty Node (no cast(): it is a call at run time)
                children[i] = self.seal(kid)
        batch = self.batch
        if self.size >= batch._chunk_size:  # its children are in earlier blocks: fine
            batch._close_block(self.entries, self.encoded, batch._old_root)
            self.entries, self.encoded, self.size = [], [], 0
        encoded = self.encoded
        ref = (batch._base + len(batch._blocks)) << OFFSET_BITS | len(encoded)  # make_ref
        data = encode_node(node)
        encoded.append(data)
        self.size += len(data)
        node.dirty = False
        self.sealed[ref] = node
        return ref


async def _ask(cas: Cas, prev: Entry, new: Any) -> bool:
    answer = cas(prev, new)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)
