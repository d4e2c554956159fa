"""A Store: one LMDB environment in one folder, holding many Cores.

Cores are found by public key. A writable core can be named: its key pair is derived
from the store's primary key (32 random bytes made when the store is created), so the
same name in the same store always gives the same core, as in a Corestore.

Durability: every write is one LMDB transaction, and a Core reports an append only after
that transaction committed. With ``sync=False`` (default) a commit reaches the OS page
cache: it survives the process being killed, not a power cut. LMDB then runs with
``writemap``: it edits the file's shared mapping in place instead of copying each dirty
page out with ``pwrite`` at commit (about 2 us less per database a commit touches), and
the shared mapping *is* the page cache, so the durability is the same; the data file
becomes a sparse file of the map's size. ``sync=True`` fsyncs each commit, surviving
both; it keeps ``pwrite`` (with ``writemap`` a sync is an ``msync`` of the whole map,
which is slower).

The memory map grows on demand: a write that hits ``MapFullError`` is retried after the
map doubles, so a store never dies at a fixed size.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from hashlib import blake2b
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from storage.core import Core
from storage.errors import ClosedError, InvalidArgumentError, StorageError
from storage.keypair import PUBLIC_KEY_SIZE, KeyPair
from storage.resource import AsyncResource

T = TypeVar("T")

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
PRIMARY_KEY_SIZE = 32
_DB_NAMES = ("meta", "cores", "discovery", "blocks", "nodes", "bitfield")
_PRIMARY = b"primary_key"
_NEXT_ID = b"next_core_id"
_U32 = struct.Struct(">I")


def derive_key_pair(primary_key: bytes, name: str) -> KeyPair:
    """The key pair of the core called ``name`` in a store with ``primary_key``."""
    seed = blake2b(
        b"peerswarm/core\x00" + name.encode("utf-8"), key=primary_key, digest_size=32
    ).digest()
    return KeyPair.from_seed(seed)


class Store(AsyncResource):
    """Many Cores in one LMDB environment (one folder). An async context manager."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        primary_key: bytes | None = None,
    ) -> None:
        if map_size < 1 << 16:
            raise InvalidArgumentError("map_size must be at least 64 KiB")
        if primary_key is not None and len(primary_key) != PRIMARY_KEY_SIZE:
            raise InvalidArgumentError(f"a primary key is {PRIMARY_KEY_SIZE} bytes")
        self.path = Path(path)
        self.sync = sync
        self._map_size = map_size
        self._wanted_primary = primary_key
        self._env: Any = None
        self._dbs: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self._primary_key = b""
        self._cores: dict[bytes, Core] = {}  # public key -> Core
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def _enter(self) -> None:
        await self.ready()

    async def ready(self) -> None:
        self._open()

    def _open(self) -> None:
        if self._closed:
            raise ClosedError("store is closed")
        if self._env is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StorageError(f"store {self.path} is already open") from e
        try:
            env = lmdb.open(
                str(self.path),
                map_size=self._map_size,
                max_dbs=len(_DB_NAMES) + 2,
                sync=self.sync,
                metasync=self.sync,
                writemap=not self.sync,  # see the module docstring
                readahead=False,
                max_spare_txns=4,
            )
            self._dbs = {n: env.open_db(n.encode()) for n in _DB_NAMES}
        except lmdb.Error as e:
            os.close(fd)
            raise StorageError(f"cannot open store {self.path}: {e}") from e
        self._env, self._lock_fd = env, fd
        self._primary_key = self.write(self._init_primary)

    def _init_primary(self, txn: Any) -> bytes:
        meta = self._dbs["meta"]
        stored: bytes | None = txn.get(_PRIMARY, db=meta)
        if stored is None:
            stored = self._wanted_primary or secrets.token_bytes(PRIMARY_KEY_SIZE)
            txn.put(_PRIMARY, stored, db=meta)
        elif len(stored) != PRIMARY_KEY_SIZE:
            raise StorageError("store primary key is corrupt")
        elif self._wanted_primary is not None and stored != self._wanted_primary:
            raise InvalidArgumentError("this store was created with another primary key")
        return bytes(stored)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for core in list(self._cores.values()):
            await core.close()
        self._cores.clear()
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def primary_key(self) -> bytes:
        self._open()
        return self._primary_key

    # -- cores -----------------------------------------------------------------------

    def core(
        self,
        *,
        name: str | None = None,
        key_pair: KeyPair | None = None,
        key: bytes | None = None,
    ) -> Core:
        """The Core for a name, a key pair or a public key (exactly one of them).

        The same key always gives the same Core object while the store is open.
        """
        if sum(x is not None for x in (name, key_pair, key)) != 1:
            raise InvalidArgumentError("give exactly one of name=, key_pair=, key=")
        self._open()
        if name is not None:
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError("a core name is a non-empty string")
            kp = derive_key_pair(self._primary_key, name)
        elif key_pair is not None:
            if not isinstance(key_pair, KeyPair):
                raise InvalidArgumentError("key_pair must be a KeyPair")
            kp = key_pair
        else:
            if not isinstance(key, bytes | bytearray) or len(key) != PUBLIC_KEY_SIZE:
                raise InvalidArgumentError(f"a core key is {PUBLIC_KEY_SIZE} bytes")
            kp = KeyPair(bytes(key))
        existing: Core | None = self._cores.get(kp.public_key)
        if existing is not None:
            if kp.can_sign:
                existing._adopt_key_pair(kp)
            return existing
        core = Core(self, kp)
        self._cores[kp.public_key] = core
        return core

    def cores(self) -> list[Core]:
        """The Cores opened through this store object so far."""
        return list(self._cores.values())

    def known_keys(self) -> list[bytes]:
        """Public keys of every core ever stored here (opened or not)."""
        with self.read() as txn:
            return [bytes(k) for k, _ in txn.cursor(db=self._dbs["cores"])]

    def key_for_discovery_key(self, discovery_key: bytes) -> bytes | None:
        """The public key of a stored core by its discovery key (what peers send)."""
        with self.read() as txn:
            key: bytes | None = txn.get(bytes(discovery_key), db=self._dbs["discovery"])
        return None if key is None else bytes(key)

    def _forget(self, key: bytes) -> None:
        self._cores.pop(key, None)

    # -- transactions ----------------------------------------------------------------

    def _env_or_raise(self) -> Any:
        if self._closed or self._env is None:
            raise ClosedError("store is closed")
        return self._env

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A short read transaction (do not hold it across an ``await``)."""
        env = self._env_or_raise()
        try:
            with env.begin() as txn:
                yield txn
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # another process grew the map: adopt its size
            raise StorageError("store map was resized by another process; retry") from None
        except lmdb.Error as e:
            raise StorageError(f"store read failed: {e}") from e

    def _get_pair(self, db_a: Any, key_a: bytes, db_b: Any, key_b: bytes) -> tuple[Any, Any]:
        """Two values read in one transaction (``read`` without the context manager's cost)."""
        env = self._env_or_raise()
        try:
            with env.begin() as txn:
                return txn.get(key_a, db=db_a), txn.get(key_b, db=db_b)
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # another process grew the map: adopt its size
            raise StorageError("store map was resized by another process; retry") from None
        except lmdb.Error as e:
            raise StorageError(f"store read failed: {e}") from e

    def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in one write transaction and commit; grow the map when full.

        ``fn`` may run more than once (after a map growth), so it must only touch the
        transaction, never memory the caller keeps.
        """
        env = self._env_or_raise()
        while True:
            try:
                with env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.Error as e:
                raise StorageError(f"store write failed: {e}") from e

    def next_core_id(self, txn: Any) -> int:
        """Allocate the short id that prefixes every LMDB key of a new core."""
        meta = self._dbs["meta"]
        raw = txn.get(_NEXT_ID, db=meta)
        core_id = 0 if raw is None else _U32.unpack(raw)[0]
        if core_id >= 0xFFFFFFFF:
            raise StorageError("too many cores in one store")
        txn.put(_NEXT_ID, _U32.pack(core_id + 1), db=meta)
        return int(core_id)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
