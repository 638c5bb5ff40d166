"""Finding scrolled and moved content: the source of CopyRect (rfbproto 7.7.2) updates.

When a window scrolls, most of a damaged area is the previous frame's pixels shifted up or down (or sideways).
For each large damaged rectangle we hash every row (or column) of the new and the previous frame, find the
shift that matches the most rows, take the longest run of matching rows at that shift, and check it pixel for
pixel. The client then copies that run inside its own framebuffer, and only the newly exposed pixels travel.
All of it is vectorised numpy; the per-rectangle Python work is a handful of calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..region import Rect
from .base import FrameArray

#: rectangles smaller than this (pixels) are not worth a CopyRect search
MIN_AREA = 128 * 64
#: a copied run must be at least this many rows (columns) long
MIN_RUN = 16

_WEIGHTS = np.random.default_rng(0x5C0).integers(1, 1 << 62, 1 << 14, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True)
class Copy:
    """Copy ``dst``'s size of pixels from (``src_x``, ``src_y``) of the previous frame to ``dst``."""

    dst: Rect
    src_x: int
    src_y: int


#: rows are hashed from this many evenly spaced pixels; matches are verified pixel for pixel afterwards
SAMPLES = 96


def _line_hashes(block: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
    """One 64-bit hash per row of ``block`` (h, w): a random linear combination of a sample of its pixels."""
    if block.shape[1] > SAMPLES:
        block = block[:, np.linspace(0, block.shape[1] - 1, SAMPLES).astype(np.intp)]
    w = block.shape[1]
    weights = _WEIGHTS[:w] if w <= len(_WEIGHTS) else np.resize(_WEIGHTS, w)
    with np.errstate(over="ignore"):
        hashes: npt.NDArray[np.uint64] = (block.astype(np.uint64) * weights[None, :]).sum(axis=1, dtype=np.uint64)
    return hashes


def _best_run(cur_h: npt.NDArray[np.uint64], prev_h: npt.NDArray[np.uint64]) -> tuple[int, int, int] | None:
    """The shift d (cur line i = prev line i + d, d != 0) and the longest run [start, stop) of lines it matches."""
    n = len(cur_h)
    order = np.argsort(prev_h, kind="stable")
    sorted_prev = prev_h[order]
    pos = np.searchsorted(sorted_prev, cur_h)
    pos = np.minimum(pos, n - 1)
    found = sorted_prev[pos] == cur_h
    if not found.any():
        return None
    cur_idx = np.flatnonzero(found)
    shifts = order[pos[found]].astype(np.int64) - cur_idx
    moved = shifts != 0
    if not moved.any():
        return None
    values, counts = np.unique(shifts[moved], return_counts=True)
    d = int(values[np.argmax(counts)])
    if int(counts.max()) < MIN_RUN:
        return None
    # lines matching exactly at shift d (rows with repeated hashes may have matched another line above)
    lo, hi = max(0, -d), min(n, n - d)
    match = np.zeros(n, bool)
    match[lo:hi] = cur_h[lo:hi] == prev_h[lo + d : hi + d]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], match.astype(np.int8), [0]))))
    starts, stops = edges[::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    start, stop = int(starts[k]), int(stops[k])
    if stop - start < MIN_RUN:
        return None
    return d, start, stop


def find_copy(prev: FrameArray, cur: FrameArray, rect: Rect) -> Copy | None:
    """A copy that explains part of ``rect`` (a damaged area) as shifted content of ``prev``, or None."""
    if rect.area < MIN_AREA:
        return None
    p = np.ascontiguousarray(prev).view(np.uint32)[..., 0]
    c = np.ascontiguousarray(cur).view(np.uint32)[..., 0]
    blk_c = c[rect.y : rect.bottom, rect.x : rect.right]
    blk_p = p[rect.y : rect.bottom, rect.x : rect.right]
    candidates: list[Copy] = []
    if rect.h >= MIN_RUN * 2:
        found = _best_run(_line_hashes(blk_c), _line_hashes(blk_p))
        if found is not None:
            d, start, stop = found
            candidates.append(Copy(Rect(rect.x, rect.y + start, rect.w, stop - start), rect.x, rect.y + start + d))
    if rect.w >= MIN_RUN * 2:
        found = _best_run(_line_hashes(blk_c.T), _line_hashes(blk_p.T))
        if found is not None:
            d, start, stop = found
            candidates.append(Copy(Rect(rect.x + start, rect.y, stop - start, rect.h), rect.x + start + d, rect.y))
    for copy in sorted(candidates, key=lambda cp: -cp.dst.area):
        dst, sx, sy = copy.dst, copy.src_x, copy.src_y
        if np.array_equal(c[dst.y : dst.bottom, dst.x : dst.right], p[sy : sy + dst.h, sx : sx + dst.w]):
            return copy
    return None
