"""Hextile encoding (rfbproto 7.7.4): 16×16 tiles, each raw or a background plus subrectangles.

Tiles are analysed in batches (:mod:`.classify`). Where at least half the tiles could be one colour, those
that are come out of one comparison pass over the pixels and only the others are cut out; photo-like
rectangles are cut into tiles whole. Every analysed tile's background (its most common colour: a colour
covering over half the tile, else found by sorting), colour count and subrectangles come from batched numpy
calls. Per tile the encoder picks the smallest of

- solid background (subencoding 0 or BackgroundSpecified),
- background + subrectangles of one foreground colour (AnySubrects, ForegroundSpecified when needed),
- background + coloured subrectangles (AnySubrects | SubrectsColoured),
- Raw,

and carries the background and foreground over from the previous tile where rfbproto 7.7.4 allows it
(never after a Raw tile; the foreground never after a SubrectsColoured tile). The output is assembled in
one numpy buffer; if the result is not smaller than Raw, a Raw rectangle is sent instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..region import Rect
from .base import EncodeJob, Encoder
from .classify import (
    U8,
    Bools,
    Index,
    PixelLayout,
    Subrects,
    TileGrid,
    Values,
    chain_lower_bound,
    client_values,
    count_true,
    find_subrects,
    gather_tiles,
    group_rank,
    layout_for,
    scatter_bytes,
    solid_tiles,
    split_tiles,
    tile_colours,
    top_rows_constant,
)

TILE = 16

# subencoding mask bits (rfbproto 7.7.4)
RAW = 1
BACKGROUND_SPECIFIED = 2
FOREGROUND_SPECIFIED = 4
ANY_SUBRECTS = 8
SUBRECTS_COLOURED = 16


def raw_rect(rect: Rect, values: Values, layout: PixelLayout) -> bytes:
    """A Raw rectangle (rfbproto 7.7.1) from pixel values: the fallback when an encoding would be bigger."""
    # header and pixels joined in one copy
    return b"".join((rect_header(*rect, Encoding.RAW), layout.pixel_bytes(values).data))


class HextileEncoder(Encoder):
    """Hextile (encoding 5). Stateless: one instance may serve any number of sessions."""

    encoding = Encoding.HEXTILE

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        layout = layout_for(job.pixel_format)
        values = client_values(job, rect)
        header = rect_header(*rect, Encoding.HEXTILE)
        data = encode_hextile(values, layout, header)
        if data is None or len(data) - len(header) >= rect.area * layout.bpp:
            return [raw_rect(rect, values, layout)]
        return [data]

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """The first tile specifies the background; every later tile is subencoding 0 (the same background)."""
        pixel = layout_for(job.pixel_format).pixel_bytes(client_values(job, rect._replace(w=1, h=1))[0])
        tiles = -(-rect.w // TILE) * -(-rect.h // TILE)
        body = bytes((BACKGROUND_SPECIFIED,)) + pixel.tobytes() + bytes(tiles - 1)
        return [rect_header(*rect, Encoding.HEXTILE) + body]


def encode_hextile(values: Values, layout: PixelLayout, header: bytes = b"") -> bytes | None:
    """``header`` and the Hextile data of (h, w) pixel values in one buffer, or None when every tile would
    be Raw."""
    bpp = layout.bpp
    h, w = values.shape
    ntx = -(-w // TILE)
    n = ntx * -(-h // TILE)
    ty, tx = np.divmod(np.arange(n), ntx)
    tile_w = np.minimum(TILE, w - tx * TILE)
    tile_h = np.minimum(TILE, h - ty * TILE)
    raw_size = 1 + tile_w * tile_h * bpp
    first = np.ascontiguousarray(values[::TILE, ::TILE]).reshape(-1)
    ns = np.arange(n)
    if 2 * np.count_nonzero(top_rows_constant(values, TILE)) > n:
        # one-colour tiles (most of a desktop's) are found without copying pixels; only the others are cut
        # out and analysed
        ns = np.flatnonzero(~solid_tiles(values, TILE)[0])
    if ns.size * 2 > n:
        # mostly busy (photos, noise): cutting every tile out at once is cheaper than picking them
        ns = np.arange(n)
        grid = split_tiles(values, TILE, layout)
    else:
        grid = gather_tiles(values, ns, TILE, layout)
    a = _analyse(grid, bpp)

    bg = first.astype(grid.tiles.dtype)
    bg[ns] = a.bg
    ncol = np.ones(n, dtype=np.intp)
    ncol[ns] = a.ncol
    is_raw = np.zeros(n, dtype=np.bool_)
    is_raw[ns] = a.is_raw
    if is_raw.all():
        return None
    nsub = np.zeros(n, dtype=np.intp)
    nsub[ns] = a.nsub
    sub = a.sub
    sub_tile = ns[sub.tile]
    mono = ncol == 2
    nonraw = ~is_raw
    mono_t = nonraw & mono
    coloured = nonraw & (ncol > 2)
    has_sub = mono_t | coloured

    # the foreground colour of two-colour tiles: the colour of any of its subrectangles
    fg = np.zeros(n, dtype=grid.tiles.dtype)
    fg[sub_tile] = sub.colour

    # rfbproto 7.7.4: the background carries over from the previous tile unless that tile was Raw
    prev_raw = np.ones(n, dtype=np.bool_)
    prev_raw[1:] = is_raw[:-1]
    bg_changed = np.ones(n, dtype=np.bool_)
    bg_changed[1:] = bg[1:] != bg[:-1]
    bg_spec = nonraw & (prev_raw | bg_changed)
    # the foreground carries over from the last tile that set it (a two-colour tile), unless a Raw or
    # SubrectsColoured tile came in between; solid tiles leave it as it was
    sets_state = mono_t | is_raw | coloured
    last = np.maximum.accumulate(np.where(sets_state, np.arange(n), -1))
    prev = np.full(n, -1, dtype=np.intp)
    prev[1:] = last[:-1]
    prev_c = np.maximum(prev, 0)
    fg_known = (prev >= 0) & mono_t[prev_c] & (fg[prev_c] == fg)
    fg_spec = mono_t & ~fg_known

    rec = np.where(coloured, bpp + 2, 2)
    size = np.where(is_raw, raw_size, 1 + bg_spec * bpp + fg_spec * bpp + has_sub + nsub * rec * has_sub).astype(
        np.intp
    )

    # --- every tile assembled in one buffer, at its final offset behind ``header`` ------------------------
    off = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(size, out=off[1:])
    off += len(header)
    out = np.empty(int(off[-1]), dtype=np.uint8)
    out[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    idx = np.flatnonzero(nonraw)
    mask = (
        bg_spec * BACKGROUND_SPECIFIED
        + fg_spec * FOREGROUND_SPECIFIED
        + has_sub * ANY_SUBRECTS
        + coloured * SUBRECTS_COLOURED
    )
    out[off[idx]] = mask[idx]
    pos = off[:-1] + 1
    i = np.flatnonzero(bg_spec)
    scatter_bytes(out, pos[i], layout.pixel_bytes(bg[i]))
    pos = pos + bg_spec * bpp
    i = np.flatnonzero(fg_spec)
    scatter_bytes(out, pos[i], layout.pixel_bytes(fg[i]))
    pos = pos + fg_spec * bpp
    i = np.flatnonzero(has_sub)
    out[pos[i]] = nsub[i]
    pos = pos + has_sub

    keep = nonraw[sub_tile]
    st: Index = sub_tile[keep]
    base = pos[st] + group_rank(st) * rec[st]
    col = coloured[st]
    ci = np.flatnonzero(col)
    scatter_bytes(out, base[ci], layout.pixel_bytes(sub.colour[keep][ci]))
    base = base + col * bpp
    out[base] = (sub.x[keep] << 4) | sub.y[keep]
    out[base + 1] = ((sub.w[keep] - 1) << 4) | (sub.h[keep] - 1)

    raw_idx = np.flatnonzero(is_raw)
    if raw_idx.size:
        _write_raw_tiles(out, off, raw_idx, ns, grid, layout, tile_w, tile_h)
    return out.tobytes()


def _write_raw_tiles(
    out: U8, off: Index, raw_idx: Index, ns: Index, grid: TileGrid, layout: PixelLayout, tile_w: Index, tile_h: Index
) -> None:
    """Write the Raw tiles ``raw_idx`` (every one of them was analysed, so it is in ``grid``) at their offsets
    ``off`` in ``out``: each run of whole tiles that follow one another both on screen and in the grid is
    one (k, 1 + tile bytes) block copy, so photographs take a few dozen copies rather than one per tile."""
    bpp = layout.bpp
    t = grid.tiles
    in_grid = np.empty(int(ns.max()) + 1 if ns.size else 0, dtype=np.intp)
    in_grid[ns] = np.arange(ns.size)
    gi = in_grid[raw_idx]
    whole = (tile_w[raw_idx] == TILE) & (tile_h[raw_idx] == TILE)
    # a run breaks where the next Raw tile is not the next tile on screen or in the grid, or is partial
    brk = np.ones(raw_idx.size, dtype=np.bool_)
    brk[1:] = (raw_idx[1:] != raw_idx[:-1] + 1) | (gi[1:] != gi[:-1] + 1) | ~whole[1:] | ~whole[:-1]
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], raw_idx.size)
    record = 1 + TILE * TILE * bpp
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        ti, g = int(raw_idx[a]), int(gi[a])
        at = int(off[ti])
        if not whole[a]:
            w, h = int(tile_w[ti]), int(tile_h[ti])
            out[at] = RAW
            out[at + 1 : at + 1 + w * h * bpp] = layout.pixel_bytes(t[g, :h, :w]).reshape(-1)
            continue
        k = b - a
        block = out[at : at + k * record].reshape(k, record)
        block[:, 0] = RAW
        block[:, 1:] = layout.pixel_bytes(t[g : g + k]).reshape(k, record - 1)


@dataclass(frozen=True)
class _Analysis:
    """Per-tile results of :func:`_analyse`, for the tiles of one :class:`TileGrid`."""

    bg: Values
    ncol: Index
    is_raw: Bools
    nsub: Index
    #: the subrectangles of the tiles that are not Raw (``tile`` numbers tiles of the grid)
    sub: Subrects


def _analyse(grid: TileGrid, bpp: int) -> _Analysis:
    """Background, colour count, Raw or not, and subrectangles of every tile of ``grid``."""
    n = grid.n
    t = grid.tiles
    if n == 0:
        none = np.zeros(0, dtype=np.intp)
        return _Analysis(t.reshape(-1), none, none.astype(np.bool_), none, Subrects(*(none,) * 5, t.reshape(-1)))
    flat = t.reshape(n, TILE * TILE)
    valid = grid.valid
    npx = grid.tw * grid.th
    raw_size = 1 + npx * bpp

    # --- cheap classification of every tile (elementwise passes, no sorting) ----------------------------
    # solid and two-colour tiles: compare with the tile's first pixel and its first different pixel
    c0 = flat[:, 0]
    is_c0 = flat == c0[:, None]
    if valid is not None:
        is_c0 |= ~valid.reshape(n, -1)
    c1 = flat[np.arange(n), np.argmin(is_c0, axis=1)]
    is_c1 = flat == c1[:, None]
    two = (is_c0 | is_c1).all(axis=1)
    n0 = count_true(is_c0)
    n1 = count_true(is_c1)
    if valid is not None:
        n0 -= TILE * TILE - npx
    solid = two & (c0 == c1)
    majority = 2 * np.maximum(n0, n1) > npx
    # Busy tiles (photos, noise) go Raw without further analysis: a lower bound of the rectangles a tile
    # needs is its horizontal runs minus those that continue the identical run right above; allowing two
    # background rectangles a row, coloured subrectangles would not beat Raw. Tiles of two colours, or
    # with one colour over half of them (text), are never busy enough to be worth the test.
    busy = np.zeros(n, dtype=np.bool_)
    check = np.flatnonzero(~two & ~majority)
    if check.size:
        whole = check.size * 2 > n  # mostly busy: the bound of every tile costs less than picking tiles
        chains = chain_lower_bound(t)[check] if whole else chain_lower_bound(t[check])
        busy[check] = (chains - 2 * grid.th[check]) * (bpp + 2) >= npx[check] * bpp

    # --- background and colour count -------------------------------------------------------------------
    bg = np.where(n0 >= n1, c0, c1)
    ncol = np.where(solid, 1, np.where(two, 2, 3)).astype(np.intp)
    # the background of a tile of more colours is its most common one: the first or second colour when
    # either covers over half the tile (text on a plain background), else found by sorting the tile
    multi = np.flatnonzero(~two & ~busy & ~majority)
    if multi.size:
        stats = tile_colours(flat[multi], grid.sentinel if valid is not None else None)
        bg[multi] = stats.bg
        ncol[multi] = stats.ncolours
    is_raw = busy.copy()

    # Lower bounds of the subrectangle encodings (at least one subrect per non-background colour), so
    # tiles that will be Raw anyway skip the subrectangle search.
    mono = ncol == 2
    lower = np.where(mono, 2 + 2 * bpp + 2, 2 + bpp + (ncol - 1) * (bpp + 2))
    is_raw |= (ncol > 1) & (lower >= raw_size)
    cand = np.flatnonzero((ncol > 1) & ~is_raw)
    if cand.size:
        if cand.size == n:  # every tile (text): no copy of the grid
            sub = find_subrects(t, bg, valid)
        else:
            sub = find_subrects(t[cand], bg[cand], valid[cand] if valid is not None else None)
        sub = Subrects(cand[sub.tile], sub.x, sub.y, sub.w, sub.h, sub.colour)
    else:
        none = np.zeros(0, dtype=np.intp)
        sub = Subrects(*(none,) * 5, t.reshape(-1)[:0])
    nsub = np.bincount(sub.tile, minlength=n).astype(np.intp)
    # worst case (background and foreground both specified) decides Raw against subrectangles
    est = np.where(mono, 2 + 2 * bpp + 2 * nsub, 2 + bpp + nsub * (bpp + 2))
    is_raw[cand] = est[cand] >= raw_size[cand]
    return _Analysis(bg=bg, ncol=ncol, is_raw=is_raw, nsub=nsub, sub=sub)
