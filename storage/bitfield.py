"""Which blocks a Core holds: a sparse bitfield split into fixed pages.

Pages are the unit of persistence (one LMDB value each, small enough to stay inside a
B-tree node), so marking a block rewrites one 1 KiB value, not the whole map. Changes are
computed first (:meth:`Bitfield.changes`) and installed only after the transaction that
stores them committed (:meth:`Bitfield.apply`), so memory never runs ahead of disk.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping

from storage.errors import DecodeError

PAGE_BYTES = 1024
PAGE_BITS = PAGE_BYTES * 8
_FULL = (1 << PAGE_BITS) - 1
_FEW_BITS = 32  # below this, setting bits one by one beats a 1 KiB int round trip


class Bitfield:
    def __init__(self, pages: Mapping[int, bytes] | None = None) -> None:
        self._pages: dict[int, bytearray] = {}
        for number, data in (pages or {}).items():
            if len(data) != PAGE_BYTES:
                raise DecodeError(f"bitfield page {number}: {len(data)} bytes")
            self._pages[number] = bytearray(data)
        self._order = sorted(self._pages)

    def copy(self) -> Bitfield:
        return Bitfield({n: bytes(p) for n, p in self._pages.items()})

    def end(self) -> int:
        """An upper bound on the set bits: one past the last page that has any."""
        return (self._order[-1] + 1) * PAGE_BITS if self._order else 0

    def get(self, i: int) -> bool:
        page = self._pages.get(i // PAGE_BITS)
        if page is None:
            return False
        bit = i % PAGE_BITS
        return bool(page[bit >> 3] & (1 << (bit & 7)))

    def changes(self, start: int, end: int, value: bool) -> dict[int, bytes | None]:
        """New contents of the pages touched by setting bits ``[start, end)`` to ``value``.

        ``None`` means the page became empty (delete it). Nothing is modified.
        """
        out: dict[int, bytes | None] = {}
        i = start
        while i < end:
            number = i // PAGE_BITS
            base = number * PAGE_BITS
            stop = min(end, base + PAGE_BITS)
            old = self._pages.get(number)
            if value and stop - i <= _FEW_BITS:  # an append: a byte or two of one page
                page = bytearray(old) if old is not None else bytearray(PAGE_BYTES)
                for bit in range(i - base, stop - base):
                    page[bit >> 3] |= 1 << (bit & 7)
                out[number] = bytes(page)
                i = stop
                continue
            bits = int.from_bytes(old, "little") if old is not None else 0
            mask = ((1 << (stop - i)) - 1) << (i - base)
            bits = bits | mask if value else bits & ~mask
            out[number] = bits.to_bytes(PAGE_BYTES, "little") if bits else None
            i = stop
        return out

    def fill(self, start: int, end: int) -> None:
        """Set bits ``[start, end)`` in memory (for bits whose durability is elsewhere)."""
        if end - start == 1:  # an append
            number, bit = divmod(start, PAGE_BITS)
            page = self._pages.get(number)
            if page is None:
                self._pages[number] = page = bytearray(PAGE_BYTES)
                bisect.insort(self._order, number)
            page[bit >> 3] |= 1 << (bit & 7)
        elif start < end:
            self.apply(self.changes(start, end, True))

    def apply(self, pages: Mapping[int, bytes | None]) -> None:
        for number, data in pages.items():
            if data is None:
                if self._pages.pop(number, None) is not None:
                    self._order.remove(number)
            else:
                if number not in self._pages:
                    bisect.insort(self._order, number)
                self._pages[number] = bytearray(data)

    def find(self, start: int, end: int, value: bool) -> int:
        """The first index in ``[start, end)`` whose bit is ``value``, or ``end``."""
        i = start
        while i < end:
            number = i // PAGE_BITS
            page = self._pages.get(number)
            if page is None:
                if not value:
                    return i
                # Jump to the next page that exists at all.
                k = bisect.bisect_right(self._order, number)
                if k == len(self._order):
                    return end
                i = self._order[k] * PAGE_BITS
                continue
            base = number * PAGE_BITS
            bits = int.from_bytes(page, "little")
            if not value:
                bits = ~bits & _FULL
            bits >>= i - base
            if bits:
                j = i + (bits & -bits).bit_length() - 1
                return j if j < end else end
            i = base + PAGE_BITS
        return end

    def ranges(self, start: int, end: int, value: bool) -> Iterator[tuple[int, int]]:
        """Maximal runs ``[a, b)`` inside ``[start, end)`` whose bits are all ``value``."""
        i = start
        while i < end:
            a = self.find(i, end, value)
            if a >= end:
                return
            b = self.find(a, end, not value)
            yield a, b
            i = b

    def count(self, start: int, end: int) -> int:
        return sum(b - a for a, b in self.ranges(start, end, True))
