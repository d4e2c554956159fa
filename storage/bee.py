"""Bee: an append-only B-tree key-value database stored in a Core.

Block 0 of the core is a header saying "this is a Bee"; every write after it
(a put, a delete, a batch) appends one block holding its entries and the tree
nodes it changed, which point to older nodes by ``(seq, offset)``. So:

- every past version stays readable: ``checkout(version)`` reads the root the
  block ``version - 1`` recorded;
- a sparse replica answers ``get``/``range`` by fetching only the blocks on the
  path it walks (``core.get`` pulls them from peers);
- the history of the database is the log itself.

Keys are stored in byte order (encodings decide the bytes); ``sub(name)`` views
prefix keys with ``name + b"\\x00"`` so sibling sub-databases never overlap.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from storage.bee_batch import DEFAULT_CHUNK_SIZE, DEFAULT_INLINE_SIZE, Batch, Cas
from storage.bee_block import Header
from storage.bee_diff import KeyRef, diff
from storage.bee_encoding import Codec, codec, decode, encode, fast_decoder
from storage.bee_entry import Change, Diff, Entry, Update
from storage.bee_node import OFFSET_BITS, Ref
from storage.bee_source import DEFAULT_BLOCK_CACHE, DEFAULT_NODE_CACHE, source_of
from storage.bee_tree import find, spans
from storage.core import Core
from storage.errors import (
    ClosedError,
    DecodeError,
    EncodingError,
    InvalidArgumentError,
    NotWritableError,
    OutOfRangeError,
)
from storage.resource import AsyncResource

__all__ = ["Bee", "Change", "Diff", "Entry", "Update", "Watch"]

SEPARATOR = b"\x00"
DEFAULT_MAX_KEYS = 64
DEFAULT_MAX_KEY_SIZE = 4096

Bounds = tuple[bytes | None, bool, bytes | None, bool]


class _Life:
    """Shared by a Bee and its views: closed once, and who to wake when it closes."""

    def __init__(self) -> None:
        self.closed = False
        self.wakers: set[asyncio.Event] = set()


class Bee(AsyncResource):
    """A B-tree key-value database in ``core``; see the module docstring for the format.

    ``max_keys`` (fan-out) and ``metadata`` are written to the header when the Bee is
    created; an existing Bee keeps the fan-out it was created with.
    """

    def __init__(
        self,
        core: Core,
        key_encoding: str | Codec | None = "utf-8",
        value_encoding: str | Codec | None = "json",
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        metadata: Any = None,
        max_key_size: int = DEFAULT_MAX_KEY_SIZE,
        node_cache: int = DEFAULT_NODE_CACHE,
        block_cache: int = DEFAULT_BLOCK_CACHE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        inline_size: int = DEFAULT_INLINE_SIZE,
    ) -> None:
        if type(max_keys) is not int or max_keys < 2:
            raise InvalidArgumentError("max_keys must be an int of at least 2")
        self.core = core
        self._source = source_of(core, node_cache, block_cache)
        self._keys = codec(key_encoding)
        self._values = codec(value_encoding)
        self._prefix = b""
        self._checkout: int | None = None
        self._max_keys = max_keys
        self._metadata = metadata
        self._max_key_size = max_key_size
        self._chunk_size = chunk_size
        self._inline_size = inline_size
        self._life = _Life()

    def __repr__(self) -> str:
        view = "" if self._checkout is None else f", checkout={self._checkout}"
        sub = f", prefix={self._prefix!r}" if self._prefix else ""
        return f"Bee(key={self.core.key.hex()}{sub}{view})"

    # -- lifecycle -----------------------------------------------------------------

    async def _enter(self) -> None:
        await self.ready()

    async def ready(self) -> None:
        """Check block 0 is a Bee header (writing it on an empty writable core)."""
        await self._ready()

    async def close(self) -> None:
        """Stop this Bee and its views (watchers end); the core stays open: the Store owns it."""
        self._life.closed = True
        for event in self._life.wakers:
            event.set()

    @property
    def header(self) -> Header | None:
        """The header of block 0 once read (None before ``ready`` or on an empty replica)."""
        return self._source.header

    @property
    def version(self) -> int:
        """The core length this view reads at (live: the core's length now)."""
        return self.core.length if self._checkout is None else self._checkout

    @property
    def writable(self) -> bool:
        return self._checkout is None and self.core.writable

    # -- views -----------------------------------------------------------------------

    def _derive(self, **fields: Any) -> Bee:
        view = copy.copy(self)
        for name, value in fields.items():
            setattr(view, name, value)
        return view

    def sub(
        self,
        name: str | bytes,
        key_encoding: str | Codec | None = None,
        value_encoding: str | Codec | None = None,
    ) -> Bee:
        """A sub-database: keys live under ``prefix + name + b"\\x00"`` (nestable)."""
        raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
        if SEPARATOR in raw:
            raise InvalidArgumentError("a sub-database name cannot contain a NUL byte")
        return self._derive(
            _prefix=self._prefix + raw + SEPARATOR,
            _keys=self._keys if key_encoding is None else codec(key_encoding),
            _values=self._values if value_encoding is None else codec(value_encoding),
        )

    def checkout(self, version: int) -> Bee:
        """A read-only view of the database as it was at ``version`` (a core length)."""
        if type(version) is not int or version < 0:
            raise InvalidArgumentError("a version is a non-negative int")
        if self.core.writable and version > self.core.length:
            raise OutOfRangeError(f"version {version} is past the core's length {self.core.length}")
        return self._derive(_checkout=version)

    def snapshot(self) -> Bee:
        """A read-only view fixed at the current version."""
        return self.checkout(self.version)

    # -- writes ------------------------------------------------------------------------

    def batch(self) -> Batch:
        """An atomic group of writes: ``async with db.batch() as b: await b.put(k, v)``."""
        if self._checkout is not None:
            raise NotWritableError("a checkout is read-only")
        return Batch(self, self._chunk_size, self._inline_size)

    async def put(self, key: Any, value: Any, cas: Cas | None = None) -> bool:
        """Set ``key`` to ``value`` (one block). False if ``cas(prev, new)`` refused it."""
        b = self.batch()
        b._oneshot = cas is None
        try:
            done = await b.put(key, value, cas)
        except BaseException:
            b.discard()
            raise
        await b.flush()
        return done

    async def delete(self, key: Any, cas: Cas | None = None) -> bool:
        """Remove ``key`` (one block). False if it was absent or ``cas(prev, None)`` refused."""
        b = self.batch()
        b._oneshot = cas is None
        try:
            done = await b.delete(key, cas)
        except BaseException:
            b.discard()
            raise
        await b.flush()
        return done

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: Any) -> Entry | None:
        """The entry of ``key`` at this view's version, or None."""
        k = self._encode_key(key)
        root = await self._root()
        if root is None:
            return None
        found = await find(self._source, root, k)
        if found is None:
            return None
        node, i = found
        return await self._entry_at((k, node.values[i], node.inline[i]))

    async def range(
        self,
        gte: Any = None,
        gt: Any = None,
        lte: Any = None,
        lt: Any = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[Entry]:
        """Entries with keys in the bounds, in key order (or reverse), at most ``limit``."""
        bounds = self._bounds(gte, gt, lte, lt)
        if limit is not None and limit <= 0:
            return
        root = await self._root()
        left = -1 if limit is None else limit
        cut = len(self._prefix)
        strip = itemgetter(slice(cut, None))
        decode_key, decode_value = fast_decoder(self._keys), fast_decoder(self._values)
        async for node, start, stop in spans(self._source, root, *bounds, reverse=reverse):
            if 0 <= left < stop - start:
                start, stop = (stop - left, stop) if reverse else (start, start + left)
            keys, refs = node.keys[start:stop], node.values[start:stop]
            inline: list[Any] = node.inline[start:stop]
            if reverse:
                keys.reverse()
                refs.reverse()
                inline.reverse()
            if None in inline:  # some value lives only in its entry: one at a time
                for item in zip(keys, refs, inline, strict=True):
                    yield await self._entry_at(item)
            else:  # a run of inline values: decoded in bulk, at C speed
                try:
                    names = list(map(strip, keys)) if cut else keys
                    if decode_key is not None:
                        names = list(map(decode_key, names))
                    values = inline if decode_value is None else list(map(decode_value, inline))
                except Exception as e:
                    raise DecodeError(f"cannot decode stored key or value: {e}") from e
                for entry in map(Entry, map(OFFSET_BITS.__rrshift__, refs), names, values):
                    yield entry
            if left >= 0:
                left -= len(keys)
                if left == 0:
                    return

    async def peek(
        self,
        gte: Any = None,
        gt: Any = None,
        lte: Any = None,
        lt: Any = None,
        reverse: bool = False,
    ) -> Entry | None:
        """The first entry of a range (the last with ``reverse``), or None."""
        async for entry in self.range(gte, gt, lte, lt, reverse=reverse, limit=1):
            return entry
        return None

    async def history(
        self,
        start: int = 0,
        end: int | None = None,
        reverse: bool = False,
        live: bool = False,
    ) -> AsyncIterator[Change]:
        """Every put and delete written in blocks ``[start, end)``, in write order.

        ``live`` keeps waiting for new writes (forever, or until ``end``).
        """
        if live and (reverse or self._checkout is not None):
            raise InvalidArgumentError("a live history runs forward on the live database")
        if start < 0 or (end is not None and end < start):
            raise InvalidArgumentError("history wants 0 <= start <= end")
        first = max(start, 1)
        if reverse:
            stop = self.version if end is None else min(end, self.version)
            if await self._ready() is None:
                return
            for seq in range(stop - 1, first - 1, -1):
                for change in reversed(await self._changes_of(seq)):
                    yield change
            return
        with self._waker() as changed:
            seq = first
            while end is None or seq < end:
                changed.clear()
                header = await self._ready()
                version = self.version
                if header is not None and seq < version:
                    stop = version if end is None else min(end, version)
                    for s in range(seq, stop):
                        for change in await self._changes_of(s):
                            yield change
                    seq = stop
                    continue
                if not live or self._life.closed:
                    return
                await changed.wait()

    async def diff(
        self,
        other: int | Bee,
        gte: Any = None,
        gt: Any = None,
        lte: Any = None,
        lt: Any = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[Diff]:
        """Keys whose entry differs between this view (``left``) and ``other`` (``right``)."""
        if isinstance(other, Bee) and other.core is not self.core:
            raise InvalidArgumentError("diff compares two versions of the same Bee")
        other_version = other.version if isinstance(other, Bee) else other
        if type(other_version) is not int or other_version < 0:
            raise InvalidArgumentError("a version is a non-negative int")
        bounds = self._bounds(gte, gt, lte, lt)
        if limit is not None and limit <= 0:
            return
        left = await self._root()
        right = None if other_version <= 1 else await self._source.root(other_version)
        count = 0
        async for a, b in diff(self._source, left, right, *bounds, reverse=reverse):
            yield Diff(
                None if a is None else await self._entry_at(a),
                None if b is None else await self._entry_at(b),
            )
            count += 1
            if count == limit:
                return

    def watch(self, gte: Any = None, gt: Any = None, lte: Any = None, lt: Any = None) -> Watch:
        """Updates ``(current, previous)`` each time keys in the range change.

        Iterate it with ``async for``. Driven by the core's append notifications, so
        writes that arrive by replication wake it too. Bursts are coalesced: one update
        may cover several writes. After a truncation of the core both views are the
        truncated version. Changes count from the version when iteration starts, or
        when :meth:`Watch.ready` returns, whichever comes first.
        """
        if self._checkout is not None:
            raise InvalidArgumentError("watch the live database, not a checkout")
        return Watch(self, self._bounds(gte, gt, lte, lt))

    # -- internals -------------------------------------------------------------------------

    async def _ready(self) -> Header | None:
        if self._life.closed:
            raise ClosedError("the Bee is closed")
        src = self._source
        src.check_fork()
        if src.header is not None:
            return src.header
        return await src.ready(self._max_keys, self._metadata)

    async def _root(self) -> Ref | None:
        if await self._ready() is None:
            return None
        return await self._source.root(self.version)

    @contextmanager
    def _waker(self) -> Iterator[asyncio.Event]:
        """An event set on every append or truncation of the core, and on close."""
        event = asyncio.Event()

        def wake(*_: Any) -> None:
            event.set()

        unsubscribe = [self.core.on_append(wake), self.core.on_truncate(wake)]
        self._life.wakers.add(event)
        try:
            yield event
        finally:
            self._life.wakers.discard(event)
            for off in unsubscribe:
                off()

    async def _changed(self, previous: int, current: int, bounds: Bounds) -> bool:
        src = self._source
        old = await src.root(previous)
        new = await src.root(current)
        async for _ in diff(src, old, new, *bounds):
            return True
        return False

    async def _changes_of(self, seq: int) -> list[Change]:
        entries = (await self._source.block(seq)).entries
        prefix = self._prefix
        out: list[Change] = []
        for i in range(0, len(entries), 2):
            k = entries[i]
            if not k.startswith(prefix):
                continue
            key = self._decode_key(k)
            v = entries[i + 1]
            if v is None:
                out.append(Change("del", seq, key))
            else:
                out.append(Change("put", seq, key, decode(self._values, v, "value")))
        return out

    async def _entry_at(self, item: KeyRef) -> Entry:
        k, ref, value = item
        if value is None:
            stored_key, value = await self._source.entry(ref)
            if stored_key != k:
                raise DecodeError(f"entry {ref:#x} holds another key than the tree says")
            if value is None:
                raise DecodeError(f"the tree points a key at a delete ({ref:#x})")
        return self._entry(ref >> OFFSET_BITS, k, value)

    def _entry(self, seq: int, k: bytes, value: bytes) -> Entry:
        return Entry(seq, self._decode_key(k), decode(self._values, value, "value"))

    def _encode_key(self, key: Any) -> bytes:
        k = self._prefix + encode(self._keys, key, "key")
        if len(k) > self._max_key_size:
            raise EncodingError(f"key of {len(k)} bytes is over the {self._max_key_size} limit")
        return k

    def _decode_key(self, k: bytes) -> Any:
        return decode(self._keys, k[len(self._prefix) :], "key")

    def _encode_value(self, value: Any) -> bytes:
        return encode(self._values, value, "value")

    def _bounds(self, gte: Any, gt: Any, lte: Any, lt: Any) -> Bounds:
        if gte is not None and gt is not None:
            raise InvalidArgumentError("give gte or gt, not both")
        if lte is not None and lt is not None:
            raise InvalidArgumentError("give lte or lt, not both")
        prefix = self._prefix
        low: bytes | None = prefix or None
        low_inclusive = True
        if gte is not None:
            low = self._encode_key(gte)
        elif gt is not None:
            low, low_inclusive = self._encode_key(gt), False
        high: bytes | None = prefix[:-1] + b"\x01" if prefix else None
        high_inclusive = False
        if lte is not None:
            high, high_inclusive = self._encode_key(lte), True
        elif lt is not None:
            high = self._encode_key(lt)
        return low, low_inclusive, high, high_inclusive


class Watch:
    """An async iterator of :class:`Update`: what :meth:`Bee.watch` returns."""

    def __init__(self, bee: Bee, bounds: Bounds) -> None:
        self._bee = bee
        self._bounds = bounds
        self._since: int | None = None
        self._updates = self._run()

    async def ready(self) -> None:
        """Fix the version changes count from: a write after this is seen."""
        if self._since is None:
            await self._bee._ready()
            self._since = self._bee.version

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Update:
        return await anext(self._updates)

    async def aclose(self) -> None:
        await self._updates.aclose()

    async def _run(self) -> AsyncGenerator[Update, None]:
        await self.ready()
        bee = self._bee
        with bee._waker() as changed:
            previous = self._since
            assert previous is not None
            while not bee._life.closed:
                changed.clear()
                current = bee.version
                if current == previous:
                    await changed.wait()
                    continue
                if current < previous:  # truncated: the old blocks are gone, nothing to diff
                    yield Update(bee._derive(_checkout=current), bee._derive(_checkout=current))
                elif await bee._changed(previous, current, self._bounds):
                    yield Update(bee._derive(_checkout=current), bee._derive(_checkout=previous))
                previous = current
