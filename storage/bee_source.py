"""Where a Bee reads from: its core's blocks, decoded, validated and cached.

One Source per core, shared by every Bee, sub, checkout and batch on that core,
so they share one node cache and one write lock (two Bee objects on one core
cannot interleave writes). Only the blocks a read needs are fetched: on a sparse
replica ``core.get`` pulls exactly the path of a lookup from peers.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage.bee_block import Block, Header, decode_block, decode_header, encode_header
from storage.bee_cache import LRU, WeightedLRU
from storage.bee_node import OFFSET_BITS, OFFSET_MASK, Node, Ref, decode_node
from storage.errors import DecodeError

if TYPE_CHECKING:
    from storage.core import Core

DEFAULT_NODE_CACHE = 4_096  # decoded nodes: every node of a 64-fan-out tree of ~200k keys
DEFAULT_BLOCK_CACHE = 16 * 1024 * 1024  # bytes of decoded blocks

_sources: weakref.WeakKeyDictionary[Any, Source] = weakref.WeakKeyDictionary()


def source_of(
    core: Core,
    node_cache: int = DEFAULT_NODE_CACHE,
    block_cache: int = DEFAULT_BLOCK_CACHE,
) -> Source:
    """The one Source of ``core`` (made on first use; later cache sizes are ignored)."""
    src = _sources.get(core)
    if src is None:
        src = _sources[core] = Source(core, node_cache, block_cache)
    return src


class Source:
    """Decoded, cached access to one core's Bee blocks, plus the core's Bee write lock."""

    def __init__(self, core: Core, node_cache: int, block_cache: int) -> None:
        self.core = core
        self.nodes: LRU[Ref, Node] = LRU(node_cache)
        # The clean node of a reference if cached (the LRU's own get: no wrapper call).
        self.cached: Callable[[Ref], Node | None] = self.nodes.get
        # The same, taken out of the cache: for a write that copies the node (see Tree).
        self.take: Callable[[Ref], Node | None] = self.nodes.take
        self.blocks: WeightedLRU[int, Block] = WeightedLRU(block_cache, lambda b: b.size + 512)
        self.lock = asyncio.Lock()
        self.writer: asyncio.Task[Any] | None = None  # the task holding ``lock``
        self.header: Header | None = None
        self.fork = 0
        self.latest: tuple[int, Ref | None] = (0, None)  # (version, root) of the last write

    def check_fork(self) -> None:
        """Forget everything cached when the core was truncated (its blocks were replaced)."""
        fork = self.core.fork
        if fork != self.fork:
            self.fork = fork
            self.nodes.clear()
            self.blocks.clear()
            self.header = None
            self.latest = (0, None)

    async def ready(self, max_keys: int, metadata: Any) -> Header | None:
        """Read block 0 (writing the header first on an empty writable core).

        None on an empty replica: nothing to read yet, every version is empty.
        """
        core = self.core
        await core.ready()
        self.check_fork()
        if self.header is not None:
            return self.header
        if core.length == 0:
            if not core.writable:
                return None
            async with self.lock:
                if core.length == 0:
                    await core.append(encode_header(Header(max_keys, metadata)))
        header = decode_header(await core.get(0))
        if self.fork == core.fork:
            self.header = header
        return header

    async def block(self, seq: int) -> Block:
        block = self.blocks.get(seq)
        if block is None:
            if seq < 1:
                raise DecodeError(f"block {seq} is the header, not a write block")
            block = decode_block(await self.core.get(seq), seq)
            self.blocks.put(seq, block)
        return block

    async def root(self, version: int) -> Ref | None:
        """The root of the tree as of ``version`` (the core's length then)."""
        if version <= 1:
            return None
        latest, root = self.latest
        if version == latest:
            return root
        return (await self.block(version - 1)).root

    async def load(self, ref: Ref) -> Node:
        seq, offset = ref >> OFFSET_BITS, ref & OFFSET_MASK
        block = await self.block(seq)
        if offset >= len(block.nodes):
            raise DecodeError(f"block {seq} has no node {offset}")
        node = decode_node(block.nodes[offset], seq, offset)
        self.nodes.put(ref, node)
        return node

    async def entry(self, ref: Ref) -> tuple[bytes, bytes | None]:
        """The key and value (None: a delete) written at ``ref``."""
        seq, offset = ref >> OFFSET_BITS, ref & OFFSET_MASK
        entries = (await self.block(seq)).entries
        if 2 * offset + 1 >= len(entries):
            raise DecodeError(f"block {seq} has no entry {offset}")
        key: bytes = entries[2 * offset]
        value: bytes | None = entries[2 * offset + 1]
        return key, value
