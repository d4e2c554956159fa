"""A stateful hypothesis test: random puts, deletes, batches, ranges, checkouts, diffs and
reopens of a real Bee, checked step by step against a plain sorted-dict model."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from storage import Bee, Store

T = TypeVar("T")

KEYS = st.text(alphabet="abcde", max_size=3)
VALUES = st.integers(0, 99)
# Per key: (value, write id). A write id is unique per put, so it stands for "the entry".
Model = dict[str, tuple[int, int]]


class _Boom(Exception):
    pass


class BeeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.mkdtemp(prefix="bee-model-")
        self.store: Store | None = None
        self.db: Bee | None = None
        self.model: Model = {}
        self.versions: dict[int, Model] = {}  # versions whose content the model knows
        self.seqs: dict[int, tuple[int, int]] = {}  # write id -> seq range it may have
        self.writes = 0
        self.max_keys = 4
        self.chunk_size = 1 << 20

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def bee(self) -> Bee:
        assert self.db is not None
        return self.db

    async def _open(self) -> None:
        self.store = Store(self.dir)
        await self.store.ready()
        core = self.store.core(name="db")
        await core.ready()
        self.db = Bee(core, max_keys=self.max_keys, chunk_size=self.chunk_size)
        await self.db.ready()

    async def _close(self) -> None:
        if self.store is not None:
            await self.store.close()
        self.store = self.db = None

    @initialize(max_keys=st.sampled_from([2, 3, 4, 7, 64]), small_chunks=st.booleans())
    def open(self, max_keys: int, small_chunks: bool) -> None:
        self.max_keys = max_keys
        self.chunk_size = 300 if small_chunks else 1 << 20
        self.run(self._open())
        self.versions[self.bee.version] = {}

    def teardown(self) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _written(self, before: int, old: Model | None = None) -> None:
        after = self.bee.version
        if after != before:
            self.versions[after] = dict(self.model)
        if old is not None:  # a big batch's inner blocks show the old tree
            for version in range(before + 1, after):
                self.versions[version] = dict(old)

    def _new_write(self, seq_low: int, seq_high: int) -> int:
        self.writes += 1
        self.seqs[self.writes] = (seq_low, seq_high)
        return self.writes

    # -- writes --------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES)
    def put(self, key: str, value: int) -> None:
        before = self.bee.version
        assert self.run(self.bee.put(key, value))
        self.model[key] = (value, self._new_write(before, before))
        self._written(before)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        before = self.bee.version
        assert self.run(self.bee.delete(key)) == (key in self.model)
        self.model.pop(key, None)
        self._written(before)

    @rule(key=KEYS, value=VALUES, accept=st.booleans())
    def put_cas(self, key: str, value: int, accept: bool) -> None:
        before = self.bee.version
        asked: list[Any] = []

        def cas(prev: Any, new: Any) -> bool:
            asked.append(prev)
            return accept

        written = self.run(self.bee.put(key, value, cas=cas))
        if key in self.model:
            assert len(asked) == 1 and asked[0].value == self.model[key][0]
            assert written == accept
        else:
            assert asked == [] and written
        if written:
            self.model[key] = (value, self._new_write(before, before))
        self._written(before)

    @rule(
        ops=st.lists(st.tuples(st.booleans(), KEYS, VALUES), max_size=60),
        fail=st.booleans(),
    )
    def batch(self, ops: list[tuple[bool, str, int]], fail: bool) -> None:
        before = self.bee.version
        pending = dict(self.model)
        ids: list[tuple[str, int]] = []

        async def go() -> None:
            async with self.bee.batch() as b:
                for is_put, key, value in ops:
                    if is_put:
                        await b.put(key, value)
                        ids.append((key, value))
                        pending[key] = (value, -len(ids))
                    else:
                        assert await b.delete(key) == (key in pending)
                        pending.pop(key, None)
                    entry = await b.get(key)  # reads see the batch's own writes
                    assert (entry is None) == (key not in pending)
                    if entry is not None:
                        assert entry.value == pending[key][0]
                if fail:
                    raise _Boom

        try:
            self.run(go())
        except _Boom:
            assert fail
            assert self.bee.version == before  # all or nothing
            return
        after = self.bee.version
        old = self.model
        for key, (value, wid) in pending.items():
            if wid < 0:  # written by this batch: give it a real write id
                pending[key] = (value, self._new_write(before, max(before, after - 1)))
        self.model = pending
        self._written(before, old)

    @rule(first=st.sampled_from("abcde"), value=VALUES)
    def fill(self, first: str, value: int) -> None:
        """Put all 31 keys starting with ``first`` in one batch: grows trees level by level."""
        before = self.bee.version
        keys = [first + a + b for a in ["", *"abcde"] for b in ["", *"abcde"] if a or not b]

        async def go() -> None:
            async with self.bee.batch() as b:
                for key in keys:
                    await b.put(key, value)

        self.run(go())
        old = dict(self.model)
        for key in keys:
            self.model[key] = (value, self._new_write(before, self.bee.version - 1))
        self._written(before, old)

    @rule(low=KEYS, high=KEYS)
    def delete_range(self, low: str, high: str) -> None:
        """Delete every key in [low, high) in one batch: shrinks trees level by level."""
        before = self.bee.version
        doomed = [k for k in self.model if low <= k < high]

        async def go() -> None:
            async with self.bee.batch() as b:
                for key in doomed:
                    assert await b.delete(key)

        self.run(go())
        old = dict(self.model)
        for key in doomed:
            del self.model[key]
        self._written(before, old)

    @rule()
    def reopen(self) -> None:
        self.run(self._close())
        self.run(self._open())

    # -- reads ---------------------------------------------------------------------

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        entry = self.run(self.bee.get(key))
        if key not in self.model:
            assert entry is None
            return
        assert entry is not None and entry.key == key
        value, wid = self.model[key]
        low, high = self.seqs[wid]
        assert entry.value == value and low <= entry.seq <= high

    @rule(
        low=st.none() | KEYS,
        high=st.none() | KEYS,
        low_inclusive=st.booleans(),
        high_inclusive=st.booleans(),
        reverse=st.booleans(),
        limit=st.none() | st.integers(0, 5),
    )
    def range(
        self,
        low: str | None,
        high: str | None,
        low_inclusive: bool,
        high_inclusive: bool,
        reverse: bool,
        limit: int | None,
    ) -> None:
        bounds: dict[str, Any] = {}
        if low is not None:
            bounds["gte" if low_inclusive else "gt"] = low
        if high is not None:
            bounds["lte" if high_inclusive else "lt"] = high

        def inside(k: str) -> bool:
            if low is not None and (k < low or (k == low and not low_inclusive)):
                return False
            return high is None or k < high or (k == high and high_inclusive)

        expected = sorted((k for k in self.model if inside(k)), reverse=reverse)
        if limit is not None:
            expected = expected[:limit]

        async def collect() -> list[tuple[str, int]]:
            it = self.bee.range(**bounds, reverse=reverse, limit=limit)
            return [(e.key, e.value) async for e in it]

        assert self.run(collect()) == [(k, self.model[k][0]) for k in expected]

    @precondition(lambda self: len(self.versions) > 1)
    @rule(data=st.data())
    def checkout(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.versions)))
        view = self.bee.checkout(version)

        async def collect() -> dict[str, int]:
            return {e.key: e.value async for e in view.range()}

        assert self.run(collect()) == {k: v for k, (v, _) in self.versions[version].items()}

    @precondition(lambda self: len(self.versions) > 1)
    @rule(data=st.data(), reverse=st.booleans())
    def diff(self, data: st.DataObject, reverse: bool) -> None:
        version = data.draw(st.sampled_from(sorted(self.versions)))
        old = self.versions[version]
        changed = sorted(
            (k for k in set(old) | set(self.model) if old.get(k) != self.model.get(k)),
            reverse=reverse,
        )

        async def collect() -> list[tuple[str, Any, Any]]:
            return [
                (d.key, d.left and d.left.value, d.right and d.right.value)
                async for d in self.bee.diff(version, reverse=reverse)
            ]

        got = self.run(collect())
        assert [k for k, _, _ in got] == changed
        for key, left, right in got:
            assert left == (self.model[key][0] if key in self.model else None)
            assert right == (old[key][0] if key in old else None)

    @rule()
    def history_replays_to_the_model(self) -> None:
        async def replay() -> dict[str, int]:
            state: dict[str, int] = {}
            async for change in self.bee.history():
                if change.type == "put":
                    state[change.key] = change.value
                else:
                    state.pop(change.key, None)
            return state

        assert self.run(replay()) == {k: v for k, (v, _) in self.model.items()}

    @invariant()
    def everything_in_order(self) -> None:
        if self.db is None:
            return

        async def collect() -> list[str]:
            return [e.key async for e in self.bee.range()]

        assert self.run(collect()) == sorted(self.model)


BeeMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBeeModel = BeeMachine.TestCase
