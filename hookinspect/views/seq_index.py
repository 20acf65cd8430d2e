"""Which deliveries a list shows, newest first, as sequence numbers only.

A list over a million deliveries keeps 8 bytes per row here and fetches the rows on screen
by number, so memory does not grow with how far the user scrolls, and any position (the
oldest, #n of N) is one lookup away.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable


class SeqIndex:
    """Numbers newest first: those a scan found (scanned newest first, so kept descending) and
    those that arrived after the scan began (kept ascending, shown above them)."""

    def __init__(self) -> None:
        self._older = array("q")  # descending
        self._newer = array("q")  # ascending, all above the scan's start
        self.complete = False  # the scan reached the oldest delivery
        self._floor: int | None = None  # the lowest number the scan has listed

    def __len__(self) -> int:
        return len(self._older) + len(self._newer)

    def __getitem__(self, index: int) -> int:
        if index < 0:
            index += len(self)
        newer = len(self._newer)
        if index < newer:
            return self._newer[newer - 1 - index]
        return self._older[index - newer]

    def __iter__(self):  # noqa: ANN204 - newest first
        yield from reversed(self._newer)
        yield from self._older

    def head(self, count: int) -> list[int]:
        """The newest `count` numbers."""
        return [self[i] for i in range(min(count, len(self)))]

    def slice(self, start: int, stop: int) -> list[int]:
        return [self[i] for i in range(max(start, 0), min(stop, len(self)))]

    @property
    def newest(self) -> int | None:
        return self[0] if len(self) else None

    def extend_older(self, seqs: Iterable[int]) -> None:
        """More of the scan, newest first, each below what it found before."""
        self._older.extend(seqs)
        if self._older:
            self._floor = min(self._older[-1], self._floor if self._floor is not None else self._older[-1])

    def add_newer(self, seqs: Iterable[int]) -> int:
        """Arrivals, oldest first; numbers already shown are skipped. Returns how many were added."""
        top = self.newest or 0
        fresh = [seq for seq in seqs if seq > top]
        self._newer.extend(fresh)
        return len(fresh)

    def index_of(self, seq: int) -> int | None:
        """Position of `seq` (0 = newest), or None when it is not listed."""
        index = self.nearest_index(seq)
        return index if index < len(self) and self[index] == seq else None

    def nearest_index(self, seq: int) -> int:
        """Position of `seq`, or else of the newest number below it (len(self) when there is none)."""
        newer = len(self._newer)
        # _newer ascending: how many are above seq
        above = newer - _count_below_or_at(self._newer, seq)
        if above < newer:
            return above
        # _older descending: how many are above seq
        lo, hi = 0, len(self._older)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._older[mid] > seq:
                lo = mid + 1
            else:
                hi = mid
        return newer + lo

    def restore(self, seqs: Iterable[int]) -> None:
        """Put removed numbers back in their places (an undone delete). Numbers below what the
        scan has reached are left to the scan."""
        for seq in seqs:
            if self.index_of(seq) is not None:
                continue
            if self._newer and seq > (self._older[0] if self._older else 0):
                self._newer.insert(_count_below_or_at(self._newer, seq), seq)
            elif self.complete or (self._floor is not None and seq >= self._floor):
                self._older.insert(self.nearest_index(seq) - len(self._newer), seq)

    def remove(self, seqs: Iterable[int]) -> None:
        gone = set(seqs)
        if gone:
            self._older = array("q", (s for s in self._older if s not in gone))
            self._newer = array("q", (s for s in self._newer if s not in gone))


def _count_below_or_at(ascending: array, seq: int) -> int:
    lo, hi = 0, len(ascending)
    while lo < hi:
        mid = (lo + hi) // 2
        if ascending[mid] <= seq:
            lo = mid + 1
        else:
            hi = mid
    return lo
