"""A fixed-size latency histogram with log buckets (HDR-style), and a sample ring."""

from __future__ import annotations

import collections
import math

__all__ = ["LagHistogram"]

_PER_OCTAVE = 8  # 8 buckets per doubling: values are kept to within about 9%
_LOWEST = 1e-6  # 1 us
_OCTAVES = 30  # up to about 1,000 s
_BUCKETS = _PER_OCTAVE * _OCTAVES + 1


class LagHistogram:
    """Counts of lag values in log-spaced buckets, plus the exact max and the last samples.

    Memory is fixed (a list of ints and a bounded deque) whatever the number of
    samples. Percentiles are read from the buckets (upper bound of the bucket).

    Example::

        h = LagHistogram()
        for v in (0.001, 0.002, 0.004):
            h.add(v)
        h.percentile(50)   # about 0.002
    """

    __slots__ = ("count", "counts", "max", "recent", "total")

    def __init__(self, keep: int = 120) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.recent: collections.deque[float] = collections.deque(maxlen=keep)

    def add(self, value: float) -> None:
        value = max(value, 0.0)
        self.counts[_bucket(value)] += 1
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        self.recent.append(value)

    def percentile(self, p: float) -> float:
        """The value below which *p* per cent of the samples fall (0 if none)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * p / 100.0))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(_upper(index), self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


def _bucket(value: float) -> int:
    if value <= _LOWEST:
        return 0
    index = int(math.log2(value / _LOWEST) * _PER_OCTAVE) + 1
    return min(index, _BUCKETS - 1)


def _upper(index: int) -> float:
    return _LOWEST * 2 ** (index / _PER_OCTAVE)
