"""ZRLE encoding (rfbproto 7.7.6): 64×64 tiles, palettes and run lengths, through one zlib stream.

Every tile gets the subencoding with the smallest estimated size, as TigerVNC's ZRLE encoder does:

- 1: solid colour,
- 2-16: packed palette (1, 2 or 4 bits an index, rows padded to whole bytes),
- 130-255: palette RLE (up to 127 colours),
- 128: plain RLE,
- 0: raw CPIXELs.

The statistics that drive the choice (colour count and palette of every tile, run counts) are computed
for all tiles at once with numpy (:mod:`.classify`), and so are the run-length records of all RLE tiles
and the palette indices of all packed tiles; the only loop over tiles (at most 510 for 1920×1080)
packs index bits and joins each tile's pieces. CPIXELs are 3 bytes for 32 bpp formats of depth ≤ 24
whose colour bits fit in 3 bytes (see :func:`.classify.layout_for`), else whole pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..protocol.constants import Encoding
from ..protocol.messages import rect_header
from ..region import Rect
from . import parallel
from .base import EncodeJob, Encoder
from .classify import (
    U8,
    Index,
    PixelLayout,
    Values,
    client_values,
    count_true,
    layout_for,
    looks_busy,
    scatter_bytes,
    split_tiles,
)
from .zlibenc import LENGTH, ZlibStream

TILE = 64
#: bands of tile rows per core that a big update's tile data is made in (:func:`tile_data`)
BANDS_PER_CORE = 3

# subencodings (rfbproto 7.7.6)
RAW = 0
SOLID = 1
PLAIN_RLE = 128
PALETTE_RLE = 128  # + palette size (2..127)
MAX_PACKED = 16
MAX_PALETTE = 127

# candidate order for the size estimate (ties go to the earlier, cheaper-to-decode one)
_SOLID, _PACKED, _PAL_RLE, _PLAIN_RLE, _RAW = range(5)


class ZRLEEncoder(Encoder):
    """ZRLE (encoding 16). Holds a zlib stream: one instance per session."""

    encoding = Encoding.ZRLE

    def __init__(self, use_isal: bool = True) -> None:
        self.stream = ZlibStream(use_isal, small_blocks=True)

    def encode_rect(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        return self.encode_with_fills(job, [(rect, False)])

    def encode(self, job: EncodeJob) -> list[bytes]:
        return self.encode_with_fills(job, [(rect, False) for rect in job.rects])

    def encode_with_fills(self, job: EncodeJob, items: Sequence[tuple[Rect, bool]]) -> list[bytes]:
        """The tile data of every rectangle that is not a fill is made first, side by side on the cores for
        a big update; then fills and rectangles go through the stream in the order of ``items``."""
        layout = layout_for(job.pixel_format)
        data = iter(tile_data(job, [rect for rect, fill in items if not fill], layout))
        out: list[bytes] = []
        for rect, fill in items:
            if fill:
                out.extend(self.encode_fill(job, rect))
            else:
                z = self.stream.compress(next(data), job.compress)
                out.append(rect_header(*rect, Encoding.ZRLE) + LENGTH.pack(len(z)) + z)
        return out

    def encode_fill(self, job: EncodeJob, rect: Rect) -> list[bytes]:
        """Every 64×64 tile a solid tile (subencoding 1 and one CPIXEL), through the stream as usual."""
        layout = layout_for(job.pixel_format)
        cpixel = layout.cpixel_bytes(client_values(job, rect._replace(w=1, h=1))[0]).tobytes()
        tiles = -(-rect.w // TILE) * -(-rect.h // TILE)
        data = self.stream.compress((bytes((SOLID,)) + cpixel) * tiles, job.compress)
        return [rect_header(*rect, Encoding.ZRLE) + LENGTH.pack(len(data)) + data]


def tile_data(job: EncodeJob, rects: Sequence[Rect], layout: PixelLayout) -> list[bytes]:
    """The uncompressed ZRLE tile data of each of ``rects`` (of ``job``'s frame).

    A big update of busy content has its rectangles cut into bands of whole tile rows, a few for each core,
    and the bands are made side by side; tiles go left to right, top to bottom, so a rectangle's bands
    joined are its tile data."""
    total = sum(r.area for r in rects)
    # only busy content gains: on text the many small numpy steps hold the GIL, and a second thread took
    # as long for a third more CPU (1080p terminal and web page), as with Hextile
    parts = parallel.cores() if parallel.worth_spreading(total) and looks_busy(job.frame, rects) else 1
    # a few bands per core, so that the caller, taking up the bands no pool thread has started, evens out
    # rectangles of unequal sizes
    share = -(-total // (parts * BANDS_PER_CORE))
    bands: list[tuple[int, Rect]] = []
    for i, rect in enumerate(rects):
        if rect.area == 0:
            continue  # no tiles
        rows = max(TILE, -(-share // rect.w // TILE) * TILE) if parts > 1 else rect.h
        bands.extend((i, rect._replace(y=y, h=min(rows, rect.bottom - y))) for y in range(rect.y, rect.bottom, rows))

    def make(band: tuple[int, Rect]) -> bytes:
        return zrle_data(client_values(job, band[1]), layout)

    made = parallel.map_pieces(make, bands) if parts > 1 else [make(band) for band in bands]
    out: list[list[bytes]] = [[] for _ in rects]
    for (i, _), data in zip(bands, made, strict=True):
        out[i].append(data)
    return [b"".join(pieces) for pieces in out]


def zrle_data(values: Values, layout: PixelLayout) -> bytes:
    """The uncompressed ZRLE tile data of (h, w) pixel values."""
    grid = split_tiles(values, TILE, layout)
    n = grid.n
    t = grid.tiles
    flat = t.reshape(n, TILE * TILE)
    valid = grid.valid
    cb = layout.cpixel_size
    tw, th = grid.tw, grid.th
    npx = tw * th
    padded = npx < TILE * TILE

    # --- statistics of every tile at once ----------------------------------------------------------------
    # (every per-pixel flag array below is a whole tile wide, flag i about pixel i, so that count_true can
    # count it 8 flags at a time)
    srt = np.sort(flat, axis=1)
    # new_colour[:, i]: sorted pixel i differs from sorted pixel i - 1 (False at 0)
    new_colour = np.zeros(flat.shape, dtype=np.bool_)
    np.not_equal(srt[:, 1:], srt[:, :-1], out=new_colour[:, 1:])
    # the padding sentinel of partial tiles counts as one colour: take it off
    ncol = 1 + count_true(new_colour) - padded
    # runs (row-major inside a tile) and single-pixel runs, for the RLE estimates; neq[:, i]: pixel i starts
    # a new run (False at 0)
    neq = np.zeros(flat.shape, dtype=np.bool_)
    np.not_equal(flat[:, 1:], flat[:, :-1], out=neq[:, 1:])
    if valid is not None:
        vf = valid.reshape(n, -1)
        neq[:, 1:] &= vf[:, 1:] & vf[:, :-1]
    nruns = 1 + count_true(neq) + np.where(tw < TILE, th - 1, 0)
    # a single-pixel run: a run start followed by another (the first and the last pixel count on one side)
    single = np.zeros(flat.shape, dtype=np.bool_)
    np.logical_and(neq[:, 2:], neq[:, 1:-1], out=single[:, 2:])
    singles = count_true(single) + neq[:, 1] + neq[:, -1]

    big = np.iinfo(np.intp).max
    bits = np.where(ncol <= 2, 1, np.where(ncol <= 4, 2, 4))
    est = np.empty((5, n), dtype=np.intp)
    est[_SOLID] = np.where(ncol == 1, 0, big)
    est[_PACKED] = np.where(ncol <= MAX_PACKED, ncol * cb + th * ((tw * bits + 7) // 8), big)
    est[_PAL_RLE] = np.where(ncol <= MAX_PALETTE, ncol * cb + 2 * nruns - singles, big)
    est[_PLAIN_RLE] = nruns * (cb + 1)
    est[_RAW] = npx * cb
    choice = np.argmin(est, axis=0)

    # --- palettes of the palette tiles (solid, packed, palette RLE): sorted distinct colours ---------------
    pal_tiles = np.flatnonzero(choice <= _PAL_RLE)
    first = new_colour[pal_tiles]
    first[:, 0] = True
    ps = srt[pal_tiles]
    if valid is not None:
        first &= ps != grid.sentinel
    palette = ps[first]
    pal_start = np.zeros(n + 1, dtype=np.intp)
    pal_start[pal_tiles + 1] = count_true(first)
    np.cumsum(pal_start, out=pal_start)
    pal_cpix = layout.cpixel_bytes(palette)

    def indices(tiles: Index, pixels: Values, owner: Index) -> U8:
        """Palette indices of ``pixels``, each belonging to tile ``owner`` (one of ``tiles``)."""
        # one search over all palettes: key = (tile << 33) | value keeps every palette sorted and apart
        pal_owner = np.repeat(np.arange(n, dtype=np.uint64), np.diff(pal_start))
        keys = (pal_owner << np.uint64(33)) | palette.astype(np.uint64)
        q = (owner.astype(np.uint64) << np.uint64(33)) | pixels.astype(np.uint64)
        return (np.searchsorted(keys, q) - pal_start[owner]).astype(np.uint8)

    def tile_pixels(sel: Index) -> tuple[Values, Index]:
        """The pixels of tiles ``sel``, row-major, tile after tile, and where each tile's pixels start."""
        bounds = np.zeros(sel.size + 1, dtype=np.intp)
        np.cumsum(npx[sel], out=bounds[1:])
        if valid is None:
            return t[sel].reshape(-1), bounds
        return t[sel][valid[sel]], bounds

    def owners(sel: Index, bounds: Index, positions: Index) -> Index:
        """The tile (one of ``sel``) each pixel position belongs to."""
        owner: Index = sel[np.searchsorted(bounds, positions, side="right") - 1]
        return owner

    # --- run-length tiles, all at once -----------------------------------------------------------------
    rle_tiles = np.flatnonzero((choice == _PAL_RLE) | (choice == _PLAIN_RLE))
    rle_off = np.zeros(n + 1, dtype=np.intp)
    rle_body = b""
    if rle_tiles.size:
        px, bounds = tile_pixels(rle_tiles)
        head = np.empty(px.size, dtype=np.bool_)
        head[0] = True
        np.not_equal(px[1:], px[:-1], out=head[1:])
        head[bounds[:-1]] = True
        heads = np.flatnonzero(head)
        lengths = np.diff(heads, append=px.size)
        run_tile = owners(rle_tiles, bounds, heads)
        run_val = px[heads]
        plain = choice[run_tile] == _PLAIN_RLE
        # palette RLE: one index byte (top bit set for runs longer than 1) and a length if > 1;
        # plain RLE: a CPIXEL and always a length (rfbproto 7.7.6)
        long = plain | (lengths > 1)
        k = np.where(plain, cb, 1)
        ext = np.where(long, (lengths - 1) // 255 + 1, 0)
        off = np.zeros(heads.size + 1, dtype=np.intp)
        np.cumsum(k + ext, out=off[1:])
        out = np.full(int(off[-1]), 255, dtype=np.uint8)
        pi = np.flatnonzero(plain)
        scatter_bytes(out, off[pi], layout.cpixel_bytes(run_val[pi]))
        qi = np.flatnonzero(~plain)
        idx = indices(rle_tiles, run_val[qi], run_tile[qi])
        out[off[qi]] = idx | np.where(lengths[qi] > 1, 0x80, 0).astype(np.uint8)
        li = np.flatnonzero(long)
        out[off[li] + k[li] + ext[li] - 1] = (lengths[li] - 1) % 255
        # byte range of every tile's runs: runs are in tile order
        run_start = np.zeros(n + 1, dtype=np.intp)
        np.cumsum(np.bincount(run_tile, minlength=n), out=run_start[1:])
        rle_off = off[run_start]
        rle_body = out.tobytes()

    # --- packed palette tiles: indices at once, packed tile by tile --------------------------------------
    packed_tiles = np.flatnonzero(choice == _PACKED)
    packed: dict[int, bytes] = {}
    if packed_tiles.size:
        px, bounds = tile_pixels(packed_tiles)
        idx = indices(packed_tiles, px, np.repeat(packed_tiles, np.diff(bounds)))
        pos = 0
        for i in packed_tiles.tolist():
            h, w = int(th[i]), int(tw[i])
            packed[i] = pack_indices(idx[pos : pos + h * w].reshape(h, w), int(ncol[i]))
            pos += h * w

    # --- assemble, tile by tile --------------------------------------------------------------------------
    chunks: list[bytes | memoryview] = []
    body = memoryview(rle_body)
    ps_list = pal_start.tolist()
    ro = rle_off.tolist()
    for i, kind in enumerate(choice.tolist()):
        if kind == _RAW:
            h, w = int(th[i]), int(tw[i])
            tile = t[i] if (h == TILE and w == TILE) else t[i, :h, :w]
            chunks.append(bytes([RAW]))
            chunks.append(layout.cpixel_bytes(tile).tobytes())
        elif kind == _PLAIN_RLE:
            chunks.append(bytes([PLAIN_RLE]))
            chunks.append(body[ro[i] : ro[i + 1]])
        else:
            p0, p1 = ps_list[i], ps_list[i + 1]
            sub = SOLID if kind == _SOLID else (p1 - p0) if kind == _PACKED else PALETTE_RLE + p1 - p0
            chunks.append(bytes([sub]) + pal_cpix[p0:p1].tobytes())
            if kind == _PACKED:
                chunks.append(packed[i])
            elif kind == _PAL_RLE:
                chunks.append(body[ro[i] : ro[i + 1]])
    return b"".join(chunks)


def pack_indices(idx: U8, palette_size: int) -> bytes:
    """Pack palette indices (h, w) MSB-first, 1/2/4 bits each, every row padded to whole bytes."""
    if palette_size <= 2:
        return np.packbits(idx, axis=1).tobytes()
    bits = 2 if palette_size <= 4 else 4
    per_byte = 8 // bits
    h, w = idx.shape
    wpad = -(-w // per_byte) * per_byte
    if wpad != w:
        padded = np.zeros((h, wpad), dtype=np.uint8)
        padded[:, :w] = idx
        idx = padded
    groups = idx.reshape(h, wpad // per_byte, per_byte)
    out = groups[:, :, 0] << (8 - bits)
    for k in range(1, per_byte):
        out |= groups[:, :, k] << (8 - bits * (k + 1))
    return out.tobytes()
