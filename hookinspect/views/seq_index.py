"""Which deliveries a list shows, newest first, as runs of sequence numbers.

A list fetches the rows on screen by number, so memory does not grow with how far the user
scrolls, and any position (the oldest, #n of N) is one lookup away. Numbers are kept as runs
of consecutive ones: a store of a million deliveries with none deleted is one run, and a
filter's scattered matches cost a run each.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence

Run = tuple[int, int]  # (highest, lowest), both included


def runs_of(seqs: Sequence[int]) -> list[Run]:
    """Strictly descending numbers as runs of consecutive ones, found by halving (a chunk with
    no gap costs one comparison, not one per number)."""
    runs: list[Run] = []

    def split(first: int, last: int) -> None:
        while first <= last:
            if seqs[first] - seqs[last] == last - first:  # no gap in between
                if runs and runs[-1][1] == seqs[first] + 1:
                    runs[-1] = (runs[-1][0], seqs[last])
                else:
                    runs.append((seqs[first], seqs[last]))
                return
            middle = (first + last) // 2
            split(first, middle)
            first = middle + 1

    if len(seqs):
        split(0, len(seqs) - 1)
    return runs


class SeqIndex:
    """Numbers newest first: those a scan found (newest first, as runs) and those that arrived
    after the scan began (kept ascending, shown above them)."""

    def __init__(self) -> None:
        self._high = array("q")  # runs of the scanned part, newest first
        self._low = array("q")
        self._start = array("q")  # position of each run's first number within the scanned part
        self._scanned = 0
        self._newer = array("q")  # ascending, all above the scan's start
        self.complete = False  # the scan reached the oldest delivery
        self._floor: int | None = None  # the lowest number the scan has listed

    def __len__(self) -> int:
        return self._scanned + len(self._newer)

    def __getitem__(self, index: int) -> int:
        if index < 0:
            index += len(self)
        newer = len(self._newer)
        if index < newer:
            return self._newer[newer - 1 - index]
        index -= newer
        if not 0 <= index < self._scanned:
            raise IndexError(index)
        run = bisect_right(self._start, index) - 1
        return self._high[run] - (index - self._start[run])

    def __iter__(self) -> Iterator[int]:
        yield from reversed(self._newer)
        for high, low in zip(self._high, self._low, strict=True):
            yield from range(high, low - 1, -1)

    @property
    def runs(self) -> int:
        """How many runs the scanned part takes (memory is 24 bytes each)."""
        return len(self._high)

    def slice(self, start: int, stop: int) -> list[int]:
        return [self[i] for i in range(max(start, 0), min(stop, len(self)))]

    @property
    def newest(self) -> int | None:
        return self[0] if len(self) else None

    def extend_older(self, seqs: Sequence[int] | Iterable[int]) -> None:
        """More of the scan, newest first, each below what it found before."""
        if not isinstance(seqs, Sequence | array):
            seqs = list(seqs)
        self.extend_runs(runs_of(seqs))  # type: ignore[arg-type]

    def extend_runs(self, runs: Iterable[Run]) -> None:
        for high, low in runs:
            if self._high and self._low[-1] == high + 1:
                self._low[-1] = low
            else:
                self._high.append(high)
                self._low.append(low)
                self._start.append(self._scanned)
            self._scanned += high - low + 1
            self._floor = low if self._floor is None else min(self._floor, low)

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
        above = newer - _count_at_most(self._newer, seq)
        if above < newer:
            return above
        run = self._first_run_reaching(seq)
        if run == len(self._high):
            return len(self)
        return newer + self._start[run] + max(self._high[run] - seq, 0)

    def _first_run_reaching(self, seq: int) -> int:
        """The first run (newest first) whose lowest number is at most `seq`."""
        lo, hi = 0, len(self._low)
        while lo < hi:
            middle = (lo + hi) // 2
            if self._low[middle] > seq:
                lo = middle + 1
            else:
                hi = middle
        return lo

    def restore(self, seqs: Iterable[int]) -> None:
        """Put removed numbers back in their places (an undone delete). Numbers below what the
        scan has reached are left to the scan."""
        for seq in seqs:
            if self.index_of(seq) is not None:
                continue
            if self._newer and seq > (self._high[0] if self._high else 0):
                self._newer.insert(_count_at_most(self._newer, seq), seq)
            elif self.complete or (self._floor is not None and seq >= self._floor):
                runs = list(zip(self._high, self._low, strict=True))
                at = self._first_run_reaching(seq)
                runs.insert(at, (seq, seq))
                self._set_runs(_merged(runs))

    def remove(self, seqs: Iterable[int]) -> None:
        gone = sorted(set(seqs))
        if not gone:
            return
        self._newer = array("q", (s for s in self._newer if s not in set(gone)))
        runs: list[Run] = []
        for high, low in zip(self._high, self._low, strict=True):
            for seq in reversed(gone[bisect_left(gone, low):bisect_right(gone, high)]):  # cut around each
                if seq < high:
                    runs.append((high, seq + 1))
                high = seq - 1
            if high >= low:
                runs.append((high, low))
        self._set_runs(runs)

    def _set_runs(self, runs: list[Run]) -> None:
        self._high = array("q", (high for high, _ in runs))
        self._low = array("q", (low for _, low in runs))
        self._start = array("q")
        total = 0
        for high, low in runs:
            self._start.append(total)
            total += high - low + 1
        self._scanned = total


def _merged(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    for high, low in runs:
        if out and out[-1][1] == high + 1:
            out[-1] = (out[-1][0], low)
        else:
            out.append((high, low))
    return out


def _count_at_most(ascending: array, seq: int) -> int:
    lo, hi = 0, len(ascending)
    while lo < hi:
        middle = (lo + hi) // 2
        if ascending[middle] <= seq:
            lo = middle + 1
        else:
            hi = middle
    return lo
