"""Vectorised helpers shared by the palette and subrectangle encoders (RRE, Hextile, ZRLE).

Everything here works on pixel *values* in the client's pixel format (so colours the client cannot tell
apart count as one), over whole batches of tiles at once: a rectangle is cut into an (N, size, size) stack
of tiles, partial edge tiles padded with a *sentinel* value no real pixel can have, and the per-tile
statistics (background colour, colour count, palette) and the subrectangles of every tile come out of a
handful of numpy calls, with no Python loop over pixels or tiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from ..protocol.pixelformat import PixelFormat, converter_for
from ..region import Rect
from .base import EncodeJob

#: pixel values of any width (uint8 / uint16 / uint32, or uint64 once widened for a sentinel)
Values = NDArray[np.unsignedinteger]
Index = NDArray[np.intp]
U8 = NDArray[np.uint8]
Bools = NDArray[np.bool_]

#: eight True booleans read as one 64-bit word
ALL_TRUE = np.uint64(0x0101010101010101)


@dataclass(frozen=True)
class PixelLayout:
    """How a client pixel format looks on the wire, derived once per pixel format."""

    #: bytes per PIXEL
    bpp: int
    #: numpy dtype that serialises a pixel value with the client's byte order
    wire_dtype: np.dtype[np.unsignedinteger]
    #: bits a real pixel value can have set (red, green and blue fields)
    used_mask: int
    #: byte slice of a wire PIXEL that forms a ZRLE CPIXEL (rfbproto 7.7.6)
    cpixel: slice

    @property
    def cpixel_size(self) -> int:
        """bytesPerCPixel (rfbproto 7.7.6)."""
        return len(range(*self.cpixel.indices(self.bpp)))

    def pixel_bytes(self, values: Values) -> U8:
        """Wire bytes of pixel values: shape ``values.shape + (bpp,)``."""
        wire = np.ascontiguousarray(values, dtype=self.wire_dtype)
        return wire.view(np.uint8).reshape(*values.shape, self.bpp)

    def cpixel_bytes(self, values: Values) -> U8:
        """ZRLE CPIXEL bytes of pixel values: shape ``values.shape + (cpixel_size,)``."""
        return self.pixel_bytes(values)[..., self.cpixel]


@lru_cache(maxsize=64)
def layout_for(pf: PixelFormat) -> PixelLayout:
    """The :class:`PixelLayout` of a (true-colour) pixel format."""
    bpp = pf.bits_per_pixel // 8
    order = ">" if (pf.big_endian and bpp > 1) else "<"
    wire_dtype: np.dtype[np.unsignedinteger] = np.dtype(f"{order}u{bpp}")
    used = ((pf.red_max << pf.red_shift) | (pf.green_max << pf.green_shift) | (pf.blue_max << pf.blue_shift)) & (
        (1 << (8 * bpp)) - 1
    )
    cpixel = slice(0, bpp)
    # rfbproto 7.7.6 (ZRLE): a CPIXEL is 3 bytes for 32 bpp true colour of depth <= 24 whose colour bits
    # all lie in the least (preferred, by convention) or the most significant 3 bytes of the pixel.
    if pf.true_colour and bpp == 4 and pf.depth <= 24:
        if used < (1 << 24):
            # the least significant bytes come first on a little-endian wire, last on a big-endian one
            cpixel = slice(1, 4) if order == ">" else slice(0, 3)
        elif used & 0xFF == 0:
            cpixel = slice(0, 3) if order == ">" else slice(1, 4)
    return PixelLayout(bpp=bpp, wire_dtype=wire_dtype, used_mask=used, cpixel=cpixel)


def client_values(job: EncodeJob, rect: Rect) -> Values:
    """The pixel values of ``rect`` in the client's format, shape (h, w). Only bits of the colour fields are
    set (``PixelConverter.convert_array`` guarantees it), so the X byte of BGRX frames never splits colours."""
    pixels = job.frame[rect.y : rect.bottom, rect.x : rect.right]
    values: Values = converter_for(job.pixel_format).convert_array(pixels)
    return values


#: an area with more horizontal runs than pixels / this is photo-like
MANY_RUN_DIVISOR = 4


def short_runs(runs: int, pixels: int) -> bool:
    """Whether ``runs`` horizontal runs over ``pixels`` pixels make content photo-like."""
    return runs * MANY_RUN_DIVISOR > pixels


def looks_busy(frame: NDArray[np.uint8], rects: Sequence[Rect]) -> bool:
    """Whether ``rects`` of a BGRX ``frame`` look photo-like (short runs), judged on every 16th row."""
    runs = pixels = 0
    for r in rects:
        words = frame[r.y : r.bottom : 16, r.x : r.right].view(np.uint32)[..., 0]
        runs += words.shape[0] + int(np.count_nonzero(words[:, 1:] != words[:, :-1]))
        pixels += words.size
    return short_runs(runs, pixels)


def distinct(values: Values) -> Values:
    """The sorted distinct values of a 1-D array: ``np.unique`` without its hashing, which costs several
    times a sort on the small samples the encoders classify by (1,024 values: 45 µs against 3 µs here)."""
    s = np.sort(values)
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=np.bool_)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    result: Values = s[keep]
    return result


#: odd 32-bit multipliers for :func:`palette_indices`' hash (Fibonacci hashing: the top 16 bits of the product)
_HASH_MULTIPLIERS = tuple(np.uint32(m) for m in (2654435761, 2246822519, 3266489917, 668265263))


def palette_indices(colours: Values, values: Values) -> U8:
    """The index into ``colours`` (sorted, distinct, at most 256) of each of ``values`` (each one of them).

    ``np.searchsorted`` does this, but a binary search per value costs about 30 ns; here the colours are put
    in a 65,536-entry table by a multiplicative hash and every value is looked up in one gather (20,000
    values into 222 colours: 660 µs against 25 µs). Where every hash tried makes two colours collide (about
    1 % of palettes of 220 random colours) the binary search is used after all.
    """
    if colours.dtype.itemsize <= 4:
        c32 = colours.astype(np.uint32, copy=False)
        v32 = values.astype(np.uint32, copy=False)
        shift = np.uint32(16)
        for m in _HASH_MULTIPLIERS:
            keys = (c32 * m) >> shift
            ordered = np.sort(keys)
            if ordered.size < 2 or bool((ordered[1:] != ordered[:-1]).all()):
                table = np.empty(1 << 16, dtype=np.uint8)
                table[keys] = np.arange(colours.size, dtype=np.uint8)
                found: U8 = table[(v32 * m) >> shift]
                return found
    index: U8 = np.searchsorted(colours, values).astype(np.uint8)
    return index


def with_sentinel(values: Values, layout: PixelLayout) -> tuple[Values, int]:
    """``values`` (widened if need be) and a value no real pixel has, to pad partial tiles with."""
    bits = values.dtype.itemsize * 8
    full = (1 << bits) - 1
    free = full & ~layout.used_mask
    if free:
        # a bit outside the red, green and blue fields: never set in a real pixel value
        return values, free & -free
    wider = {8: np.uint16, 16: np.uint32, 32: np.uint64}[bits]
    return values.astype(wider), 1 << bits


@dataclass(frozen=True)
class TileGrid:
    """A rectangle cut into ``size``×``size`` tiles, left to right then top to bottom (from
    :func:`gather_tiles`: only the tiles asked for, in that order, so :meth:`origin` does not apply).

    ``tiles`` is (N, size, size); pixels of partial edge tiles outside the rectangle hold ``sentinel`` and
    are False in ``valid`` (``valid`` is None when every tile is whole); ``tw`` and ``th`` belong to the
    tiles held.
    """

    tiles: Values
    valid: Bools | None
    sentinel: int
    size: int
    ntx: int
    nty: int
    #: width and height of every tile, shape (N,)
    tw: Index
    th: Index

    @property
    def n(self) -> int:
        return int(self.tiles.shape[0])

    def origin(self, i: int) -> tuple[int, int]:
        """Top-left corner of tile ``i``, relative to the rectangle."""
        return (i % self.ntx) * self.size, (i // self.ntx) * self.size


def split_tiles(values: Values, size: int, layout: PixelLayout) -> TileGrid:
    """Cut (h, w) pixel values into a :class:`TileGrid` of ``size``×``size`` tiles."""
    h, w = values.shape
    ntx = -(-w // size)
    nty = -(-h // size)
    valid: Bools | None = None
    sentinel = 0
    col_w = np.minimum(size, w - np.arange(ntx) * size)
    row_h = np.minimum(size, h - np.arange(nty) * size)
    tw = np.tile(col_w, nty).astype(np.intp)
    th = np.repeat(row_h, ntx).astype(np.intp)
    if h % size or w % size:
        values, sentinel = with_sentinel(values, layout)
        padded = np.empty((nty * size, ntx * size), dtype=values.dtype)
        padded[:h, :w] = values
        padded[h:] = sentinel  # only the padding is filled
        padded[:h, w:] = sentinel
        valid = _padding_mask(size, tw, th)
        values = padded
    tiles = np.ascontiguousarray(values.reshape(nty, size, ntx, size).transpose(0, 2, 1, 3).reshape(-1, size, size))
    return TileGrid(tiles, valid, sentinel, size, ntx, nty, tw, th)


def _row_changes(rows: Values, size: int) -> Bools:
    """For each row of ``rows`` (r, w) and each ``size``-wide tile column: whether the row changes colour
    inside the tile. One comparison pass; the per-tile results are OR-ed 8 bytes at a time."""
    r, w = rows.shape
    ntx = -(-w // size)
    # chg[y, x]: pixel x+1 of row y differs from pixel x, where both lie in the same tile
    chg = np.zeros((r, ntx * size), dtype=np.bool_)
    np.not_equal(rows[:, 1:], rows[:, :-1], out=chg[:, : w - 1])
    chg[:, size - 1 :: size] = False
    words = chg.view(np.uint64).reshape(r, ntx, size // 8)
    acc = words[:, :, 0].copy()
    for k in range(1, size // 8):
        acc |= words[:, :, k]
    changes: Bools = acc != 0
    return changes


def top_rows_constant(values: Values, size: int) -> Bools:
    """Which ``size``×``size`` tiles of (h, w) pixel values have a one-colour top row, shape (N,): the tiles
    that can be one colour, found from a ``size``-th of the pixels."""
    constant: Bools = ~_row_changes(values[::size], size).reshape(-1)
    return constant


def solid_tiles(values: Values, size: int, maybe: Bools | None = None) -> tuple[Bools, Values]:
    """Which ``size``×``size`` tiles of (h, w) pixel values (cut as :func:`split_tiles` cuts them) are one colour,
    and each tile's top-left pixel value: both of shape (N,), without copying the pixels into tiles.

    Every pixel is compared with its tile's top-left pixel, a band of tile rows at a time (whole rows: long
    inner loops), and the flags of each tile are AND-ed 8 at a time as 64-bit words down its rows. Padding
    past the right edge counts as equal. ``size`` is a multiple of 8. ``maybe`` (N,), if given, marks the
    only tiles that can be one colour (say, :func:`top_rows_constant`): where fewer than half the bands of
    tile rows hold any (a photograph: a quarter), only those bands are compared.
    """
    h, w = values.shape
    ntx = -(-w // size)
    nty = -(-h // size)
    first = np.ascontiguousarray(values[::size, ::size])
    solid = np.zeros((nty, ntx), dtype=np.bool_)
    words_per_tile = size // 8
    candidates: Bools = np.ones(nty, dtype=np.bool_) if maybe is None else np.any(maybe.reshape(nty, ntx), axis=1)
    for y0, rows in ((0, h - h % size), (h - h % size, h % size)):  # whole tile rows, then a partial one
        if rows == 0:
            continue
        bands = -(-rows // size)
        band_h = min(size, rows)
        t0 = y0 // size
        which = np.flatnonzero(candidates[t0 : t0 + bands])
        if which.size == 0:
            continue
        block = values[y0 : y0 + rows].reshape(bands, band_h, w)
        if which.size * 2 < bands:
            block = block[which]  # only the bands that can hold a one-colour tile (copied: worth it if few)
        else:
            which = np.arange(bands)
        ref = np.repeat(first[t0 + which], size, axis=1)[:, :w]
        eq = np.ones((which.size, band_h, ntx * size), dtype=np.bool_)
        np.equal(block, ref[:, None, :], out=eq[:, :, :w])
        down = np.bitwise_and.reduce(eq.view(np.uint64), axis=1)  # (bands, ntx * words_per_tile)
        solid[t0 + which] = (down.reshape(which.size, ntx, words_per_tile) == ALL_TRUE).all(axis=2)
    return solid.reshape(-1), first.reshape(-1)


@dataclass(frozen=True)
class TileColours:
    """Colour statistics of every tile of a batch."""

    #: the most common colour of each tile, (N,)
    bg: Values
    #: number of distinct colours of each tile, (N,)
    ncolours: Index
    #: every tile's distinct colours in ascending order, tile after tile (no sentinel)
    palette: Values
    #: tile ``i``'s colours are ``palette[start[i]:start[i + 1]]``; (N + 1,)
    start: Index


def tile_colours(flat: Values, sentinel: int | None) -> TileColours:
    """Background (most common colour), colour count and sorted palette of each row of ``flat`` (N, P).

    Pixels equal to ``sentinel`` (padding) are ignored; pass None when there is no padding.
    """
    n, p = flat.shape
    s = np.sort(flat, axis=1)
    new = np.empty(s.shape, dtype=np.bool_)
    new[:, 0] = True
    np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    sidx = np.flatnonzero(new)
    lengths = np.diff(sidx, append=s.size)
    colours = s.reshape(-1)[sidx]
    tile = sidx // p
    if sentinel is not None:
        keep = colours != sentinel
        sidx, lengths, colours, tile = sidx[keep], lengths[keep], colours[keep], tile[keep]
    counts = np.bincount(tile, minlength=n)
    start = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(counts, out=start[1:])
    # every tile has at least one real pixel, so every group is non-empty
    longest = np.maximum.reduceat(lengths, start[:-1])
    is_longest = lengths == longest[tile]
    cand = np.flatnonzero(is_longest)
    first = np.ones(cand.size, dtype=np.bool_)
    np.not_equal(tile[cand[1:]], tile[cand[:-1]], out=first[1:])
    bg = colours[cand[first]]
    return TileColours(bg=bg, ncolours=counts.astype(np.intp), palette=colours, start=start)


@dataclass(frozen=True)
class Subrects:
    """Single-colour subrectangles covering every non-background pixel of a batch of tiles.

    Grouped by tile, in ascending tile order. Coordinates are relative to the tile.
    """

    tile: Index
    x: Index
    y: Index
    w: Index
    h: Index
    colour: Values

    def __len__(self) -> int:
        return int(self.tile.size)


def find_subrects(tiles: Values, bg: Values, valid: Bools | None = None) -> Subrects:
    """Cover the non-background pixels of each tile of ``tiles`` (N, H, W) with single-colour rectangles.

    Horizontal runs of one colour are found on every row at once; a run with the same columns and colour
    as the run right above it extends that run's rectangle downwards ("rise and run", rfbproto 7.7.3).
    In tiles of up to 64 rows a rectangle also reaches across rows where a wider run of its colour covers
    its columns (:func:`_merge_across_rows`: the stem of a "+" is one rectangle, painted over by the bar),
    which brings the count down to that of TigerVNC's greedy per-pixel search on text. ``valid`` masks out
    padding. Taller tiles go to :func:`runs_subrects`, which works on the list of runs.
    """
    n, hgt, wid = tiles.shape
    if hgt > 64:
        return runs_subrects(tiles, bg, valid)
    fg = tiles != bg.reshape(n, 1, 1)
    if valid is not None:
        fg &= valid
    # a run starts where the colour differs from its left neighbour and ends where it differs from its right
    change = left_differs(tiles)
    start = fg & change
    end = fg
    end.reshape(-1)[:-1] &= change.reshape(-1)[1:]  # the right neighbour differs (the last column always ends)
    s = np.flatnonzero(start)
    e = np.flatnonzero(end)
    # the end column of every run, stored at its start pixel (in the narrowest type that holds a column)
    small = np.int8 if wid <= 127 else np.int16 if wid <= 32767 else np.int32
    # tiles of 16 or 64: powers of two, so columns and rows come from masks and shifts instead of divisions
    pow2 = wid & (wid - 1) == 0 and hgt & (hgt - 1) == 0
    endx = np.zeros(tiles.shape, dtype=small)
    endx.reshape(-1)[s] = e & (wid - 1) if pow2 else e % wid
    # a run continues the one right above it when both start and end columns and the colour agree
    cont = np.zeros(tiles.shape, dtype=np.bool_)
    same_above = above_equal(tiles)[:, 1:, :]
    np.logical_and(start[:, 1:, :], start[:, :-1, :], out=cont[:, 1:, :])
    cont[:, 1:, :] &= endx[:, 1:, :] == endx[:, :-1, :]
    cont[:, 1:, :] &= same_above
    head_mask = start & ~cont
    heads = np.flatnonzero(head_mask)
    # heights of small tiles: the continuing runs below every pixel, one row at a time from the bottom
    below = np.zeros(tiles.shape, dtype=np.int8)
    for row in range(hgt - 2, -1, -1):
        np.multiply(below[:, row + 1] + np.int8(1), cont[:, row + 1], out=below[:, row])
    h = below.reshape(-1)[heads].astype(np.intp) + 1
    # a first run right below a wider run of its colour (the stem of a "+" below the bar) may continue the
    # rectangle of the same columns above that run: candidates are first runs whose pixel above has
    # their colour but starts no run
    gapped = head_mask[:, 2:, :] & same_above[:, 1:, :] & ~start[:, 1:-1, :]
    if gapped.any():
        first = np.zeros(tiles.shape, dtype=np.bool_)
        first[:, 2:, :] = gapped
        joined = _merge_across_rows(tiles, start, cont, endx, heads, h, np.flatnonzero(first))
        if joined.size:
            heads, h = np.delete(heads, joined), np.delete(h, joined)
    tile, y, x = _tile_row_column(heads, hgt, wid)
    return Subrects(
        tile=tile,
        x=x,
        y=y,
        w=endx.reshape(-1)[heads].astype(np.intp) - x + 1,
        h=h,
        colour=tiles.reshape(-1)[heads],
    )


def runs_subrects(tiles: Values, bg: Values, valid: Bools | None = None) -> Subrects:
    """:func:`find_subrects` without its joins across rows, over the list of runs: for RRE's whole rectangles,
    and for tiles of more than 64 rows.

    Two passes over the pixels find every horizontal run; the rest works on the runs not of the background
    colour, which text and flat content have one of per tens of pixels: a run continues the run right above
    its first pixel when that one has its length and colour, and a rectangle is a chain of such runs, its
    height the chain's length (found by pointer jumping up the chains). The rectangles, and their order, are
    those :func:`find_subrects` finds before its joins across rows.
    """
    n, hgt, wid = tiles.shape
    flat = tiles.reshape(-1)
    size = flat.size
    # runs start at every colour change and every row's first pixel; a start past the end closes the last run
    change = np.empty(size + 1, dtype=np.bool_)
    np.not_equal(flat[1:], flat[:-1], out=change[1:size])
    change[:size].reshape(n * hgt, wid)[:, 0] = True
    change[size] = True
    bounds = np.flatnonzero(change)
    colour = flat[bounds[:-1]]
    keep = colour != (bg[0] if n == 1 else bg[bounds[:-1] // (hgt * wid)])
    if valid is not None:
        keep &= valid.reshape(-1)[bounds[:-1]]
    picked = np.flatnonzero(keep)
    start = bounds[picked]
    length = bounds[picked + 1] - start
    colour = colour[picked]
    count = int(start.size)
    if count == 0:
        none = np.zeros(0, dtype=np.intp)
        return Subrects(tile=none, x=none, y=none, w=none, h=none, colour=colour)
    # the run starting right above each run's first pixel, if any (runs in a tile's first row have none):
    # ``number`` holds each run's number at its first pixel and is undefined elsewhere, so every number read
    # from it is checked against the runs' starts
    number = np.empty(size, dtype=np.uint32)
    number[start] = np.arange(count, dtype=np.uint32)
    first_row = start % (hgt * wid) < wid if n > 1 else None
    lower = np.arange(int(np.searchsorted(start, wid)), count) if first_row is None else np.flatnonzero(~first_row)
    up = start[lower] - wid
    above = number[up].astype(np.intp)
    np.minimum(above, count - 1, out=above)
    found = np.flatnonzero(start[above] == up)
    lower, above = lower[found], above[found]
    same = np.flatnonzero((length[above] == length[lower]) & (colour[above] == colour[lower]))
    child, parent = lower[same], above[same]
    # every run's chain head (its rectangle's first run): parents followed, doubling the distance each step
    root = np.arange(count, dtype=np.intp)
    root[child] = parent
    moving = child
    while moving.size:
        up_one = root[moving]
        up_two = root[up_one]
        root[moving] = up_two
        moving = moving[up_two != up_one]
    first = np.ones(count, dtype=np.bool_)
    first[child] = False
    heads = np.flatnonzero(first)
    height = np.bincount(root, minlength=count)[heads]
    pos = start[heads]
    tile, rem = (np.zeros(heads.size, dtype=np.intp), pos) if n == 1 else np.divmod(pos, hgt * wid)
    y = rem // wid
    return Subrects(tile=tile, x=rem - y * wid, y=y, w=length[heads], h=height, colour=colour[heads])


def _tile_row_column(pos: Index, hgt: int, wid: int) -> tuple[Index, Index, Index]:
    """Tile, row and column of flat positions in (N, hgt, wid) tiles (shifts and masks for tiles of 16 or 64)."""
    if wid & (wid - 1) == 0 and hgt & (hgt - 1) == 0:
        xbits, ybits = wid.bit_length() - 1, hgt.bit_length() - 1
        return pos >> (xbits + ybits), (pos >> xbits) & (hgt - 1), pos & (wid - 1)
    tile, rem = np.divmod(pos, hgt * wid)
    y, x = np.divmod(rem, wid)
    return tile, y, x


def _merge_across_rows(
    tiles: Values, start: Bools, cont: Bools, endx: NDArray[np.integer], heads: Index, h: Index, cand: Index
) -> Index:
    """Join rectangles of the same columns and colour that one or more rows of that colour separate.

    ``heads`` (flat positions of the first runs of rectangles, sorted) and their heights ``h`` come from
    :func:`find_subrects`; ``cand`` are heads to try. A candidate B joins the rectangle A whose last run is
    the nearest run start above B in its column when that run has B's end column and colour and every row
    between is B's colour over B's columns: A then reaches down to B's bottom (the rows between, which wider
    runs of the colour cover too, are painted twice, with the same colour) and B goes. ``h`` is updated in
    place; returns the indices (into ``heads``) of the rectangles joined to others. Vectorised over the
    candidates, which are few (the crossings of strokes in text).
    """
    hgt, wid = tiles.shape[1:]
    flat = tiles.reshape(-1)
    eflat = endx.reshape(-1)
    ks = np.arange(hgt)
    cy = (cand // wid) % hgt
    # the nearest run start above each candidate, k rows up (at least 2, by the choice of candidates)
    up = cand[:, None] - ks[None, :] * wid
    inside = ks[None, :] <= cy[:, None]
    starts_up = np.zeros(up.shape, dtype=np.bool_)
    starts_up[inside] = start.reshape(-1)[up[inside]]
    starts_up[:, 0] = False
    k = np.argmax(starts_up, axis=1)
    prev = cand - k * wid  # k is 0 (so prev is the candidate itself) where no run starts above
    colour = flat[cand]
    ok = (k > 0) & (eflat[prev] == eflat[cand]) & (flat[prev] == colour)
    sel = np.flatnonzero(ok)
    if sel.size:
        # every pixel of the rows between, over the candidate's columns, must have its colour
        width = eflat[cand[sel]].astype(np.intp) - cand[sel] % wid + 1
        counts = (k[sel] - 1) * width
        owner = np.repeat(np.arange(sel.size), counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        rows_up, cols = np.divmod(offset, width[owner])
        pos = cand[sel][owner] - (rows_up + 1) * wid + cols
        bad = np.bincount(owner[flat[pos] != colour[sel][owner]], minlength=sel.size)
        sel = sel[bad == 0]
    if sel.size == 0:
        return sel
    # the head of the rectangle whose last run is at ``prev``: up its column while runs continue
    last = prev[sel]
    up = last[:, None] - ks[None, :] * wid
    inside = ks[None, :] <= ((last // wid) % hgt)[:, None]
    continues = np.zeros(up.shape, dtype=np.bool_)
    continues[inside] = cont.reshape(-1)[up[inside]]
    j = np.argmin(continues, axis=1)  # the first row up that does not continue: the head
    a = np.searchsorted(heads, last - j * wid)
    b = np.searchsorted(heads, cand[sel])
    # chains of joins (A above B above C): each reaches the bottom of the last, by pointer jumping over
    # just the rectangles involved
    # (numbered in head order through a mark per head rather than by np.union1d's sort: half the join's time)
    involved = np.zeros(heads.size, dtype=np.bool_)
    involved[a] = True
    involved[b] = True
    local = np.flatnonzero(involved)
    number = np.empty(heads.size, dtype=np.intp)
    number[local] = np.arange(local.size)
    la, lb = number[a], number[b]
    rows = (heads[local] // wid) % hgt
    bottom = rows + h[local] - 1
    succ = np.full(local.size, -1, dtype=np.intp)
    succ[la] = lb
    linked = np.flatnonzero(succ >= 0)
    while linked.size:
        nxt = succ[linked]
        bottom[linked] = np.maximum(bottom[linked], bottom[nxt])
        succ[linked] = succ[nxt]
        linked = linked[succ[linked] >= 0]
    h[local] = bottom - rows + 1
    return b


def count_true(b: Bools) -> Index:
    """The True values of each row of a 2-D boolean array: ``np.count_nonzero(b, axis=1)``, about three
    times faster. The booleans are summed 8 at a time as 64-bit words, each byte a counter of its own (no
    byte can carry into the next: at most 255 words are summed at once), then the 8 byte counters added."""
    n, k = b.shape
    words = k // 8
    # the fewest equal chunks of at most 255 words
    chunks = next((c for c in range(-(-words // 255), words + 1) if words % c == 0), 1) if words else 1
    if k % 8 or not words or not b.flags.c_contiguous:
        result: Index = np.count_nonzero(b, axis=1)
        return result
    lanes = b.view(np.uint64).reshape(n, chunks, words // chunks).sum(axis=2, dtype=np.uint64)
    counts: Index = lanes.view(np.uint8).reshape(n, chunks * 8).sum(axis=1, dtype=np.intp)
    return counts


def chain_heads(tiles: Values) -> Bools:
    """The pixels of (N, H, W) ``tiles`` that start a horizontal run and do not sit right below the start of
    a run of their own colour: every single-colour rectangle cover needs a rectangle starting at each."""
    wid = tiles.shape[2]
    heads = left_differs(tiles)  # the run starts, to begin with
    below_start = above_equal(tiles)  # the run starts right below a run start of their own colour
    below_start &= heads
    below_start.reshape(-1)[wid:] &= heads.reshape(-1)[:-wid]
    heads &= ~below_start
    return heads


def chain_lower_bound(tiles: Values) -> Index:
    """A lower bound of the single-colour rectangles (background included) each tile of (N, H, W) needs: its
    :func:`chain_heads`, counted. Cheap elementwise passes that tell busy tiles (photos, noise) from flat ones.
    """
    return count_true(chain_heads(tiles).reshape(tiles.shape[0], -1))


def left_differs(tiles: Values) -> Bools:
    """For (N, H, W) ``tiles``: whether each pixel differs from its left neighbour (True in column 0).

    Computed over the flat buffer (one long comparison, then column 0 set), which numpy runs several times
    faster than the same comparison row by row over tile rows of W - 1 pixels."""
    out = np.empty(tiles.shape, dtype=np.bool_)
    flat = tiles.reshape(-1)
    np.not_equal(flat[1:], flat[:-1], out=out.reshape(-1)[1:])
    out[:, :, 0] = True
    return out


def above_equal(tiles: Values) -> Bools:
    """For (N, H, W) ``tiles``: whether each pixel equals the one right above it (False in row 0), over the
    flat buffer as :func:`left_differs`."""
    wid = tiles.shape[2]
    out = np.empty(tiles.shape, dtype=np.bool_)
    flat = tiles.reshape(-1)
    np.equal(flat[wid:], flat[:-wid], out=out.reshape(-1)[wid:])
    out[:, 0, :] = False
    return out


def group_rank(groups: Index) -> Index:
    """For a sorted array of group ids: each element's position within its group."""
    if groups.size == 0:
        return groups
    heads = np.ones(groups.size, dtype=np.bool_)
    np.not_equal(groups[1:], groups[:-1], out=heads[1:])
    head_idx = np.flatnonzero(heads)
    counts = np.diff(head_idx, append=groups.size)
    return np.arange(groups.size, dtype=np.intp) - np.repeat(head_idx, counts)


def scatter_bytes(out: U8, pos: Index, data: U8) -> None:
    """Write ``data[i]`` (k bytes each, shape (n, k)) at ``out[pos[i]:pos[i] + k]``."""
    # one 1-D scatter per byte column: much faster than a 2-D fancy index
    for j in range(data.shape[1] if pos.size else 0):
        out[pos + j] = data[:, j]


def gather_tiles(values: Values, idx: Index, size: int, layout: PixelLayout) -> TileGrid:
    """Tiles ``idx`` (numbered as :func:`split_tiles` numbers them) of (h, w) pixel values as a :class:`TileGrid`
    of just those tiles, in the order of ``idx``; partial edge tiles are padded with the sentinel.

    Only the tiles asked for are copied, so a caller that already knows most tiles (say, the solid ones) pays
    for the rest only.
    """
    h, w = values.shape
    ntx = -(-w // size)
    nty = -(-h // size)
    full_x, full_y = w // size, h // size
    ty, tx = np.divmod(idx, ntx)
    whole = (ty < full_y) & (tx < full_x)
    col_w = np.minimum(size, w - tx * size).astype(np.intp)
    row_h = np.minimum(size, h - ty * size).astype(np.intp)
    if whole.all():
        view = values[: full_y * size, : full_x * size].reshape(full_y, size, full_x, size)
        tiles: Values = view[ty, :, tx, :]
        return TileGrid(tiles, None, 0, size, ntx, nty, col_w, row_h)
    wide, sentinel = with_sentinel(values, layout)
    tiles = np.empty((idx.size, size, size), dtype=wide.dtype)
    w_idx = np.flatnonzero(whole)
    if w_idx.size:
        view = values[: full_y * size, : full_x * size].reshape(full_y, size, full_x, size)
        tiles[w_idx] = view[ty[w_idx], :, tx[w_idx], :]
    bottom = ty == full_y  # the partial bottom row (corner tile included)
    if bottom.any():
        strip = np.full((size, ntx * size), sentinel, dtype=wide.dtype)
        strip[: h - full_y * size, :w] = values[full_y * size :]
        b_idx = np.flatnonzero(bottom)
        tiles[b_idx] = strip.reshape(size, ntx, size)[:, tx[b_idx], :].transpose(1, 0, 2)
    right = (tx == full_x) & ~bottom  # the partial right column above the bottom row
    if right.any():
        strip = np.full((full_y * size, size), sentinel, dtype=wide.dtype)
        strip[:, : w - full_x * size] = values[: full_y * size, full_x * size :]
        r_idx = np.flatnonzero(right)
        tiles[r_idx] = strip.reshape(full_y, size, size)[ty[r_idx]]
    return TileGrid(tiles, _padding_mask(size, col_w, row_h), sentinel, size, ntx, nty, col_w, row_h)


def _padding_mask(size: int, tw: Index, th: Index) -> Bools:
    """Which pixels of ``size``×``size`` tiles of widths ``tw`` and heights ``th`` are real, (N, size, size):
    only the partial tiles (a row and a column at most) have padding to mask out."""
    valid = np.ones((tw.size, size, size), dtype=np.bool_)
    part = np.flatnonzero((tw < size) | (th < size))
    ramp = np.arange(size)
    valid[part] = (ramp[None, :, None] < th[part, None, None]) & (ramp[None, None, :] < tw[part, None, None])
    return valid
