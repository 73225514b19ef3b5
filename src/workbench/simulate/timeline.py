"""Vectorised interval arithmetic on integer millisecond timelines.

The simulator works on several clocks: wall time, *busy* time (scheduled time outside planned
stops), *APT* (busy time spent running or micro-stopped) and *running* time. A :class:`Clock`
maps positions on a clock that only ticks inside some pieces of a host timeline to host positions
and back, so events can be generated on the clock where they are natural (failures accrue on run
time, cycles follow each other on running time) and placed in wall time in one numpy call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS = 1
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class Clock:
    """A clock that ticks only inside ``[start[k], end[k])`` pieces of a host timeline.

    Pieces are sorted, non-overlapping and non-empty. ``offset[k]`` is the clock position at the
    beginning of piece ``k``.
    """

    start: np.ndarray
    end: np.ndarray
    offset: np.ndarray
    total: int

    @classmethod
    def from_pieces(cls, start: np.ndarray, end: np.ndarray) -> Clock:
        """Build a clock from host pieces (empty pieces are dropped)."""
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        keep = end > start
        start, end = start[keep], end[keep]
        length = end - start
        offset = np.zeros(len(start), dtype=np.int64)
        if len(start):
            offset[1:] = np.cumsum(length)[:-1]
        return cls(start, end, offset, int(length.sum()))

    def _piece(self, pos: np.ndarray, *, at_end: bool) -> np.ndarray:
        side = "left" if at_end else "right"
        k = np.searchsorted(self.offset, pos, side=side) - 1
        return np.clip(k, 0, max(len(self.offset) - 1, 0))

    def to_host(self, pos: np.ndarray | int, *, at_end: bool = False) -> np.ndarray:
        """Host position of clock positions.

        A position exactly on a piece boundary belongs to the next piece (``[start, end)``), unless
        ``at_end`` is true: then it is the end of the previous piece (use it for interval ends).
        """
        pos = np.asarray(pos, dtype=np.int64)
        if not len(self.offset):
            return np.zeros_like(pos)
        k = self._piece(pos, at_end=at_end)
        return self.start[k] + (pos - self.offset[k])

    def from_host(self, t: np.ndarray | int) -> np.ndarray:
        """Clock position of host positions; a host time between pieces maps to the next piece start."""
        t = np.asarray(t, dtype=np.int64)
        if not len(self.offset):
            return np.zeros_like(t)
        k = np.searchsorted(self.start, t, side="right") - 1
        kc = np.clip(k, 0, len(self.start) - 1)
        inside = np.clip(t - self.start[kc], 0, self.end[kc] - self.start[kc])
        return np.where(k < 0, 0, self.offset[kc] + inside)

    def split(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split clock intervals ``[p0, p1)`` into host pieces.

        Returns
        -------
        index, host_start, host_end : numpy.ndarray
            For each piece, the index of the interval it came from and its host bounds.
        """
        p0 = np.asarray(p0, dtype=np.int64)
        p1 = np.asarray(p1, dtype=np.int64)
        keep = p1 > p0
        idx_all = np.flatnonzero(keep)
        p0, p1 = p0[keep], p1[keep]
        if not len(p0) or not len(self.offset):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        k0 = self._piece(p0, at_end=False)
        k1 = self._piece(p1, at_end=True)
        counts = k1 - k0 + 1
        rep = np.repeat(np.arange(len(p0)), counts)
        within = np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts)
        k = k0[rep] + within
        lo = np.maximum(p0[rep], self.offset[k])
        hi = np.minimum(p1[rep], self.offset[k] + (self.end[k] - self.start[k]))
        ok = hi > lo
        k, lo, hi, rep = k[ok], lo[ok], hi[ok], rep[ok]
        return idx_all[rep], self.start[k] + (lo - self.offset[k]), self.start[k] + (hi - self.offset[k])


def overlay(base_start: np.ndarray, base_end: np.ndarray, win_start: np.ndarray,
            win_end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lay windows over a contiguous base timeline.

    ``base`` covers ``[base_start[0], base_end[-1])`` without gaps; windows are sorted and
    non-overlapping. Returns the resulting intervals as ``(start, end, base_index, window_index)``
    where ``window_index`` is -1 outside windows and ``base_index`` is -1 inside them. A window
    covering several base intervals becomes one interval; a base interval cut by a window becomes
    the parts before and after it.
    """
    base_start = np.asarray(base_start, dtype=np.int64)
    base_end = np.asarray(base_end, dtype=np.int64)
    win_start = np.asarray(win_start, dtype=np.int64)
    win_end = np.asarray(win_end, dtype=np.int64)
    if not len(win_start):
        idx = np.arange(len(base_start))
        return base_start, base_end, idx, np.full(len(base_start), -1)
    bounds = np.unique(np.concatenate([base_start, base_end[-1:], win_start, win_end]))
    bounds = bounds[(bounds >= base_start[0]) & (bounds <= base_end[-1])]
    s = bounds[:-1]
    bi = np.searchsorted(base_start, s, side="right") - 1
    wj = np.searchsorted(win_start, s, side="right") - 1
    inw = (wj >= 0) & (s < win_end[np.clip(wj, 0, None)])
    key = np.where(inw, -(wj + 1), bi)
    first = np.r_[True, key[1:] != key[:-1]]
    seg_start = s[first]
    seg_end = np.r_[seg_start[1:], bounds[-1]]
    k = key[first]
    return seg_start, seg_end, np.where(k >= 0, k, -1), np.where(k < 0, -k - 1, -1)


def segment_cumsum(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (``group_start`` = first index of each group)."""
    cs = np.cumsum(values)
    if not len(values):
        return cs
    counts = np.diff(np.r_[group_start, len(values)])
    before = np.r_[0, cs[group_start[1:] - 1]] if len(group_start) > 1 else np.zeros(1, cs.dtype)
    return cs - np.repeat(before, counts)


def inside(t: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether each time lies in one of the sorted, non-overlapping ``[start, end)`` windows."""
    t = np.asarray(t)
    if not len(start):
        return np.zeros(t.shape, dtype=bool)
    j = np.searchsorted(start, t, side="right") - 1
    return (j >= 0) & (t < end[np.clip(j, 0, None)])
