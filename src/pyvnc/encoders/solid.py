"""Finding large one-colour areas of a rectangle, so that they can be sent as fills.

Text on a plain background, window interiors and page margins are mostly one colour: sent as fills (a
handful of bytes each) they cost the encoders nothing, and only what is left needs real encoding. The
search works on a grid of 16×16 blocks aligned to the rectangle: which blocks are one colour comes out of a
few whole-array numpy comparisons; runs of same-colour blocks along each block row are then grown
downwards into rectangles (a Python loop over *runs*, never over pixels), and those of at least
:data:`MIN_SOLID_AREA` pixels are kept. What remains is returned as rectangles too, one per run of
remaining blocks, stacked runs with the same span merged.

Blocks are compared as whole BGRX words (a block whose X bytes differ counts as mixed; sources keep X
constant), so a fill is exact in every client pixel format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..capture.base import FrameArray
from ..region import Rect
from .classify import solid_tiles, top_rows_constant

#: side of the search blocks, in pixels
BLOCK = 16
#: the smallest area worth sending as a fill of its own (TigerVNC uses the same figure)
MIN_SOLID_AREA = 2048
#: rectangles smaller than this are not searched at all
MIN_SEARCH_AREA = 2 * MIN_SOLID_AREA


@dataclass(frozen=True)
class SolidSplit:
    """A rectangle cut into one-colour areas (``solids``) and everything else (``rest``); together they tile
    the rectangle exactly, without overlap."""

    solids: list[Rect]
    rest: list[Rect]


def _block_words(frame: FrameArray, rect: Rect) -> NDArray[np.uint32]:
    """The whole 16×16 blocks of ``rect`` as BGRX words, (bh * 16, bw * 16): a view of the frame."""
    bh, bw = rect.h // BLOCK, rect.w // BLOCK
    words: NDArray[np.uint32] = frame[rect.y : rect.y + bh * BLOCK, rect.x : rect.x + bw * BLOCK].view(np.uint32)
    return words[..., 0]


def _block_keys(frame: FrameArray, rect: Rect, maybe: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
    """For the whole 16×16 blocks of ``rect``: the block's colour (0xRRGGBB) where it is one colour, else -1.

    Whole BGRX words are compared (:func:`.classify.solid_tiles`), so a block whose X bytes differ counts as
    mixed (sources keep X constant).
    """
    bh, bw = rect.h // BLOCK, rect.w // BLOCK
    solid, first = solid_tiles(_block_words(frame, rect), BLOCK, maybe)
    colours = (first & np.uint32(0xFFFFFF)).astype(np.int64)
    return np.where(solid, colours, np.int64(-1)).reshape(bh, bw)


def _top_rows_constant(frame: FrameArray, rect: Rect) -> NDArray[np.bool_]:
    """Which whole 16×16 blocks of ``rect`` have a one-colour top row: the blocks that can be one colour,
    found from a sixteenth of the pixels, so photo-like rectangles are turned away cheaply."""
    return top_rows_constant(_block_words(frame, rect), BLOCK)


def _heights(keys: NDArray[np.int64]) -> NDArray[np.intp]:
    """For each block: how many blocks from it downwards (itself included) have its key (0 where key < 0)."""
    bh, bw = keys.shape
    # down the columns one after another: a stretch of equal keys starts at each change and at each column's
    # top, and every block's height is the distance to the end of its stretch
    column = np.ascontiguousarray(keys.T).reshape(-1)
    n = column.size
    starts = np.empty(n, dtype=np.bool_)
    np.not_equal(column[1:], column[:-1], out=starts[1:])
    starts[::bh] = True
    ends = np.append(np.flatnonzero(starts)[1:], n)
    down = np.repeat(ends, np.diff(ends, prepend=0)) - np.arange(n)
    down[column < 0] = 0
    return np.ascontiguousarray(down.reshape(bw, bh).T)


def _row_runs(keys: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Runs of equal, non-negative ``keys`` along each row of a 2-D array: (row, first column, end column)."""
    h, w = keys.shape
    padded = np.full((h, w + 2), -1, dtype=np.int64)
    padded[:, 1:-1] = keys
    change = padded[:, 1:] != padded[:, :-1]  # (h, w + 1): a boundary before column i
    valid = keys >= 0
    # every run has exactly one start and one end, so in row-major order they pair up
    starts_y, starts_x = np.nonzero(change[:, :-1] & valid)
    _, ends_x = np.nonzero(change[:, 1:] & valid)
    return starts_y, starts_x, ends_x + 1


def split_solid(frame: FrameArray, rect: Rect, min_area: int = MIN_SOLID_AREA) -> SolidSplit:
    """Cut ``rect`` (inside ``frame``, a BGRX array) into large one-colour areas and the rest."""
    if rect.area < max(min_area, MIN_SEARCH_AREA) or rect.w < BLOCK or rect.h < BLOCK:
        return SolidSplit([], [rect])
    min_blocks = -(-min_area // (BLOCK * BLOCK))
    maybe = _top_rows_constant(frame, rect)
    if np.count_nonzero(maybe) < min_blocks:
        return SolidSplit([], [rect])  # photos, noise: too few blocks can be one colour to make one fill
    keys = _block_keys(frame, rect, maybe)
    bh, bw = keys.shape
    rows, x0s, x1s = _row_runs(keys)
    if len(rows) == 0:
        return SolidSplit([], [rect])
    # the height each run could grow to on its own: the least same-colour height below any of its blocks
    down = np.append(_heights(keys).ravel(), 0)
    bounds = np.stack((rows * bw + x0s, rows * bw + x1s), axis=1).ravel()
    tallest = np.minimum.reduceat(down, bounds)[::2]
    widths = x1s - x0s
    candidates = np.flatnonzero(widths * tallest >= min_blocks)
    used = np.zeros((bh, bw), dtype=np.bool_)
    found: list[tuple[int, int, int, int]] = []  # block units: x, y, w, h
    for i in candidates.tolist():
        y, x0, x1, height = int(rows[i]), int(x0s[i]), int(x1s[i]), int(tallest[i])
        if used[y : y + height, x0:x1].any():
            # rectangles grown from above took part of it: the longest free stretch of the row, grown anew
            row = used[y, x0:x1].tobytes()
            if row.count(0) * height < min_blocks:
                continue  # not even every free block of the row together would make a fill
            best, at, offset = 0, 0, 0
            for stretch in row.split(b"\x01"):
                if len(stretch) > best:
                    best, at = len(stretch), offset
                offset += len(stretch) + 1
            if best * height < min_blocks:
                continue
            x0, x1 = x0 + at, x0 + at + best
            ok = ~used[y : y + height, x0:x1].any(axis=1)
            height = int(np.argmin(ok)) if not ok.all() else height
        if (x1 - x0) * height < min_blocks:
            continue
        used[y : y + height, x0:x1] = True
        found.append((x0, y, x1 - x0, height))
    if not found:
        return SolidSplit([], [rect])
    solids = [Rect(rect.x + x * BLOCK, rect.y + y * BLOCK, w * BLOCK, h * BLOCK) for x, y, w, h in found]
    return SolidSplit(solids, _remainder(rect, used))


def _remainder(rect: Rect, used: NDArray[np.bool_]) -> list[Rect]:
    """The parts of ``rect`` outside the used blocks: runs of free blocks per block row (the last row and
    column of partial blocks included), stacked runs with the same span merged into one rectangle."""
    bh, bw = used.shape
    # grid including the partial blocks on the right and at the bottom (never used)
    gh, gw = -(-rect.h // BLOCK), -(-rect.w // BLOCK)
    free = np.ones((gh, gw), dtype=np.bool_)
    free[:bh, :bw] = ~used
    rows, x0s, x1s = _row_runs(np.where(free, 0, -1).astype(np.int64))
    open_runs: dict[tuple[int, int], list[int]] = {}  # (x0, x1) → [first row, last row]
    out: list[Rect] = []

    def emit(x0: int, x1: int, y0: int, y1: int) -> None:
        px0, py0 = rect.x + x0 * BLOCK, rect.y + y0 * BLOCK
        px1, py1 = min(rect.right, rect.x + x1 * BLOCK), min(rect.bottom, rect.y + (y1 + 1) * BLOCK)
        out.append(Rect(px0, py0, px1 - px0, py1 - py0))

    for y, x0, x1 in zip(rows.tolist(), x0s.tolist(), x1s.tolist(), strict=True):
        run = open_runs.get((x0, x1))
        if run is not None and run[1] == y - 1:
            run[1] = y
            continue
        if run is not None:
            emit(x0, x1, run[0], run[1])
        open_runs[(x0, x1)] = [y, y]
    for (x0, x1), (y0, y1) in open_runs.items():
        emit(x0, x1, y0, y1)
    return out
